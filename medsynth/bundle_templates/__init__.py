"""The GAN bundles' shared body, written once and rendered into each bundle.

Every GAN bundle (``dcgan``, ``cdcgan``, ``acgan``, ``wgan_gp``) is the same wiring (data, trainer, handlers,
checkpoints, export, DDP overlay, inference writer) around a different recipe (networks, loss, conditioning, their
defaults). The wiring lives here, in three templates; a bundle's own text is only its recipe:

- ``configs/train.yaml`` = the bundle's recipe (every key above the line :data:`BODY_MARKER`, hand-written: the
  hyperparameters the studies vary, where a reader looks for them) + ``gan_train.yaml`` below that line;
- ``configs/inference.yaml`` = ``gan_inference.yaml``; ``configs/multi_gpu_train.yaml`` = ``gan_multi_gpu_train.yaml``
  (only the bundle's name differs).

Each rendered file is a complete MONAI config, so a bundle folder stays self-contained (``monai.bundle run``,
``ckpt_export``, ``torchrun`` from any working directory) — MONAI's ``%file#key`` macros would tie every bundle to
the repository root and cannot be nested. ``python -m medsynth.bundle_templates`` rewrites the generated parts;
``--check`` (and the test suite) fails when a generated part was edited by hand or a recipe re-declares a key of
the shared body. docs/architecture.md gives the reasons.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

TEMPLATES = Path(__file__).resolve().parent
GAN_BUNDLES: tuple[str, ...] = ("acgan", "cdcgan", "dcgan", "wgan_gp")
BODY_MARKER = "# ==== shared GAN body"
PLACEHOLDER = "<bundle>"
_REFERENCE = re.compile(r"@([A-Za-z_][A-Za-z0-9_]*)")


def template(name: str) -> str:
    """The text of ``gan_<name>.yaml`` (``train``, ``inference``, ``multi_gpu_train``)."""
    return (TEMPLATES / f"gan_{name}.yaml").read_text()


def split_recipe(text: str, path: str | Path = "train.yaml") -> tuple[str, str]:
    """``(recipe, body)`` of a bundle's train.yaml, cut at the :data:`BODY_MARKER` line."""
    index = text.find("\n" + BODY_MARKER)
    if index < 0:
        raise ValueError(f"{path}: no line starting with {BODY_MARKER!r}; a GAN bundle's train.yaml is its recipe, "
                         "then the shared body (python -m medsynth.bundle_templates writes it)")
    return text[:index + 1], text[index + 1:]


def render(bundle: str, name: str, recipe: str | None = None) -> str:
    """The text of ``bundles/<bundle>/configs/<name>.yaml``: the template with the bundle's name (after ``recipe``
    for ``train``)."""
    text = template(name).replace(PLACEHOLDER, bundle)
    if name == "train":
        if recipe is None:
            raise ValueError("train.yaml needs the bundle's recipe")
        return recipe.rstrip("\n") + "\n\n" + text
    return text


def body_keys() -> set[str]:
    """Top-level keys the shared training body defines (a recipe must not define them too)."""
    return set(yaml.safe_load(template("train")))


def required_keys() -> set[str]:
    """Top-level keys the shared training body references (``@key``) but does not define: a recipe's keys."""
    return {ref.split("#")[0] for ref in _REFERENCE.findall(template("train"))} - body_keys()


def check_recipe(recipe: str, path: str | Path = "train.yaml") -> list[str]:
    """What is wrong with a recipe: shared keys it re-declares, required keys it lacks."""
    keys = set(yaml.safe_load(recipe) or {})
    problems = [f"{path}: re-declares {k!r} of the shared body (change the template instead)"
                for k in sorted(keys & body_keys())]
    problems += [f"{path}: lacks {k!r}, which the shared body uses" for k in sorted(required_keys() - keys)]
    return problems


def generate(repo: str | Path, write: bool = True) -> list[str]:
    """Render every GAN bundle's configs under ``repo``; return the problems (files that differ, bad recipes).

    With ``write`` the generated files are (re)written and only recipe problems are returned; without, nothing is
    written and a generated file that differs from its rendering is a problem too.
    """
    problems: list[str] = []
    for bundle in GAN_BUNDLES:
        configs = Path(repo) / "bundles" / bundle / "configs"
        train = configs / "train.yaml"
        recipe, _ = split_recipe(train.read_text(), train)
        problems += check_recipe(recipe, train)
        for name in ("train", "inference", "multi_gpu_train"):
            path = configs / f"{name}.yaml"
            expected = render(bundle, name, recipe)
            if path.is_file() and path.read_text() == expected:
                continue
            if write:
                path.write_text(expected)
            else:
                problems.append(f"{path}: differs from its template (python -m medsynth.bundle_templates)")
    return problems
