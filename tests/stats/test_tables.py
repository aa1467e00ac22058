"""Classifier evaluation outputs: predictions CSV round trip, metrics JSON, Markdown tables, plots, TensorBoard."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest

from medsynth.errors import InputError
from medsynth.stats import tables as out
from tests.helpers import random_predictions as _predictions

CLASSES = ["benign", "malignant"]


def _entry(value, low, high, n=120, method="wilson", **extra):
    return {"value": value, "ci_low": low, "ci_high": high, "n": n, "method": method, **extra}


def _report(bacc=0.7, recall=0.667, auc=0.81, ap=0.45, threshold=0.41) -> dict:
    """A hand-made report in the shape of classification_report's."""
    return {
        "n": 120, "classes": CLASSES, "positive_class": "malignant", "threshold": threshold,
        "prevalence": {"benign": 0.85, "malignant": 0.15},
        "confusion_matrix": [[95, 7], [6, 12]],
        "metrics": {
            "accuracy": _entry(0.89, 0.82, 0.93),
            "balanced_accuracy": _entry(bacc, 0.62, 0.78, method="stratified bootstrap"),
            "mcc": _entry(-0.0123, -0.2, 0.31, method="stratified bootstrap"),
            "roc_auc": _entry(auc, 0.72, 0.9, method="delong"),
            "pr_auc": _entry(ap, 0.3, 0.6, method="stratified bootstrap", baseline=0.15),
            "precision/benign": _entry(0.941, 0.88, 0.97, n=101),
            "precision/malignant": _entry(None, None, None, n=0),
            "recall/benign": _entry(0.931, 0.86, 0.97, n=102),
            "recall/malignant": _entry(recall, 0.44, 0.84, n=18),
            "specificity/malignant": _entry(0.931, 0.864, 0.966, n=102),
            "f1/malignant": _entry(0.649, 0.5, 0.77, method="stratified bootstrap"),
        },
    }


def _comparison() -> dict:
    paired = {"a": 0.7, "b": 0.76, "difference": 0.06, "ci_low": -0.02, "ci_high": 0.14, "p_value": 0.15,
              "n_permutations": 10000, "interval": "sign-flip test inversion", "test": "paired sign-flip test"}
    return {
        "mcnemar": {"b": 9, "c": 3, "n": 120, "p_value": 0.146, "method": "exact McNemar"},
        "roc_auc": {"auc_a": 0.81, "auc_b": 0.86, "difference": 0.05, "ci_low": -0.01, "ci_high": 0.11, "z": 1.6,
                    "p_value": 0.11, "method": "Obuchowski clustered"},
        "balanced_accuracy": paired,
        "minority_recall": {**paired, "difference": 0.111, "ci_low": 0.0, "ci_high": 0.222, "p_value": 0.0004},
        "pr_auc": {"a": 0.45, "b": 0.42, "difference": -0.03, "ci_low": -0.1, "ci_high": 0.04, "p_value": 0.5,
                   "n_resamples": 1000, "interval": "cluster bootstrap (BCa)",
                   "test": "cluster bootstrap (two-sided, percentile)"},
    }




# ---------------------------------------------------------------- predictions CSV

def test_predictions_round_trip(tmp_path):
    items, y, probs, pred = _predictions()
    path = out.write_predictions_csv(tmp_path / "sub" / "predictions.csv", items, y, probs, pred, CLASSES)
    images, y2, probs2, pred2, classes = out.read_predictions_csv(path)
    assert images == [it["image"] for it in items]
    assert classes == CLASSES
    np.testing.assert_array_equal(y2, y)
    np.testing.assert_array_equal(probs2, probs)  # exact: written with repr
    np.testing.assert_array_equal(pred2, pred)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["image", "patient_id", "source", "label", "label_name", "prob_benign",
                             "prob_malignant", "pred", "pred_name", "correct"]
    for row, item, label, p in zip(rows, items, y, pred, strict=True):
        assert row["patient_id"] == item["patient_id"] and row["source"] == "real"
        assert row["label_name"] == CLASSES[label] and row["pred_name"] == CLASSES[p]
        assert row["correct"] == str(int(label == p))
    assert sorted(os.listdir(path.parent)) == ["predictions.csv"]  # no temporary file left


