"""Classification report, threshold rule, arm comparison and seed aggregation, checked against scikit-learn."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    confusion_matrix,
    matthews_corrcoef,
    precision_recall_fscore_support,
    recall_score,
    roc_auc_score,
)
from sklearn.preprocessing import label_binarize

from medsynth.stats.classification import (
    _auc,
    _average_precision,
    _balanced_accuracy,
    _f1,
    _mcc,
    choose_threshold,
    classification_report,
    predict_labels,
)
from tests.helpers import tied_scores


def _bacc(y, p, t):
    pred = p >= t
    return (pred[y == 1].mean() + (~pred[y == 0]).mean()) / 2


def _assert_entries_sane(report: dict):
    json.dumps(report, allow_nan=False)  # plain JSON
    for name, entry in report["metrics"].items():
        if entry["value"] is not None and entry["ci_low"] is not None:
            assert entry["ci_low"] - 1e-12 <= entry["value"] <= entry["ci_high"] + 1e-12, name


def _assert_per_class(report, y, pred, classes):
    precision, recall, f1, _ = precision_recall_fscore_support(y, pred, labels=range(len(classes)), zero_division=0)
    for c, name in enumerate(classes):
        m = report["metrics"]
        assert m[f"precision/{name}"]["value"] == pytest.approx(precision[c])
        assert m[f"recall/{name}"]["value"] == pytest.approx(recall[c])
        assert m[f"f1/{name}"]["value"] == pytest.approx(f1[c])
        assert m[f"specificity/{name}"]["value"] == pytest.approx(recall_score(y != c, pred != c))
        assert m[f"precision/{name}"]["n"] == np.sum(pred == c) and m[f"recall/{name}"]["n"] == np.sum(y == c)
        assert m[f"specificity/{name}"]["n"] == np.sum(y != c)


# ---------------------------------------------------------------- the report against sklearn

@pytest.mark.parametrize("positive,threshold", [(1, None), (1, 0.3), (0, 0.45)])
def test_binary_report_equals_sklearn(positive, threshold):
    y, probs = tied_scores(150, 2, seed=positive)
    report = classification_report(y, probs, ["benign", "malignant"], positive=positive, threshold=threshold,
                                   n_resamples=200)
    other = 1 - positive
    if threshold is None:
        pred = probs.argmax(1)
    else:
        pred = np.where(probs[:, positive] >= threshold, positive, other)
    m = report["metrics"]
    assert report["confusion_matrix"] == confusion_matrix(y, pred).tolist()
    assert m["accuracy"]["value"] == pytest.approx(accuracy_score(y, pred))
    assert m["balanced_accuracy"]["value"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert m["mcc"]["value"] == pytest.approx(matthews_corrcoef(y, pred))
    assert m["roc_auc"]["value"] == pytest.approx(roc_auc_score(y == positive, probs[:, positive]))
    assert m["pr_auc"]["value"] == pytest.approx(average_precision_score(y == positive, probs[:, positive]))
    assert m["pr_auc"]["baseline"] == pytest.approx(np.mean(y == positive))
    assert m["roc_auc"]["method"] == "DeLong, logit scale" and m["accuracy"]["method"] == "wilson"
    # binary specificity of a class is the recall of the other one
    assert m["specificity/malignant"]["value"] == pytest.approx(recall_score(y, pred, pos_label=0))
    _assert_per_class(report, y, pred, ["benign", "malignant"])
    assert report["positive_class"] == ["benign", "malignant"][positive] and report["threshold"] == threshold
    assert report["prevalence"]["malignant"] == pytest.approx(np.mean(y == 1)) and report["n"] == 150
    _assert_entries_sane(report)


def test_multiclass_report_equals_sklearn():
    y, probs = tied_scores(120, 3, seed=7)
    classes = ["nevus", "melanoma", "bcc"]
    report = classification_report(y, probs, classes, n_resamples=200, seed=1)
    pred, m = probs.argmax(1), report["metrics"]
    assert report["confusion_matrix"] == confusion_matrix(y, pred).tolist()
    assert m["accuracy"]["value"] == pytest.approx(accuracy_score(y, pred))
    assert m["balanced_accuracy"]["value"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert m["mcc"]["value"] == pytest.approx(matthews_corrcoef(y, pred))
    assert m["roc_auc"]["value"] == pytest.approx(roc_auc_score(y, probs, multi_class="ovr", average="macro"))
    assert m["roc_auc"]["method"] == "stratified bootstrap"
    assert m["pr_auc"]["value"] == pytest.approx(average_precision_score(label_binarize(y, classes=[0, 1, 2]), probs))
    assert m["pr_auc"]["baseline"] == pytest.approx(1 / 3)
    assert report["positive_class"] is None and report["threshold"] is None
    _assert_per_class(report, y, pred, classes)
    _assert_entries_sane(report)


@pytest.mark.filterwarnings("ignore:A single label")
def test_numpy_definitions_equal_sklearn_on_resamples():
    """The bootstrap's fast metric definitions agree with sklearn on many small tied samples."""
    rng = np.random.default_rng(11)
    for _ in range(25):
        k = int(rng.integers(2, 5))
        y, pred = np.r_[np.arange(k), rng.integers(0, k, 25)], rng.integers(0, k, 25 + k)
        score = rng.integers(0, 6, 25 + k).astype(float)
        assert _balanced_accuracy(y, pred, k) == pytest.approx(balanced_accuracy_score(y, pred))
        assert _mcc(y, pred, k) == pytest.approx(matthews_corrcoef(y, pred), abs=1e-12)
        f1 = precision_recall_fscore_support(y, pred, labels=range(k), zero_division=0)[2]
        assert [_f1(y, pred, c) for c in range(k)] == pytest.approx(f1)
        assert _auc(y == 0, score) == pytest.approx(roc_auc_score(y == 0, score))
        assert _average_precision(y == 0, score) == pytest.approx(average_precision_score(y == 0, score))
    assert _mcc(np.zeros(5, int), np.zeros(5, int), 2) == matthews_corrcoef(np.zeros(5), np.zeros(5)) == 0.0


