"""evaluate_synthetic end to end, with the fixed-seed random CNN: folders, datalists, CT, the audit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from medsynth.data.datalist import write_datalist
from medsynth.errors import InputError
from medsynth.metrics.evaluate import evaluate_synthetic
from medsynth.metrics.features import RandomCNNExtractor
from medsynth.metrics.quality import MetricSettings

FAST = MetricSettings(bootstrap=5, kid_subsets=5, ms_ssim_pairs=20, grid_pairs=4)


def _blobs(folder: Path, n: int, seed: int, bright: int) -> list[Path]:
    """``n`` 32×32 gray PNGs: a noisy disc of brightness ``bright``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng, yy, xx = np.random.default_rng(seed), *np.mgrid[:32, :32]
    paths = []
    for i in range(n):
        cy, cx, r = rng.uniform(10, 22, 2).tolist() + [rng.uniform(4, 9)]
        disc = ((yy - cy) ** 2 + (xx - cx) ** 2 < r * r) * bright
        pixels = np.clip(disc + rng.normal(40, 15, (32, 32)), 0, 255).astype(np.uint8)
        paths.append(folder / f"{seed}_{i}.png")
        Image.fromarray(pixels).save(paths[-1])
    return paths


@pytest.fixture
def folders(tmp_path) -> dict[str, Path]:
    root = tmp_path / "data"
    for cls, bright in (("benign", 120), ("malignant", 200)):
        _blobs(root / "real" / cls, 24, 1 if cls == "benign" else 2, bright)
        _blobs(root / "heldout" / cls, 16, 3 if cls == "benign" else 4, bright)
        _blobs(root / "synthetic" / cls, 12, 5 if cls == "benign" else 6, bright)
    copies = sorted((root / "real" / "malignant").glob("*.png"))[:3]
    for i, path in enumerate(copies):
        shutil.copy(path, root / "synthetic" / "malignant" / f"copy{i}.png")
    return {name: root / name for name in ("real", "heldout", "synthetic")}


def test_folders_per_class_overall_and_memorization(folders, tmp_path):
    out = tmp_path / "report"
    report = evaluate_synthetic(folders["real"], folders["synthetic"], out, extractor=RandomCNNExtractor(0),
                                real_train=folders["real"], real_heldout=folders["heldout"], settings=FAST,
                                progress=False)
    assert set(report["classes"]) == {"benign", "malignant"} and report["extractor"] == "random-cnn(seed=0)"
    malignant = report["classes"]["malignant"]
    assert malignant["fid"]["n"] == {"real": 24, "synthetic": 15}
    assert malignant["fid"]["extractor"] == "random-cnn(seed=0)"
    assert malignant["fid_real_vs_real"]["n"] == {"real_halves": 12}
    assert report["overall"]["fid"]["n"] == {"real": 48, "synthetic": 27}
    fids = [m["fid"]["value"] for m in report["classes"].values()]
    assert report["overall"]["intra_class_fid"]["value"] == pytest.approx(np.mean(fids))
    two_scales = [0.0448 / 0.3304, 0.2856 / 0.3304]  # 32×32 images
    assert malignant["ms_ssim"]["synthetic"]["scale_weights"] == pytest.approx(two_scales)
    memo = report["memorization"]
    flagged = {Path(p["synthetic"]).name for p in memo["closest_pairs"] if p["flagged"]}
    assert {"copy0.png", "copy1.png", "copy2.png"} <= flagged  # exact copies sit at distance 0
    assert [p["distance"] for p in memo["closest_pairs"][:3]] == [0.0, 0.0, 0.0]
    assert memo["fraction_flagged_by_class"]["malignant"] >= 3 / 15
    saved = json.loads((out / "report.json").read_text())
    assert saved["overall"]["fid"]["value"] == pytest.approx(report["overall"]["fid"]["value"])
    markdown = (out / "report.md").read_text()
    assert "real-vs-real FID" in markdown and "copy0.png" in markdown and "random-cnn(seed=0)" in markdown
    with Image.open(out / "closest_pairs.png") as grid:  # grid_pairs = 4: one row of 4 pairs of 96 px tiles
        assert grid.size == (4 + 4 * (2 * 96 + 4) + 3 * 12 + 4, 4 + 96 + 4)


