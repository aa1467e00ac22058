"""The package layers of ``medsynth.LAYERS`` hold: every import points down (or stays in its package), and every
package and module imports alone in a fresh interpreter (no import cycle)."""

from __future__ import annotations

import ast
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


def import_time_edges(path: Path) -> set[str]:
    """The medsynth modules that importing ``path`` imports at once: its module-level imports (not those inside
    functions, which run later), each with the packages above it (importing ``a.b.c`` runs ``a.b/__init__``)."""
    module = module_name(path)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top_level = ast.Module(body=[n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))], type_ignores=[])
    known = set(all_modules())
    edges = set()
    for _, target in imported_modules(ast.unparse(top_level), module, is_package):
        while target not in known and "." in target:  # ``from pkg import name``: a module, else pkg's attribute
            target = target.rpartition(".")[0]
        parts = target.split(".")
        edges |= {".".join(parts[:k]) for k in range(1, len(parts) + 1)} & known
    # the packages above ``module`` are already being imported when it runs (Python imports them first)
    parts = module.split(".")
    return edges - {".".join(parts[:k]) for k in range(1, len(parts) + 1)}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle found by a depth-first walk of ``graph`` (module -> modules it imports at import time)."""
    cycles, state = [], {}
    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"
    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return cycles


def test_cycle_finder_finds_a_cycle():
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert import_cycles({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


def test_no_import_cycle_between_modules():
    """No chain of module-level imports leads back to where it started (a cycle breaks whichever module a user
    imports first); function-level imports run later and cannot form one."""
    graph = {module_name(p): import_time_edges(p) for p in PACKAGE.rglob("*.py")}
    assert sum(map(len, graph.values())) > 50, "the graph must see the real imports"
    assert not import_cycles(graph), import_cycles(graph)