def test_predictions_unlabelled_and_no_patient(tmp_path):
    items, y, probs, pred = _predictions(n=4, k=3)
    items = [{"image": it["image"]} for it in items]
    y = [None, 1, -1, 2]
    path = out.write_predictions_csv(tmp_path / "p.csv", items, y, probs, pred, ["a", "b", "c"])
    header = path.read_text().splitlines()[0].split(",")
    assert "patient_id" not in header and "source" in header
    _, y2, probs2, _, classes = out.read_predictions_csv(path)
    assert classes == ["a", "b", "c"]
    np.testing.assert_array_equal(y2, [-1, 1, -1, 2])
    np.testing.assert_array_equal(probs2, probs)
    with open(path, newline="") as f:
        first = next(csv.DictReader(f))
    assert first["label"] == first["label_name"] == first["correct"] == ""


def test_predictions_write_rejects_mismatch(tmp_path):
    items, y, probs, pred = _predictions()
    with pytest.raises(ValueError, match="probs"):
        out.write_predictions_csv(tmp_path / "p.csv", items, y, probs[:, :1], pred, CLASSES)
    with pytest.raises(ValueError, match="predictions"):
        out.write_predictions_csv(tmp_path / "p.csv", items, y, probs, pred[:-1], CLASSES)
    assert not (tmp_path / "p.csv").exists()


def test_predictions_failed_write_keeps_old_file(tmp_path, monkeypatch):
    items, y, probs, pred = _predictions()
    path = out.write_predictions_csv(tmp_path / "p.csv", items, y, probs, pred, CLASSES)
    before = path.read_bytes()

    def fail(*args):
        raise OSError("disk full")
    monkeypatch.setattr(out.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        out.write_predictions_csv(path, items[:2], y[:2], probs[:2], pred[:2], CLASSES)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["p.csv"]


GOOD = ("image,source,label,label_name,prob_benign,prob_malignant,pred,pred_name,correct\n"
        "a.png,real,0,benign,0.75,0.25,0,benign,1\n")


@pytest.mark.parametrize("text, reason", [
    ("", "empty"),
    ("image,label,prob_benign,prob_malignant\na.png,0,0.5,0.5\n", "missing column"),
    ("image,label,pred,prob_benign\na.png,0,0,1.0\n", "at least 2 classes"),
    (GOOD.splitlines()[0] + "\n", "header only"),
    (GOOD + "b.png,real,1,malignant,0.1\n", "row 3: 5 fields"),
    (GOOD + "b.png,real,1,malignant,0.1,high,1,malignant,1\n", "row 3: a prob_<class> cell is not a number"),
    (GOOD + "b.png,real,1,malignant,0.1,1.9,1,malignant,1\n", "row 3: probabilities"),
    (GOOD + "b.png,real,1,malignant,0.1,0.9,2,malignant,1\n", "row 3: pred 2 is not a class index"),
    (GOOD + "b.png,real,x,malignant,0.1,0.9,1,malignant,1\n", "row 3: label 'x'"),
    (GOOD + "b.png,real,0,malignant,0.1,0.9,1,malignant,0\n", "row 3: label_name 'malignant' does not match"),
])
def test_malformed_predictions_raise_input_error(tmp_path, text, reason):
    path = tmp_path / "predictions.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=reason) as info:
        out.read_predictions_csv(path)
    assert info.value.path == str(path)
    assert str(path) in str(info.value)


def test_missing_predictions_file(tmp_path):
    with pytest.raises(InputError, match="not found") as info:
        out.read_predictions_csv(tmp_path / "nope.csv")
    assert info.value.path == str(tmp_path / "nope.csv")


# ---------------------------------------------------------------- metrics JSON

def test_write_metrics_json(tmp_path):
    report = _report()
    report["metrics"]["mcc"]["ci_low"] = np.float64("nan")
    report["confusion_matrix"] = np.array(report["confusion_matrix"])
    path = out.write_metrics_json(tmp_path / "m" / "metrics.json", report,
                                  {"arm": "real", "seed": np.int64(3), "folder": tmp_path})
    text = path.read_text()
    assert text.startswith('{\n  "n": 120')
    data = json.loads(text)
    assert data["arm"] == "real" and data["seed"] == 3 and data["folder"] == str(tmp_path)
    assert data["metrics"]["mcc"]["ci_low"] is None  # nan -> null, plain JSON
    assert data["confusion_matrix"] == [[95, 7], [6, 12]]
    assert data["metrics"]["roc_auc"] == _report()["metrics"]["roc_auc"]
    with pytest.raises(ValueError, match="threshold"):
        out.write_metrics_json(tmp_path / "x.json", _report(), {"threshold": 0.5})


# ---------------------------------------------------------------- Markdown

def test_metrics_table():
    text = out.metrics_table(_report())
    assert "| metric | value | 95 % CI | n | method |" in text
    assert "| accuracy | 0.890 | [0.820, 0.930] | 120 | wilson |" in text
    assert "| balanced accuracy | 0.700 | [0.620, 0.780] | 120 | stratified bootstrap |" in text
    assert "| MCC | -0.012 | [-0.200, 0.310] | 120 | stratified bootstrap |" in text
    assert "| ROC-AUC | 0.810 | [0.720, 0.900] | 120 | delong |" in text
    assert ("| PR-AUC (average precision) | 0.450 | [0.300, 0.600] | 120 | stratified bootstrap; chance level "
            "(prevalence) 0.150 |") in text
    assert "| recall (malignant) | 0.667 | [0.440, 0.840] | 18 | wilson |" in text
    assert "| precision (malignant) | — | — | 0 | wilson |" in text  # undefined
    assert "| true \\ predicted | benign | malignant |" in text
    assert "| benign | 95 | 7 |" in text and "| malignant | 6 | 12 |" in text
    assert "threshold 0.41 on P(malignant), chosen on validation" in text
    assert "prevalence benign 0.850, malignant 0.150" in text


def test_metrics_table_argmax():
    report = _report(threshold=None)
    assert "argmax" in out.metrics_table(report) and "threshold 0" not in out.metrics_table(report)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split(" | ")]