def _clustered(n: int, seed: int = 0) -> np.ndarray:
    """Patient ids with 1-3 images each."""
    sizes = np.random.default_rng(seed).choice([1, 1, 2, 3], size=n)
    return np.repeat([f"p{i}" for i in range(n)], sizes)[:n]


def test_one_image_per_patient_gives_the_image_level_report():
    y, probs = tied_scores(120, 2, seed=7)
    plain = classification_report(y, probs, ["benign", "malignant"], threshold=0.4, n_resamples=150)
    ids = classification_report(y, probs, ["benign", "malignant"], threshold=0.4, n_resamples=150,
                                groups=[f"id{i}" for i in range(len(y))])
    assert ids == plain
    assert plain["n_patients"] == 120 and plain["metrics"]["recall/malignant"]["method"] == "wilson"
    # an image without a patient id is its own patient
    assert classification_report(y, probs, ["benign", "malignant"], threshold=0.4, n_resamples=150,
                                 groups=[None] * len(y)) == plain


def test_patients_with_several_images_are_resampled_as_units():
    y, probs = tied_scores(150, 2, seed=3)
    groups = _clustered(150)
    report = classification_report(y, probs, ["benign", "malignant"], threshold=0.4, n_resamples=200, groups=groups)
    plain = classification_report(y, probs, ["benign", "malignant"], threshold=0.4, n_resamples=200)
    m, p = report["metrics"], plain["metrics"]
    assert report["n"] == 150 and report["n_patients"] == len(set(groups)) < 150
    for name, entry in m.items():
        assert entry["value"] == p[name]["value"], name  # the estimates do not depend on the grouping
    assert m["recall/malignant"]["method"].startswith("cluster bootstrap")
    assert m["recall/malignant"]["n"] == p["recall/malignant"]["n"] == int(np.sum(y == 1))
    assert m["roc_auc"]["method"].startswith("Obuchowski")
    _assert_entries_sane(report)


def test_binary_report_has_calibration_and_fixed_specificity():
    from sklearn.metrics import brier_score_loss

    y, probs = tied_scores(200, 2, seed=4)
    report = classification_report(y, probs, ["benign", "malignant"], threshold=0.5, n_resamples=150)
    m = report["metrics"]
    assert m["brier"]["value"] == pytest.approx(brier_score_loss(y, probs[:, 1]))
    assert {"calibration_slope", "calibration_intercept", "sensitivity_at_specificity_0.90"} <= set(m)
    neg = np.sort(probs[y == 0, 1])
    t = neg[int(np.ceil(0.9 * len(neg))) - 1]  # the smallest score with >= 90 % of negatives at or below it
    assert m["sensitivity_at_specificity_0.90"]["value"] == pytest.approx(np.mean(probs[y == 1, 1] > t))
    assert sum(report["reliability"]["count"]) == 200
    three = classification_report(*tied_scores(90, 3, seed=1), ["a", "b", "c"], n_resamples=50)
    assert "brier" not in three["metrics"] and three["reliability"] is None


