"""The package layers of ``medsynth.LAYERS`` hold: every import points down (or stays in its package), and every
package and module imports alone in a fresh interpreter (no import cycle)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medsynth import LAYERS

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "medsynth"


def module_name(path: Path) -> str:
    """``medsynth/data/roi.py`` -> ``medsynth.data.roi``; a package's ``__init__.py`` -> the package."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> list[str]:
    return sorted(module_name(p) for p in PACKAGE.rglob("*.py"))


def owner(module: str) -> str | None:
    """The entry of LAYERS that ``module`` belongs to (the longest prefix), or None.

    The root ``medsynth`` owns itself and its dunder attributes (``medsynth.__version__``) only, so a module
    of a package missing from LAYERS has no owner.
    """
    parts = module.split(".")
    for k in range(len(parts), 1, -1):
        name = ".".join(parts[:k])
        if name in LAYERS:
            return name
    if parts[0] == "medsynth" and (len(parts) == 1 or parts[1].startswith("__")):
        return "medsynth"
    return None


def imported_modules(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """``(line, module)`` of every medsynth import in ``source``, at any depth (function bodies too).

    ``from X import name`` counts as ``X.name`` (a submodule, or an attribute whose owner is that of ``X``);
    relative imports are resolved against ``module``.
    """
    found = []
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return [(line, name) for line, name in found if name == "medsynth" or name.startswith("medsynth.")]


def layer_violations(module: str, source: str, is_package: bool = False) -> list[str]:
    """Every import in ``source`` (the code of ``module``) that breaks the layering of LAYERS, as text."""
    here = owner(module)
    if here is None:
        return [f"{module}: not in medsynth.LAYERS (add its package)"]
    problems = []
    for line, target in imported_modules(source, module, is_package):
        there = owner(target)
        if there is None:
            problems.append(f"{module}:{line} imports {target}, whose package is not in medsynth.LAYERS")
        elif there != here and LAYERS[there] >= LAYERS[here]:
            where = "the same layer" if LAYERS[there] == LAYERS[here] else "a higher layer"
            problems.append(f"{module}:{line} imports {target} ({there}, layer {LAYERS[there]}) from {here} "
                            f"(layer {LAYERS[here]}): {where}")
    return problems


# -- the checker itself -------------------------------------------------------------------------------------

def test_checker_flags_upward_and_same_layer_imports():
    assert layer_violations("medsynth.data.fake", "import medsynth.classify.spec\n") == [
        "medsynth.data.fake:1 imports medsynth.classify.spec (medsynth.classify, layer 5) from medsynth.data "
        "(layer 2): a higher layer"]
    lazy = "def f():\n    from medsynth.engines import handlers\n    return handlers\n"
    assert len(layer_violations("medsynth.metrics.fake", lazy)) == 1  # a function-level import counts
    same = layer_violations("medsynth.export.fake", "from medsynth.metrics.fid import frechet_distance\n")
    assert len(same) == 1 and "the same layer" in same[0]
    assert layer_violations("medsynth.stats.fake", "from . import intervals\nfrom .tables import x\n") == []
    assert len(layer_violations("medsynth.stats", "from ..data import datalist\n", is_package=True)) == 1
    assert layer_violations("medsynth.nowhere.fake", "") == ["medsynth.nowhere.fake: not in medsynth.LAYERS "
                                                             "(add its package)"]


def test_checker_accepts_downward_and_own_package_imports():
    source = ("import medsynth\nfrom medsynth import __version__\nfrom medsynth.errors import InputError\n"
              "from medsynth.data.datalist import load_datalist\nfrom medsynth.classify.arms import ARMS\n")
    assert layer_violations("medsynth.classify.fake", source) == []


# -- the real code ------------------------------------------------------------------------------------------

def test_every_module_respects_the_layers():
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        problems += layer_violations(module_name(path), path.read_text(encoding="utf-8"),
                                     is_package=path.name == "__init__.py")
    assert not problems, "\n".join(problems)


def test_every_package_is_in_the_layers():
    packages = {module_name(p.parent) for p in PACKAGE.rglob("__init__.py")}
    top = {m for m in all_modules() if m.count(".") == 1}
    assert packages | top <= set(LAYERS), sorted((packages | top) - set(LAYERS))
    assert set(LAYERS) <= packages | top | {"medsynth"}, sorted(set(LAYERS) - packages - top)


def _import_alone(module: str) -> tuple[str, int, str]:
    result = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True,
                            cwd=ROOT, timeout=300)
    return module, result.returncode, result.stderr.strip()[-2000:]


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_package_imports_alone(package):
    module, code, error = _import_alone(package)
    assert code == 0, f"import {module} failed in a fresh interpreter:\n{error}"


# Imports every module named on stdin in its own forked child of an interpreter that has loaded the third-party
# libraries (never medsynth) first: each child starts with no medsynth module loaded, as a fresh interpreter
# would, without paying torch's and MONAI's import time per module.
_FORK_IMPORTER = """
import importlib, os, sys, traceback
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception:
        pass
assert not any(m == "medsynth" or m.startswith("medsynth.") for m in sys.modules), "medsynth loaded early"
failed = 0
for module in sys.stdin.read().split():
    sys.stdout.flush(); sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        try:
            importlib.import_module(module)
        except BaseException:
            sys.stderr.write(f"=== import {module} failed:\\n{traceback.format_exc()}\\n")
            sys.stderr.flush()
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    failed += status != 0
sys.exit(1 if failed else 0)
"""


def third_party_imports() -> list[str]:
    """The top-level names of every non-medsynth, non-relative import under medsynth/ (function bodies too)."""
    names = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names.add(node.module.split(".")[0])
    return sorted(names - {"medsynth", "__future__"})


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork; the per-package test still runs")
def test_every_module_imports_alone():
    """Every module, imported first and alone (no medsynth module loaded before it): an import cycle fails
    whichever module enters it first."""
    result = subprocess.run([sys.executable, "-c", _FORK_IMPORTER, *third_party_imports()],
                            input="\n".join(all_modules()), capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-6000:]
