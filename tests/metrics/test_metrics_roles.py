"""evaluate-synthetic takes its real reference and held-out images from validation unless told otherwise, and
its report says which split or folder each role used (reference, memorization_train, memorization_heldout)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medsynth.data.datalist import write_datalist
from medsynth.errors import InputError
from medsynth.metrics.commands import register
from medsynth.metrics.evaluate import evaluate_synthetic
from medsynth.metrics.features import RandomCNNExtractor
from medsynth.metrics.quality import MetricSettings

FAST = MetricSettings(bootstrap=2, kid_subsets=2, ms_ssim_pairs=5, grid_pairs=2)
FLAGS = ["--extractor", "random-cnn", "--bootstrap", "2", "--kid-subsets", "2", "--ms-ssim-pairs", "5",
         "--grid-pairs", "2", "--no-progress"]


def _images(folder: Path, n: int, seed: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        paths.append(folder / f"{seed}_{i}.png")
        Image.fromarray(np.clip(rng.normal(100, 30, (32, 32)), 0, 255).astype(np.uint8)).save(paths[-1])
    return paths


def _run(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="medsynth")
    register(parser.add_subparsers(dest="verb", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def lists(tmp_path) -> dict[str, Path]:
    """A real datalist of 10 training, 6 validation and 8 test images, and a synthetic one of 7."""
    def items(split: str, n: int, seed: int) -> list[dict]:
        return [{"image": str(p), "label": 0, "patient_id": f"{split}{i}", "source": "real"}
                for i, p in enumerate(_images(tmp_path / "real" / split, n, seed))]

    real = write_datalist({"classes": ["lesion"], "modality": "other", "training": items("training", 10, 1),
                           "validation": items("validation", 6, 2), "test": items("test", 8, 3)},
                          tmp_path / "real" / "datalist.json")
    fake = [{"image": str(p), "label": 0, "source": "synthetic"} for p in _images(tmp_path / "syn", 7, 4)]
    synthetic = write_datalist({"classes": ["lesion"], "modality": "other", "source": "synthetic",
                                "training": fake}, tmp_path / "syn" / "datalist.json")
    return {"real": real, "synthetic": synthetic}


def test_a_datalist_run_uses_validation_for_reference_and_heldout_by_default(lists, tmp_path):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="verb"))
    assert parser.parse_args(["evaluate-synthetic", "--real", "r", "--synthetic", "s", "--out", "o"]).real_split \
        == "validation"
    report = evaluate_synthetic(lists["real"], lists["synthetic"], tmp_path / "out", extractor=RandomCNNExtractor(0),
                                settings=FAST, progress=False)
    real = str(lists["real"])
    assert report["roles"] == {
        "reference": {"input": real, "split": "validation", "images": 6},
        "memorization_train": {"input": real, "split": "training", "images": 10},
        "memorization_heldout": {"input": real, "split": "validation", "images": 6}}
    assert report["overall"]["fid"]["n"]["real"] == 6
    assert report["memorization"]["fraction_flagged"]["n"] == {"synthetic": 7, "training": 10, "heldout": 6}
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved["roles"]["memorization_heldout"]["split"] == "validation"
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert f"**Role reference:** {real}, split validation, 6 images" in markdown
    assert f"**Role memorization_heldout:** {real}, split validation, 6 images" in markdown


def test_real_split_test_is_used_only_when_asked_for(lists, tmp_path):
    report = _run(["evaluate-synthetic", "--real", str(lists["real"]), "--synthetic", str(lists["synthetic"]),
                   "--out", str(tmp_path / "out"), "--real-split", "test", *FLAGS])
    assert report["roles"]["reference"] == {"input": str(lists["real"]), "split": "test", "images": 8}
    assert report["roles"]["memorization_heldout"] == {"input": str(lists["real"]), "split": "test", "images": 8}
    assert report["roles"]["memorization_train"]["split"] == "training"


def test_an_empty_validation_split_is_refused_and_names_the_test_option(lists, tmp_path):
    datalist = json.loads(lists["real"].read_text())
    datalist["validation"] = []
    path = tmp_path / "real" / "no_validation.json"
    path.write_text(json.dumps(datalist))
    with pytest.raises(InputError, match="--real-split test"):
        evaluate_synthetic(path, lists["synthetic"], tmp_path / "out", extractor=RandomCNNExtractor(0),
                           settings=FAST, progress=False)


def test_folders_name_the_generators_training_images_with_real_train(tmp_path):
    reference, train, held = tmp_path / "reference", tmp_path / "train", tmp_path / "heldout"
    for folder, n, seed in ((reference, 6, 1), (train, 9, 2), (held, 5, 3), (tmp_path / "syn", 7, 4)):
        _images(folder, n, seed)
    report = _run(["evaluate-synthetic", "--real", str(reference), "--real-train", str(train), "--real-heldout",
                   str(held), "--synthetic", str(tmp_path / "syn"), "--out", str(tmp_path / "out"), *FLAGS])
    assert report["roles"] == {"reference": {"input": str(reference), "split": None, "images": 6},
                               "memorization_train": {"input": str(train), "split": None, "images": 9},
                               "memorization_heldout": {"input": str(held), "split": None, "images": 5}}
    assert report["overall"]["fid"]["n"]["real"] == 6
    assert report["memorization"]["fraction_flagged"]["n"] == {"synthetic": 7, "training": 9, "heldout": 5}
    assert all(Path(p["training"]).parent == train for p in report["memorization"]["closest_pairs"])
    assert f"**Role memorization_train:** {train} (folder), 9 images" in (tmp_path / "out" / "report.md").read_text()


def test_a_heldout_folder_without_real_train_is_refused(tmp_path):
    for name, seed in (("reference", 1), ("heldout", 3), ("syn", 4)):
        _images(tmp_path / name, 5, seed)
    with pytest.raises(ValueError, match="--real-train"):
        evaluate_synthetic(tmp_path / "reference", tmp_path / "syn", tmp_path / "out",
                           extractor=RandomCNNExtractor(0), real_heldout=tmp_path / "heldout", settings=FAST,
                           progress=False)
