"""multi_gpu_train.yaml under torchrun with two CPU processes (gloo): sharded data, rank-0-only outputs."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import torch

from medsynth.data.datalist import load_datalist
from tests.bundles.conftest import REPO, TINY, TINY_CLS


def _torchrun(name: str, tmp_path, settings: dict) -> subprocess.CompletedProcess:
    """``bundles/<name>``'s train.yaml + multi_gpu_train.yaml under torchrun with two CPU processes; must succeed."""
    configs = REPO / "bundles" / name / "configs"
    overrides = [arg for key, value in {**settings, "model_path": tmp_path / "model.pt",
                                        "bundle_root": REPO / "bundles" / name}.items()
                 for arg in (f"--{key}", str(value))]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2",
               "-m", "monai.bundle", "run",
               "--config_file", str([str(configs / "train.yaml"), str(configs / "multi_gpu_train.yaml")]),
               "--meta_file", str(configs / "metadata.json"), "--logging_file", str(configs / "logging.conf"),
               *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MEDSYNTH_CACHE": str(tmp_path / "cache")}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_cdcgan_trains_with_two_processes(tiny_sets, tmp_path):
    out = tmp_path / "train"
    _torchrun("cdcgan", tmp_path, {**TINY, "datalist": tiny_sets["skin"], "output_dir": out})

    # each rank reads its half of the training split: iterations per epoch halve
    n_train = len(load_datalist(tiny_sets["skin"])["training"])
    per_epoch = -(-n_train // 2) // TINY["batch_size"]
    final = torch.load(next((out / "checkpoints").glob("checkpoint_final*.pt")), weights_only=True)
    assert final["trainer"]["iteration"] == per_epoch * TINY["max_epochs"]
    assert not any(k.startswith("module.") for k in final["g_network"]), "DDP wrappers are not saved"
    # only rank 0 logs and writes: one TensorBoard file, one FID row per epoch, and the exported generator
    assert len(list((out / "tensorboard").iterdir())) == 1
    assert len((out / "fid.csv").read_text().splitlines()) == 1 + TINY["max_epochs"]
    assert (tmp_path / "model.pt").is_file() and (out / "samples" / "samples_latest.png").is_file()
    assert not list(tmp_path.glob("runs")), "no rank writes a stray ./runs folder"


def test_classifier_trains_with_two_processes(tmp_path):
    """Two gloo processes train DDP copies on halves of the data (the freeze schedule included: frozen layers get
    no gradients); both stop together and rank 0 alone writes."""
    from medsynth.data.embedded import demo_datalist

    skin = demo_datalist("skin", n=120, root=tmp_path / "skin")
    out = tmp_path / "train"
    result = _torchrun("classifier", tmp_path, {**TINY_CLS, "datalist": skin, "output_dir": out,
                                                "arm": "real,rebalance", "rebalance": "oversample",
                                                "freeze_epochs": 1})  # head alone, then all layers
    # each rank reads half the training split per epoch: compute-matched steps count a rank's share of it
    n_train = len(load_datalist(skin)["training"])
    per_rank = math.ceil(math.ceil(n_train / 2) / TINY_CLS["batch_size"])
    assert f"Iter: {per_rank}/{per_rank}" in result.stdout + result.stderr
    for arm in ("real", "rebalance"):
        state = torch.load(out / arm / "seed_0" / "train" / "model.pt", weights_only=True)
        assert not any(k.startswith("module.") for k in state), "DDP wrappers are not saved"
        report = json.loads((out / arm / "seed_0" / "train" / "metrics.json").read_text())
        assert report["steps_per_epoch"] == per_rank and report["optimizer_steps"] == per_rank * report["epochs_run"]
    assert (out / "comparison.json").is_file() and (tmp_path / "model.pt").is_file()
    assert len(list((out / "tensorboard" / "real" / "seed_0").iterdir())) == 1, "only rank 0 writes TensorBoard"