def test_datalists_use_the_test_split_and_the_synthetic_items(folders, tmp_path):
    real_items = [{"image": str(p), "label": int(p.parent.name == "malignant"), "patient_id": f"p{i}"}
                  for i, p in enumerate(sorted(folders["real"].glob("*/*.png")))]
    held = [{"image": str(p), "label": int(p.parent.name == "malignant"), "patient_id": f"h{i}",
             "source": "real"} for i, p in enumerate(sorted(folders["heldout"].glob("*/*.png")))]
    real = write_datalist({"classes": ["benign", "malignant"], "modality": "other",
                           "training": [{**it, "source": "real"} for it in real_items], "validation": [],
                           "test": held}, tmp_path / "lists" / "real.json")
    synthetic_items = [{"image": str(p), "label": 1, "patient_id": "gan", "source": "synthetic"}
                       for p in sorted((folders["synthetic"] / "malignant").glob("*.png"))]
    synthetic = write_datalist({"classes": ["benign", "malignant"], "modality": "other",
                                "training": synthetic_items + real_items[:2]},
                               tmp_path / "lists" / "syn.json")
    report = evaluate_synthetic(real, synthetic, tmp_path / "out", extractor=RandomCNNExtractor(0),
                                real_split="test", settings=FAST, progress=False)
    assert list(report["classes"]) == ["malignant"]  # only synthetic items, and only their class
    assert report["classes"]["malignant"]["fid"]["n"] == {"real": 16, "synthetic": 15}  # test split reference
    assert report["inputs"]["real_reference"].endswith("real.json [test]")
    assert report["memorization"]["fraction_flagged"]["n"] == {"synthetic": 15, "training": 48, "heldout": 32}


def test_a_real_folder_without_heldout_skips_the_audit(folders, tmp_path):
    report = evaluate_synthetic(folders["real"] / "benign", folders["synthetic"] / "benign", tmp_path / "out",
                                extractor=RandomCNNExtractor(0), settings=FAST, progress=False)
    assert report["classes"] == {} and report["overall"]["fid"]["n"] == {"real": 24, "synthetic": 12}
    assert "--real-heldout" in report["memorization"]["skipped"]
    assert "Skipped:" in (tmp_path / "out" / "report.md").read_text()


def test_ct_rois_in_hu_use_the_datalist_window(tmp_path):
    rng = np.random.default_rng(0)

    def roi(path: Path, level: float) -> dict:
        hu = (rng.normal(level, 30, (32, 32))).astype(np.int16)
        nib.save(nib.Nifti1Image(hu, np.eye(4)), path)
        return {"image": str(path), "label": 0, "patient_id": path.stem, "source": "real"}

    (tmp_path / "rois").mkdir()
    train = [roi(tmp_path / "rois" / f"t{i}.nii.gz", 50) for i in range(10)]
    test = [roi(tmp_path / "rois" / f"s{i}.nii.gz", 50) for i in range(10)]
    real = write_datalist({"classes": ["cyst"], "modality": "ct", "window": [-100, 200], "training": train,
                           "validation": test}, tmp_path / "real.json")
    fake = [{**roi(tmp_path / "rois" / f"g{i}.nii.gz", 150), "source": "synthetic"} for i in range(10)]
    synthetic = write_datalist({"classes": ["cyst"], "modality": "ct", "training": fake},
                               tmp_path / "syn.json")
    report = evaluate_synthetic(real, synthetic, tmp_path / "out", extractor=RandomCNNExtractor(0),
                                settings=FAST, progress=False)
    assert report["preprocessing"]["window"] == [-100.0, 200.0]
    cyst = report["classes"]["cyst"]
    assert cyst["fid"]["value"] > cyst["fid_real_vs_real"]["value"]  # 100 HU brighter is visible


def test_output_inside_an_input_folder_is_refused(folders):
    with pytest.raises(InputError, match="inside the input folder"):
        evaluate_synthetic(folders["real"], folders["synthetic"], folders["real"] / "out",
                           extractor=RandomCNNExtractor(0), settings=FAST, progress=False)
