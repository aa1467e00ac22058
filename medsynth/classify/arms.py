"""The training data of each experiment arm of the classifier bundle, as lists of datalist items.

Every arm is scored on the same real ``test`` split and tuned on the same real ``validation`` split; only
what the network is trained on changes::

    real            real training images
    classic_aug     the same, through the TorchIO classic-augmentation preset (the runner adds the transform)
    rebalance       the same, with a class-weighted loss or an oversampling sampler (the runner does it): the
                    control that tells a GAN gain apart from mere rebalancing (always towards 1:1)
    oversample_matched
                    the real training images, each class the synthetic selection adds to padded with repeated real
                    images of that class up to exactly the per-class counts the ``synthetic`` arm trains on for
                    the same seed: the control with the synthetic arm's class balance and training-set size, minus
                    the synthetic images (every real image of a class repeated as evenly as possible, the
                    remainder a seeded pick; needs the synthetic set for its counts)
    synthetic       real + synthetic images (all of the set, N of them, or up to a majority:minority ratio)
    warm_start      pre-train on synthetic images + the real images of the classes the set lacks, then
                    fine-tune on real images only (the bone-fracture study)
    synthetic_only  synthetic images + the real images of the classes the set lacks (train on synthetic, test
                    on real: "TSTR" for the minority class)
    phases          real + the selected synthetic images added in k equal increments, a fresh network trained
                    and scored after each (the thesis: 5 x 520 images)

Every arm can be trained for the same number of optimiser steps per epoch (``steps_per_epoch: matched``, the
default; :func:`~medsynth.classify.engine.steps_per_epoch`), so that no arm gets more compute merely because
its training set is larger.

A synthetic set is a datalist whose items say ``"source": "synthetic"`` (what the GAN and CycleGAN bundles
write). Its classes are matched to the real datalist's **by name**, so a set written with another class order
still lands on the right labels; a class the real datalist lacks, another modality or channel count is an
:class:`~medsynth.errors.InputError` naming the synthetic datalist file.

Provenance guards (refused, never warned about; :func:`refuse_synthetic_in_evaluation`,
:func:`check_synthetic_provenance`): a synthetic image in the real datalist's ``validation`` or ``test`` split;
a synthetic set whose generator trained on a patient (or image) of the classifier's ``validation`` or ``test``
split (the set's ``provenance.source_datalist``, its ``training`` split); and a set generated from another
datalist than the classifier's, or one that records none, unless ``allow_foreign_synthetic`` is set.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from medsynth.data.datalist import load_datalist
from medsynth.errors import InputError
from medsynth.export.latents import parse_ratio

logger = logging.getLogger(__name__)

ARMS = ("real", "classic_aug", "rebalance", "oversample_matched", "synthetic", "warm_start", "synthetic_only",
        "phases")
NEEDS_SYNTHETIC = ("oversample_matched", "synthetic", "warm_start", "synthetic_only", "phases")
REBALANCING = ("weights", "oversample")


@dataclass
class Stage:
    """One training run of an arm.

    Attributes:
        name: ``"train"`` for one-stage arms; ``"pretrain"``/``"finetune"`` (warm start); ``"phase_<i>"``.
        training: the datalist items the network is trained on (an ``oversample_matched`` stage lists a real
            image once more for every repeat: those copies say ``"repeat": k``, k = 1, 2, ...).
        init_from: the stage whose trained weights initialise this one (warm start), else a fresh network.
        augment: through the classic-augmentation preset.
        rebalance: ``"weights"`` or ``"oversample"``, else None.
        scored: scored on the test split (a warm start's pre-training stage is not).
        counts: images per class name in ``training``.
    """

    name: str
    training: list[dict]
    init_from: str | None = None
    augment: bool = False
    rebalance: str | None = None
    scored: bool = True
    counts: dict[str, int] = field(default_factory=dict)


def parse_arms(arm: str | list[str] | tuple[str, ...]) -> list[str]:
    """``"real"``, ``"real,synthetic"`` or ``["real", "synthetic"]`` -> a list of known arms, in that order."""
    names = [a.strip() for a in arm.split(",")] if isinstance(arm, str) else [str(a).strip() for a in arm]
    names = [a for a in names if a]
    unknown = [a for a in names if a not in ARMS]
    if unknown or not names:
        raise ValueError(f"unknown arm {unknown or arm!r}; choose from {', '.join(ARMS)} (several: 'real,synthetic')")
    if len(set(names)) != len(names):
        raise ValueError(f"arm {arm!r} lists an arm twice")
    return names


def load_synthetic(path: str | os.PathLike, real: dict) -> list[dict]:
    """The synthetic items of the datalist at ``path``, relabelled into the real datalist's class indices.

    Items of every split are taken when the file says ``"source": "synthetic"`` at the top (a synthetic set's
    datalist); otherwise only items with ``"source": "synthetic"`` (an augmented datalist can be passed as is).
    """
    path = Path(path)
    synthetic = load_datalist(path)
    for key in ("modality", "channels"):
        theirs, ours = synthetic.get(key), real.get(key)
        if theirs is not None and ours is not None and theirs != ours:
            raise InputError(path, f"{key} {theirs!r} differs from the real datalist's {ours!r}")
    whole = synthetic.get("source") == "synthetic"
    items = [it for split in ("training", "validation", "test") for it in synthetic.get(split, [])
             if whole or it.get("source") == "synthetic"]
    if not items:
        raise InputError(path, 'holds no synthetic images (no item with "source": "synthetic")')
    names, real_names = list(synthetic["classes"]), list(real["classes"])
    missing = sorted({names[it["label"]] for it in items} - set(real_names))
    if missing:
        raise InputError(path, f"synthetic classes {missing} are not classes of the real datalist {real_names}")
    return [{**it, "label": real_names.index(names[it["label"]]), "source": "synthetic"} for it in items]


EVALUATION_SPLITS = ("validation", "test")
OWN_SOURCE = "source_datalist is this experiment's datalist"
_SHOWN = 10  # example patients or images named in a refusal


def refuse_synthetic_in_evaluation(datalist: dict, path: str | os.PathLike) -> None:
    """Raise InputError (naming ``path``) when the ``validation`` or ``test`` split holds synthetic items.

    An item is synthetic when it says ``"source": "synthetic"`` (or the whole datalist does). Synthetic images
    may be trained on, never tuned or scored on: validation chooses the epoch and the threshold, test scores.
    """
    whole = datalist.get("source") == "synthetic"
    for split in EVALUATION_SPLITS:
        found = [it["image"] for it in datalist.get(split, []) if whole or it.get("source") == "synthetic"]
        if found:
            shown = ", ".join(str(p) for p in found[:3]) + (", ..." if len(found) > 3 else "")
            raise InputError(path, f'the {split} split holds {len(found)} synthetic image(s) ("source": '
                                   f'"synthetic"), e.g. {shown}; validation and test must be real images only '
                                   "(synthetic images belong in training)")


def _source_datalist(synthetic: dict) -> str | None:
    """The ``provenance.source_datalist`` a synthetic set's datalist records (SyntheticSetWriter), or None."""
    provenance = synthetic.get("provenance")
    source = provenance.get("source_datalist") if isinstance(provenance, dict) else None
    return str(source) if source else None


def _resolved(image: str) -> str:
    return str(Path(image).expanduser().resolve())


def generator_overlap(generator_training: list[dict], evaluation: list[dict]) -> list[str]:
    """Patients (or, for items without a patient id, image paths) of ``evaluation`` the generator trained on.

    ``generator_training``: the training items of the generator's source datalist. An evaluation item overlaps
    when its ``patient_id`` is a generator-training patient id or its image (resolved) is a training image.
    """
    ids = {str(it["patient_id"]) for it in generator_training if it.get("patient_id") not in (None, "")}
    paths = {_resolved(it["image"]) for it in generator_training}
    found: dict[str, None] = {}
    for it in evaluation:
        pid = it.get("patient_id")
        pid = None if pid in (None, "") else str(pid)
        image = _resolved(it["image"])
        if (pid is not None and pid in ids) or image in paths:
            found[pid if pid is not None else image] = None
    return list(found)


def check_synthetic_provenance(path: str | os.PathLike, real: dict, real_path: str | os.PathLike, *,
                               allow_foreign: bool = False) -> str:
    """Check where the synthetic set at ``path`` comes from; returns the provenance line of the reports.

    The set's ``provenance.source_datalist`` is the real datalist its generator trained on (its ``training``
    split). Refused with an :class:`~medsynth.errors.InputError` naming ``path``:

    * any patient (or image) of that training split is in the ``validation`` or ``test`` split of ``real``
      (the classifier's datalist, at ``real_path``): never allowed;
    * ``source_datalist`` is not ``real_path`` (resolved), is missing or cannot be read, unless
      ``allow_foreign`` (``allow_foreign_synthetic``); the patient check still applies when it can be read.
    """
    path, real_path = Path(path), Path(real_path)
    synthetic = load_datalist(path, check_files=False)
    source = _source_datalist(synthetic)
    source_path = None if source is None else (path.parent / Path(source).expanduser()).resolve()
    generator: dict | None = None
    problem = None
    if source_path is None:
        problem = "records no source_datalist (provenance.source_datalist: the real datalist its generator " \
                  "trained on)"
    else:
        try:
            generator = load_datalist(source_path, check_files=False)
        except InputError as e:
            problem = f"has a source_datalist {source} that cannot be read ({e})"
    own = source_path is not None and source_path == real_path.resolve()
    if generator is not None:
        evaluation = [it for split in EVALUATION_SPLITS for it in real.get(split, [])]
        overlap = generator_overlap(generator.get("training", []), evaluation)
        if overlap:
            shown = ", ".join(overlap[:_SHOWN]) + (", ..." if len(overlap) > _SHOWN else "")
            raise InputError(path, f"its generator was trained on source_datalist {source_path}, whose training "
                                   f"split holds {len(overlap)} patient(s) of the classifier's validation or test "
                                   f"split ({real_path}): {shown}; a synthetic set must come from a generator "
                                   "that never saw a validation or test patient (this is never allowed)")
    if own:
        return OWN_SOURCE
    if problem is None:
        problem = f"was generated from source_datalist {source_path}, which is not this experiment's datalist"
    if not allow_foreign:
        raise InputError(path, f"{problem} ({real_path.resolve()}); train the generator on the classifier's "
                               "datalist, or set allow_foreign_synthetic: true (--allow_foreign_synthetic true) "
                               "to use a set built from another datalist")
    if generator is None:
        return f"{problem}; its generator's patients could not be checked (allowed by allow_foreign_synthetic)"
    return (f"source_datalist {source_path} is not this experiment's datalist (allowed by allow_foreign_synthetic); "
            "none of its training patients is in the validation or test split")


def counts_by_class(items: list[dict], classes: list[str]) -> dict[str, int]:
    """Images per class name (every class listed, zeros included)."""
    labels = np.bincount([it["label"] for it in items], minlength=len(classes))
    return {name: int(labels[k]) for k, name in enumerate(classes)}


def select_synthetic(real_training: list[dict], synthetic: list[dict], classes: list[str], *,
                     count: int | None = None, target_ratio: str | float | None = None, seed: int = 0) -> list[dict]:
    """The synthetic items an arm adds: all of them, ``count`` of them, or up to ``target_ratio``.

    ``count`` keeps each class's share of the synthetic set (largest remainder); ``target_ratio`` is the
    majority:minority ratio after augmentation (``"2.39:1"``): class ``c`` gets ``ceil(M / ratio) - n_c``
    synthetic images, ``M`` the largest real class, capped at what the set holds (a warning says so). The pick
    within a class is a seeded shuffle, so another seed draws other images.
    """
    if count is not None and target_ratio is not None:
        raise ValueError("give at most one of synthetic_count and target_ratio")
    rng = np.random.default_rng(seed)
    by_class = {k: [synthetic[i] for i in rng.permutation(len(synthetic)) if synthetic[i]["label"] == k]
                for k in range(len(classes))}
    if count is None and target_ratio is None:
        return [it for k in by_class for it in by_class[k]]
    if count is not None:
        wanted = _shares(int(count), {k: len(v) for k, v in by_class.items()})
    else:
        real = counts_by_class(real_training, classes)
        assert target_ratio is not None  # count is None, and not both are
        goal = math.ceil(Fraction(max(real.values())) / parse_ratio(target_ratio))
        wanted = {k: max(0, goal - real[classes[k]]) if by_class[k] else 0 for k in by_class}
    for k, n in wanted.items():
        if n > len(by_class[k]):
            logger.warning("wanted %d synthetic %r images, the set holds %d: using all of them", n, classes[k],
                           len(by_class[k]))
    return [it for k in by_class for it in by_class[k][:wanted[k]]]


def _shares(count: int, available: dict[int, int]) -> dict[int, int]:
    """Split ``count`` over classes in proportion to ``available`` (largest remainder)."""
    total = sum(available.values())
    if count < 0 or count > total:
        raise ValueError(f"synthetic_count {count} must be between 0 and the {total} images of the synthetic set")
    exact = {k: count * n / total for k, n in available.items()}
    shares = {k: int(math.floor(v)) for k, v in exact.items()}
    for k in sorted(exact, key=lambda k: (shares[k] - exact[k], k))[:count - sum(shares.values())]:
        shares[k] += 1
    return shares


def repeat_to_match(real: list[dict], synthetic: list[dict], classes: list[str], *, seed: int = 0) -> list[dict]:
    """Copies of real items: for every class of ``synthetic``, as many as it has synthetic items, drawn from that
    class's real items as evenly as possible.

    With ``n`` real and ``s`` synthetic items of a class, every real item is repeated ``s // n`` times (whole
    copies), and a seeded sample without replacement of ``s % n`` of them once more; so each real image of the
    class is used ``1 + s // n`` or ``2 + s // n`` times in all. A copy is its item with ``"repeat": k`` (its
    k-th repeat, k >= 1), in class order. A class with synthetic but no real items is a ValueError.
    """
    rng = np.random.default_rng(seed)
    wanted = np.bincount([it["label"] for it in synthetic], minlength=len(classes))
    copies: list[dict] = []
    for label in np.flatnonzero(wanted):
        own = [it for it in real if it["label"] == label]
        if not own:
            raise ValueError(f"arm 'oversample_matched' cannot repeat real {classes[label]!r} images to match the "
                             f"{wanted[label]} synthetic ones: the real training split has none")
        whole, rest = divmod(int(wanted[label]), len(own))
        copies += [dict(it, repeat=k) for k in range(1, whole + 1) for it in own]
        copies += [dict(own[i], repeat=whole + 1) for i in sorted(rng.choice(len(own), rest, replace=False))]
    return copies


def arm_stages(arm: str, real_training: list[dict], synthetic: list[dict] | None, classes: list[str], *,
               rebalance: str = "weights", phases: int = 5, seed: int = 0) -> list[Stage]:
    """The training stages of ``arm`` (see the module docstring); ``synthetic`` is the selected set.

    ``seed`` picks the remainder of the repeated real images of ``oversample_matched``
    (:func:`repeat_to_match`); no other arm's stages depend on it.
    """
    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}; choose from {', '.join(ARMS)}")
    if arm in NEEDS_SYNTHETIC and not synthetic:
        raise ValueError(f"arm {arm!r} needs a synthetic datalist (synthetic_datalist: path/to/datalist.json) "
                         "with at least one selected image")
    if rebalance not in REBALANCING:
        raise ValueError(f"unknown rebalance {rebalance!r}; choose from {', '.join(REBALANCING)}")
    real = [dict(it, source=it.get("source", "real")) for it in real_training]
    if arm in ("real", "classic_aug", "rebalance"):
        stages = [Stage("train", real, augment=arm == "classic_aug", rebalance=rebalance if arm == "rebalance"
                        else None)]
    elif arm == "synthetic":
        assert synthetic is not None  # NEEDS_SYNTHETIC: refused above without one
        stages = [Stage("train", real + synthetic)]
    elif arm == "oversample_matched":
        assert synthetic is not None
        stages = [Stage("train", real + repeat_to_match(real, synthetic, classes, seed=seed))]
    elif arm in ("warm_start", "synthetic_only"):
        assert synthetic is not None
        covered = {it["label"] for it in synthetic}
        others = [it for it in real if it["label"] not in covered]
        if arm == "synthetic_only":
            stages = [Stage("train", synthetic + others)]
        else:
            stages = [Stage("pretrain", synthetic + others, scored=False),
                      Stage("finetune", real, init_from="pretrain")]
    else:
        assert synthetic is not None
        if not 1 <= phases <= len(synthetic):
            raise ValueError(f"phases must be between 1 and the {len(synthetic)} selected synthetic images, "
                             f"got {phases}")
        bounds = [round(len(synthetic) * i / phases) for i in range(1, phases + 1)]
        order = _interleaved(synthetic)
        stages = [Stage(f"phase_{i + 1}", real + order[:b]) for i, b in enumerate(bounds)]
    for stage in stages:
        stage.counts = counts_by_class(stage.training, classes)
        if len([n for n in stage.counts.values() if n]) < 2:
            raise ValueError(f"arm {arm!r} stage {stage.name!r} would train on one class only ({stage.counts})")
    return stages


def _interleaved(items: list[dict]) -> list[dict]:
    """Items reordered so that every prefix holds the classes in the set's proportions (phases add alike)."""
    by_class: dict[int, list[dict]] = {}
    for it in items:
        by_class.setdefault(it["label"], []).append(it)
    keyed = [((j + 0.5) / len(v), k, it) for k, v in by_class.items() for j, it in enumerate(v)]
    return [it for _, _, it in sorted(keyed, key=lambda t: (t[0], t[1]))]
