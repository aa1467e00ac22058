"""comparison.json|md from prediction files on disk: the pre-specified primary endpoint pooled over seeds and
Holm-corrected across arms, the secondary endpoints seed by seed, the cohort in images and patients, the
training compute, the power statement. No network is trained: the arms' files are written by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from medsynth.classify.experiment import write_comparison
from medsynth.errors import InputError
from medsynth.stats import tables
from medsynth.stats.classification import classification_report, predict_labels

CLASSES = ["benign", "malignant"]
N = 80


def _cohort():
    """80 test images, 12 malignant, from 50 patients (some with 2-3 images)."""
    y = np.r_[np.ones(12, int), np.zeros(N - 12, int)]
    sizes = [1, 2, 3, 1, 1] * 10
    patients = np.repeat([f"p{i:02d}" for i in range(len(sizes))], sizes)[:N]
    items = [{"image": f"/data/img{i:03d}.png", "patient_id": str(p), "label": int(t)}
             for i, (p, t) in enumerate(zip(patients, y, strict=True))]
    return items, y


def _write_arm(root, arm, seed, items, y, quality, steps):
    rng = np.random.default_rng(1000 * seed + quality * 10)
    p1 = np.clip(0.5 + (y - 0.5) * quality / 10 + rng.normal(0, 0.25, len(y)), 0.001, 0.999)
    probs = np.c_[1 - p1, p1]
    pred = predict_labels(probs, 0.5, positive=1)
    folder = root / arm / f"seed_{seed}" / "train"
    tables.write_predictions_csv(folder / "predictions.csv", items, y, probs, pred, CLASSES)
    report = classification_report(y, probs, CLASSES, threshold=0.5, positive=1, n_resamples=50,
                                   groups=[it["patient_id"] for it in items])
    tables.write_metrics_json(folder / "metrics.json", report, {"arm": arm, "seed": seed, "steps_per_epoch": steps,
                                                                "optimizer_steps": 10 * steps,
                                                                "training_images": 32 * steps})
    return pred


def test_primary_endpoint_pooled_over_seeds_with_holm(tmp_path):
    items, y = _cohort()
    preds = {}
    for arm, quality in (("real", 4), ("synthetic", 7), ("rebalance", 4)):
        for seed in (0, 1):
            preds[arm, seed] = _write_arm(tmp_path, arm, seed, items, y, quality, steps=33)
    result = write_comparison(tmp_path, n_resamples=200, n_permutations=999)
    assert result is not None
    assert result["cohort"] == {"n": N, "n_patients": 50, "positive_class": "malignant", "positive_images": 12,
                                "positive_patients": len({it["patient_id"] for it in items[:12]})}
    primary = result["primary"]
    assert set(primary) == {"synthetic", "rebalance"} and result["primary_endpoint"] == "balanced_accuracy"
    for arm in primary:
        per_seed = [balanced_accuracy_score(y, preds[arm, s]) - balanced_accuracy_score(y, preds["real", s])
                    for s in (0, 1)]
        assert primary[arm]["difference"] == pytest.approx(np.mean(per_seed))
        assert primary[arm]["seeds"] == [0, 1] and primary[arm]["n_patients"] == 50
    # Holm with k = 2: the smaller p doubled, the larger kept (or raised to the smaller's adjusted value)
    p = sorted((primary[a]["p_value"], a) for a in primary)
    assert primary[p[0][1]]["p_holm"] == pytest.approx(min(1.0, 2 * p[0][0]))
    assert primary[p[1][1]]["p_holm"] == pytest.approx(max(min(1.0, 2 * p[0][0]), p[1][0]))
    assert primary["synthetic"]["k"] == 2
    assert set(result["seeds"]) == {"0", "1"} and set(result["seeds"]["0"]) == {"synthetic", "rebalance"}
    assert "Obuchowski" in result["seeds"]["0"]["synthetic"]["roc_auc"]["method"]
    design = result["power"]["design"]
    assert design["positive_images"] == 12 and design["discordance_from"].startswith("independent errors")
    real_recall = json.loads((tmp_path / "real" / "seed_0" / "train" / "metrics.json").read_text())[
        "metrics"]["recall/malignant"]["value"]
    assert design["discordance"] == pytest.approx(2 * real_recall * (1 - real_recall))
    text = (tmp_path / "comparison.md").read_text()
    assert "Test split: 80 images from 50 patients; malignant (the minority class): 12 images" in text
    assert "## Primary endpoint: Δ balanced accuracy vs real" in text
    assert text.index("## Primary endpoint") < text.index("## Secondary endpoints, seed 0")
    assert "every arm 33 optimiser steps per epoch" in text
    assert "## Power of this test set" in text and "Calibration and operating point, seed 0" in text
    json.dumps(json.loads((tmp_path / "comparison.json").read_text()), allow_nan=False)


def test_compute_difference_and_other_endpoint_are_reported(tmp_path):
    items, y = _cohort()
    _write_arm(tmp_path, "real", 0, items, y, 4, steps=19)
    _write_arm(tmp_path, "synthetic", 0, items, y, 7, steps=33)
    result = write_comparison(tmp_path, n_resamples=100, primary_endpoint="minority_recall", n_permutations=499)
    assert result["primary_endpoint"] == "minority_recall"
    text = (tmp_path / "comparison.md").read_text()
    assert "Training compute DIFFERS" in text and "## Primary endpoint: Δ minority recall vs real" in text


def test_arms_on_other_test_images_are_refused(tmp_path):
    items, y = _cohort()
    _write_arm(tmp_path, "real", 0, items, y, 4, steps=19)
    moved = [{**it, "image": it["image"].replace("img", "other")} for it in items]
    _write_arm(tmp_path, "synthetic", 0, moved, y, 7, steps=19)
    with pytest.raises(InputError, match="other test images"):
        write_comparison(tmp_path, n_resamples=50, n_permutations=99)
