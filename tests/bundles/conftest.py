"""Tiny data sets and settings for running the GAN bundles end to end (model-zoo unit-test pattern)."""

from __future__ import annotations

from pathlib import Path

import pytest
from monai.bundle import ConfigWorkflow

from medsynth.data.embedded import demo_datalist

REPO = Path(__file__).resolve().parents[2]

# sizes that make a bundle run take seconds on a CPU: 16 px, 2 blocks, 8 base channels
TINY = {"image_size": 16, "num_blocks": 2, "base_channels": 8, "latent_size": 16, "batch_size": 8,
        "max_epochs": 2, "fid_samples": 16, "fid_interval": 1, "grid_interval": 1, "checkpoint_interval": 1,
        "log_interval": 1}
# and for the classifier bundle: the bone-fracture study's small CNN at 32 px, 2 epochs, few resamples
TINY_CLS = {"architecture": "fracture_cnn", "image_size": 32, "batch_size": 16, "max_epochs": 2, "patience": 2,
            "n_resamples": 50, "log_interval": 1, "phases": 2}
GENERATOR_KEYS = ("image_size", "num_blocks", "base_channels", "latent_size")


@pytest.fixture(scope="session")
def tiny_sets(tmp_path_factory) -> dict[str, Path]:
    """Datalists of small demo sets: skin (80 RGB images, 7.5:1) and xray (40 grey DICOM, 2:1)."""
    root = tmp_path_factory.mktemp("tiny-demo")
    return {"skin": demo_datalist("skin", n=80, root=root / "skin"),
            "xray": demo_datalist("xray", n=40, root=root / "xray")}


def bundle_workflow(name: str, kind: str, out: Path, **override) -> ConfigWorkflow:
    """``ConfigWorkflow`` of ``bundles/<name>/configs/<kind>.yaml`` writing only under ``out``."""
    configs = REPO / "bundles" / name / "configs"
    workflow_type = "train" if kind.endswith("train") else "infer"
    files = [str(configs / "train.yaml"), str(configs / "multi_gpu_train.yaml")] if kind == "multi_gpu_train" else \
        str(configs / f"{kind}.yaml")
    override = {"bundle_root": str(REPO / "bundles" / name), "model_path": str(out / "model.pt"), **override}
    override.setdefault("output_dir", str(out / ("train" if workflow_type == "train" else "synthetic")))
    return ConfigWorkflow(config_file=files, meta_file=str(configs / "metadata.json"),
                          logging_file=str(configs / "logging.conf"), workflow_type=workflow_type, **override)


def run_workflow(workflow: ConfigWorkflow) -> None:
    workflow.initialize()
    assert not workflow.check_properties(), "required bundle properties missing"
    workflow.run()
    workflow.finalize()


def root_cause(error: BaseException) -> BaseException:
    """The innermost exception of a chain (MONAI wraps config errors in RuntimeError)."""
    while error.__cause__ is not None:
        error = error.__cause__
    return error