def test_all_negative_classifier_and_undefined_proportions():
    y = np.r_[np.zeros(90, int), np.ones(10, int)]
    probs = np.tile([0.8, 0.2], (100, 1))
    report = classification_report(y, probs, ["neg", "pos"], positive=1, threshold=0.5, n_resamples=100)
    m = report["metrics"]
    assert m["accuracy"]["value"] == pytest.approx(0.9) and m["balanced_accuracy"]["value"] == pytest.approx(0.5)
    assert m["recall/pos"]["value"] == 0 and m["f1/pos"]["value"] == 0 and m["mcc"]["value"] == 0
    # nothing predicted "pos": precision has n = 0 -> null, not a crash
    assert m["precision/pos"] == {"value": None, "ci_low": None, "ci_high": None, "n": 0, "method": "wilson"}
    assert m["roc_auc"]["value"] == pytest.approx(0.5) and m["pr_auc"]["baseline"] == pytest.approx(0.1)
    _assert_entries_sane(report)


def test_report_rejects_bad_input():
    y, probs = tied_scores(20, 3, seed=0)
    with pytest.raises(ValueError, match="class names"):
        classification_report(y, probs, ["a", "b"])
    with pytest.raises(ValueError, match="N = len"):
        classification_report(y[:-1], probs, ["a", "b", "c"])
    with pytest.raises(ValueError, match="class indices"):
        classification_report(y + 1, probs, ["a", "b", "c"])


# ---------------------------------------------------------------- threshold and labels

def test_threshold_maximises_balanced_accuracy_over_a_dense_grid():
    rng = np.random.default_rng(2)
    y = np.r_[np.zeros(80, int), np.ones(20, int)]
    p = np.clip(np.round(0.25 + 0.3 * y + rng.normal(0, 0.15, 100), 2), 0, 1)  # rounded: ties
    t = choose_threshold(y, p)
    grid = np.linspace(-0.01, 1.01, 10201)
    best = max(_bacc(y, p, g) for g in grid)
    assert _bacc(y, p, t) == pytest.approx(best, abs=1e-12)
    assert best > 0.75 and abs(t - 0.5) < 0.5


def test_threshold_ties_go_towards_one_half_and_rules():
    y = np.array([0, 0, 1, 1])
    assert choose_threshold(y, np.array([0.1, 0.2, 0.8, 0.9])) == pytest.approx(0.5)  # plateau (0.2, 0.8]
    assert choose_threshold(y, np.array([0.1, 0.2, 0.3, 0.4])) == pytest.approx(0.25)
    assert choose_threshold(y, np.array([0.6, 0.7, 0.8, 0.9])) == pytest.approx(0.75)
    # 0.2 and 0.75 both give balanced accuracy 0.75: the one nearer 0.5 wins
    assert choose_threshold(np.array([0, 1, 0, 1]), np.array([0.1, 0.3, 0.6, 0.9])) == pytest.approx(0.75)
    assert choose_threshold(y, np.array([0.9, 0.1, 0.3, 0.7]), rule="fixed") == 0.5
    with pytest.raises(ValueError, match="'youden_max'"):
        choose_threshold(y, np.zeros(4), rule="youden_max")
    with pytest.raises(ValueError, match="validation split needs both classes"):
        choose_threshold(np.ones(4, int), np.linspace(0, 1, 4))


def test_threshold_depends_only_on_the_validation_pairs():
    rng = np.random.default_rng(4)
    y, p = np.r_[0, 1, rng.integers(0, 2, 60)], rng.random(62)
    t = choose_threshold(y, p)
    order = rng.permutation(62)
    assert choose_threshold(y[order], p[order]) == t
    y_copy, p_copy = y.copy(), p.copy()
    choose_threshold(y_copy, p_copy)
    assert (y_copy == y).all() and (p_copy == p).all()  # inputs untouched


def test_predict_labels():
    probs = np.array([[0.7, 0.3], [0.4, 0.6], [0.5, 0.5]])
    assert predict_labels(probs).tolist() == [0, 1, 0]
    assert predict_labels(probs, 0.3).tolist() == [1, 1, 1]  # positive if p >= threshold
    assert predict_labels(probs, 0.6, positive=0).tolist() == [0, 1, 1]
    assert predict_labels(np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])).tolist() == [2, 0]