def test_comparison_table():
    rows = [("real", _report(), None), ("synthetic", _report(bacc=0.76, recall=0.778, auc=0.86), _comparison())]
    text = out.comparison_table(rows, baseline="real")
    lines = text.splitlines()
    header = _cells(lines[0])
    assert header[0] == "arm" and len(header) == 10
    assert "minority recall (malignant) [95 % CI]" in header
    assert "PR-AUC (chance) [95 % CI]" in header
    assert "Δ balanced accuracy vs real [95 % CI], p" in header
    assert "Δ ROC-AUC vs real [95 % CI], p" in header
    assert header[-1] == "McNemar p"
    real, synthetic = _cells(lines[2]), _cells(lines[3])
    assert real == ["real", "0.700 [0.620, 0.780]", "0.667 [0.440, 0.840]", "0.931 [0.864, 0.966]",
                    "0.810 [0.720, 0.900]", "0.450 [0.300, 0.600] (chance 0.150)", "—", "—", "—", "—"]
    assert synthetic == ["synthetic", "0.760 [0.620, 0.780]", "0.778 [0.440, 0.840]", "0.931 [0.864, 0.966]",
                         "0.860 [0.720, 0.900]", "0.450 [0.300, 0.600] (chance 0.150)",
                         "+0.060 [-0.020, +0.140], p = 0.150", "+0.111 [+0.000, +0.222], p < 0.001",
                         "+0.050 [-0.010, +0.110], p = 0.110", "0.146"]
    note = text.split("\n\n")[1]
    assert note.startswith("Δ = arm − real")
    for method in ("sign-flip test inversion interval", "paired sign-flip test", "Obuchowski clustered",
                   "exact McNemar", "not corrected for multiplicity"):
        assert method in note, method


def test_comparison_table_without_minority_recall():
    comparison = _comparison() | {"minority_recall": None}
    comparison["roc_auc"] = {**comparison["roc_auc"], "interval": "stratified bootstrap (BCa)"}  # multi-class
    del comparison["roc_auc"]["method"]
    report = _report() | {"positive_class": None}
    text = out.comparison_table([("real", report, None), ("b", report, comparison)], baseline="real")
    row = _cells(text.splitlines()[3])
    assert row[2] == row[3] == row[7] == "—"
    assert "ROC-AUC: stratified bootstrap (BCa)" in text


def test_primary_table_holm_and_methods():
    results = {"synthetic": {"n_seeds": 3, "difference": 0.047, "ci_low": 0.003, "ci_high": 0.09, "mean": 0.047,
                             "sd": 0.036, "p_value": 0.012, "interval": "sign-flip test inversion",
                             "test": "paired sign-flip randomisation test over patients"},
               "rebalance": {"n_seeds": 3, "difference": -0.012, "ci_low": -0.08, "ci_high": 0.05, "mean": -0.012,
                             "sd": 0.07, "p_value": 0.6, "interval": "sign-flip test inversion",
                             "test": "paired sign-flip randomisation test over patients"}}
    holm = {"synthetic": {"p_holm": 0.024, "significant": True, "k": 2},
            "rebalance": {"p_holm": 0.6, "significant": False, "k": 2}}
    text = out.primary_table(results, holm, "balanced accuracy")
    lines = text.splitlines()
    assert _cells(lines[0]) == ["arm", "seeds", "Δ balanced accuracy vs real, mean over seeds [95 % CI]",
                                "per seed (mean ± sd)", "p", "p, Holm (k = 2)", "significant at 0.05 (Holm)"]
    assert _cells(lines[2]) == ["synthetic", "3", "+0.047 [+0.003, +0.090]", "+0.047 ± 0.036", "0.012", "0.024",
                                "yes"]
    assert _cells(lines[3])[-1] == "no"
    assert "Interval: sign-flip test inversion over test patients, a patient's arms swapped together" in text
    assert "sign-flip randomisation test" in text and "Holm" in text
    auc = {name: {**r, "interval": "cluster bootstrap (BCa)", "test": "cluster bootstrap (two-sided, percentile)"}
           for name, r in results.items()}
    assert "cluster bootstrap (BCa) over test patients, each resample re-scoring every seed" in \
        out.primary_table(auc, holm, "ROC-AUC")


def test_cohort_power_compute_and_calibration_lines():
    cohort = {"n": 127, "n_patients": 91, "positive_class": "malignant", "positive_images": 15,
              "positive_patients": 13}
    assert out.cohort_line(cohort) == ("Test split: 127 images from 91 patients; malignant (the minority class): "
                                       "15 images from 13 patients.")
    power = {"positive_images": 15, "positive_patients": 13, "discordance": 0.2, "discordance_from": "observed",
             "alpha": 0.05, "power": 0.8, "mdd_images": 0.312, "mdd_patients": 0.334}
    line = out.power_line(power, "synthetic")
    assert "15 minority test images from 13 patients" in line and "±0.312" in line and "±0.334" in line
    assert line.startswith("Power (synthetic)") and "disagree" in line
    design = out.power_line(power | {"discordance_from": "independent errors at the baseline's recall"}, "design")
    assert design.startswith("Power of the design") and "independent errors" in design
    assert out.power_line(None, "synthetic") == ""
    same = {"real": {"steps_per_epoch": 33, "optimizer_steps": 330}, "synthetic": {"steps_per_epoch": 33}}
    assert "every arm 33 optimiser steps per epoch" in out.compute_line(same)
    differ = {"real": {"steps_per_epoch": 19}, "synthetic": {"steps_per_epoch": 33}}
    assert out.compute_line(differ).startswith("Training compute DIFFERS")
    assert "not recorded" in out.compute_line({"real": {"steps_per_epoch": None}})
    report = _report()
    report["metrics"].update({"brier": _entry(0.081, 0.06, 0.1), "calibration_slope": _entry(0.8, 0.5, 1.2),
                              "calibration_intercept": _entry(-0.2, -0.6, 0.3),
                              "sensitivity_at_specificity_0.90": _entry(0.8, 0.6, 0.93)})
    table = out.calibration_table([("real", report)])
    assert _cells(table.splitlines()[0])[-1] == "sensitivity at specificity 0.90 [95 % CI]"
    assert _cells(table.splitlines()[2])[1:] == ["0.081 [0.060, 0.100]", "0.800 [0.500, 1.200]",
                                                 "-0.200 [-0.600, 0.300]", "0.800 [0.600, 0.930]"]


def test_read_patient_ids(tmp_path):
    items, y, probs, pred = _predictions()
    path = out.write_predictions_csv(tmp_path / "p.csv", items, y, probs, pred, CLASSES)
    assert out.read_patient_ids(path) == [it.get("patient_id") for it in items]
    bare = out.write_predictions_csv(tmp_path / "q.csv", [{"image": it["image"]} for it in items], y, probs, pred,
                                     CLASSES)
    assert out.read_patient_ids(bare) is None


def test_headline_table():
    text = out.headline_table([("logistic_regression_pixels", _report())])
    assert len(_cells(text.splitlines()[0])) == 6
    assert _cells(text.splitlines()[2])[:2] == ["logistic_regression_pixels", "0.700 [0.620, 0.780]"]


def _aggregate(values: dict[str, list[float]]) -> dict:
    out_ = {}
    for name, v in values.items():
        out_[name] = {"mean": float(np.mean(v)), "sd": float(np.std(v, ddof=1)) if len(v) > 1 else None,
                      "n_seeds": len(v), "values": v}
    return out_


def test_seeds_table():
    aggregates = {
        "real": _aggregate({"balanced_accuracy": [0.7, 0.8], "recall/benign": [0.9, 0.95],
                            "recall/malignant": [0.5, 0.6], "specificity/malignant": [0.9, 0.96],
                            "roc_auc": [0.8, 0.9], "pr_auc": [0.4]}),
        "synthetic": _aggregate({"balanced_accuracy": [0.75, 0.85], "recall/malignant": [0.6, 0.7],
                                 "roc_auc": [0.85, 0.87]}),
    }
    text = out.seeds_table(aggregates, positive_class="malignant")
    lines = text.splitlines()
    assert _cells(lines[0]) == ["arm", "balanced accuracy (mean ± sd)", "minority recall (malignant) (mean ± sd)",
                                "specificity (mean ± sd)", "ROC-AUC (mean ± sd)", "PR-AUC (mean ± sd)", "n_seeds"]
    assert _cells(lines[2]) == ["real", "0.750 ± 0.071", "0.550 ± 0.071", "0.930 ± 0.042", "0.850 ± 0.071",
                                "0.400 (n = 1)", "2"]
    assert _cells(lines[3])[-3:] == ["0.860 ± 0.014", "—", "2"]
    # without the positive class: the recall of every class
    header = _cells(out.seeds_table(aggregates).splitlines()[0])
    assert "recall (benign) (mean ± sd)" in header and "recall (malignant) (mean ± sd)" in header


# ---------------------------------------------------------------- TensorBoard

def test_write_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    report = _report()
    writer = SummaryWriter(log_dir=str(tmp_path))
    assert out.write_tensorboard(writer, report, prefix="test", step=3) == len(report["metrics"]) - 1
    writer.close()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    expected = {f"test/{name}": e["value"] for name, e in report["metrics"].items() if e["value"] is not None}
    assert set(events.Tags()["scalars"]) == set(expected)
    for tag, value in expected.items():
        (event,) = events.Scalars(tag)
        assert event.step == 3 and event.value == pytest.approx(value, rel=1e-6)
    assert out.write_tensorboard(None, report, prefix="test") == 0


def test_numbers_that_round_to_zero_have_no_sign():
    entry = {"difference": 0.0, "ci_low": -1e-9, "ci_high": 0.25, "p_value": 1.0}
    assert out._delta(entry) == "+0.000 [+0.000, +0.250], p = 1.000"
    assert out._num(-0.0004) == "0.000" and out._num(-0.0006) == "-0.001"
