"""Imbalance-aware classification metrics with 95 % intervals, the validation-only threshold, paired comparisons.

Definitions (each equal to scikit-learn's, which the tests check; computed here in numpy because the
bootstrap evaluates them ~1000 times per report), from the confusion matrix C (rows true, columns predicted):

    accuracy = tr C / N                          balanced accuracy = mean over present classes of recall
    recall_c = C_cc / Σ_j C_cj (sensitivity)     precision_c = C_cc / Σ_i C_ic
    specificity_c = TN_c / (N - Σ_j C_cj)        F1_c = 2 C_cc / (Σ_j C_cj + Σ_i C_ic)
    MCC = (tr C · N - t·p) / √((N² - p·p)(N² - t·t)), t, p the true and predicted class counts (0 if undefined)
    AUROC = P(x_pos > x_neg) + P(x_pos = x_neg) / 2 (Mann-Whitney U / mn); multi-class: the macro mean of
    the one-vs-rest AUROCs of the classes present in the test set
    AP = Σ_k (R_k - R_{k-1}) P_k over distinct thresholds (sklearn ``average_precision_score``); its chance
    baseline is the prevalence

Intervals: Wilson for proportions (accuracy, precision, recall, specificity), DeLong (logit scale) for binary AUROC, a
stratified percentile bootstrap for the rest (see :mod:`medsynth.stats.intervals`). The decision threshold is
fixed on the validation split only (:func:`choose_threshold`), never on the test set. Arm comparisons on the
same test images: exact McNemar, paired DeLong, paired stratified bootstrap of differences (b - a).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from medsynth.stats.intervals import (
    bootstrap_interval,
    delong_interval,
    delong_test,
    mcnemar_test,
    mean_sd,
    paired_bootstrap_difference,
    wilson_interval,
)

logger = logging.getLogger(__name__)

METRIC_METHODS = {
    "accuracy": "wilson", "balanced_accuracy": "stratified bootstrap", "mcc": "stratified bootstrap",
    "roc_auc": "delong", "roc_auc_multiclass": "stratified bootstrap", "pr_auc": "stratified bootstrap",
    "precision": "wilson", "recall": "wilson", "specificity": "wilson", "f1": "stratified bootstrap",
}
THRESHOLD_RULES = ("balanced_accuracy", "fixed")


# ---------------------------------------------------------------- metric definitions (numpy, sklearn-equal)

def _confusion(y: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """``(k, k)`` counts, rows = true class, columns = predicted class."""
    return np.bincount(y * k + pred, minlength=k * k).reshape(k, k)


def _balanced_accuracy(y: np.ndarray, pred: np.ndarray, k: int) -> float:
    """Mean recall over the classes present in ``y``."""
    cm = _confusion(y, pred, k)
    rows = cm.sum(1)
    return float(np.mean(np.diag(cm)[rows > 0] / rows[rows > 0]))


def _mcc(y: np.ndarray, pred: np.ndarray, k: int) -> float:
    """Multi-class Matthews correlation (Gorodkin's R_K); 0 when undefined, as sklearn."""
    cm = _confusion(y, pred, k).astype(np.float64)
    t, p, n = cm.sum(1), cm.sum(0), cm.sum()
    denom = np.sqrt((n * n - p @ p) * (n * n - t @ t))
    return float((np.trace(cm) * n - t @ p) / denom) if denom > 0 else 0.0


def _f1(y: np.ndarray, pred: np.ndarray, c: int) -> float:
    """F1 of class ``c``: 2 TP / (2 TP + FP + FN); nan when ``c`` is neither true nor predicted."""
    tp, fp, fn = np.sum((y == c) & (pred == c)), np.sum((y != c) & (pred == c)), np.sum((y == c) & (pred != c))
    return float(2 * tp / (2 * tp + fp + fn)) if 2 * tp + fp + fn > 0 else float("nan")


def _auc(positive: np.ndarray, score: np.ndarray) -> float:
    """AUROC of ``score`` for boolean ``positive``: P(x > y) + P(x = y) / 2; nan when a class is absent."""
    x, z = score[positive], np.sort(score[~positive])
    if len(x) == 0 or len(z) == 0:
        return float("nan")
    below_or_tied = np.searchsorted(z, x, side="left") + np.searchsorted(z, x, side="right")
    return float(below_or_tied.sum() / (2.0 * len(x) * len(z)))


def _average_precision(positive: np.ndarray, score: np.ndarray) -> float:
    """Average precision (step-wise, over distinct thresholds, as sklearn); nan without positives."""
    n_pos = int(positive.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-score, kind="mergesort")
    s, hit = score[order], positive[order]
    last = np.append(np.flatnonzero(s[1:] != s[:-1]), len(s) - 1)  # last position of each distinct score
    tps = np.cumsum(hit)[last]
    return float(np.sum(np.diff(tps, prepend=0) / n_pos * tps / (last + 1)))


def _macro(fn, y: np.ndarray, probs: np.ndarray) -> float:
    """Mean of ``fn(y == c, probs[:, c])`` over classes, skipping nan (classes absent from ``y``)."""
    values = np.array([fn(y == c, probs[:, c]) for c in range(probs.shape[1])])
    return float(np.mean(values[~np.isnan(values)])) if not np.isnan(values).all() else float("nan")


def _ranking_statistic(kind: str, k: int, positive: int | None):
    """``statistic(y, probs)`` for "roc_auc" or "pr_auc": the positive class when binary, else macro."""
    fn = _auc if kind == "roc_auc" else _average_precision
    if k == 2:
        def binary(y: np.ndarray, probs: np.ndarray) -> float:
            return fn(y == positive, probs[:, positive])
        binary.__name__ = kind
        return binary

    def macro(y: np.ndarray, probs: np.ndarray) -> float:
        return _macro(fn, y, probs)
    macro.__name__ = kind
    return macro


# ---------------------------------------------------------------- threshold and labels

def choose_threshold(y_val: np.ndarray, p_val: np.ndarray, rule: str = "balanced_accuracy") -> float:
    """Decision threshold on the positive-class probability, from the validation split only.

    ``y_val (N,)`` is 1 (or True) for the positive class, 0 otherwise; ``p_val (N,)`` the positive-class
    probability. "balanced_accuracy" maximises balanced accuracy (= (1 + Youden's J) / 2) over the midpoints
    between consecutive sorted unique scores plus one threshold just below the minimum and one just above the
    maximum, breaking ties towards 0.5; predictions are ``p >= threshold``. "fixed" returns 0.5.
    """
    if rule not in THRESHOLD_RULES:
        raise ValueError(f"unknown threshold rule {rule!r}; expected one of {THRESHOLD_RULES}")
    if rule == "fixed":
        return 0.5
    y, p = np.asarray(y_val), np.asarray(p_val, np.float64).ravel()
    if len(y) != len(p):
        raise ValueError(f"y_val and p_val must have the same length, got {len(y)} and {len(p)}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y_val must be binary: 1 for the positive class, 0 otherwise")
    y = y.astype(bool)
    if y.all() or not y.any():
        raise ValueError("cannot tune a threshold: the validation split needs both classes")
    u = np.unique(p)
    candidates = np.r_[np.nextafter(u[0], -np.inf), (u[:-1] + u[1:]) / 2.0, np.nextafter(u[-1], np.inf)]
    pos, neg = np.sort(p[y]), np.sort(p[~y])
    tpr = 1.0 - np.searchsorted(pos, candidates, side="left") / len(pos)  # share of positives with p >= t
    tnr = np.searchsorted(neg, candidates, side="left") / len(neg)  # share of negatives with p < t
    bacc = (tpr + tnr) / 2.0
    best = np.flatnonzero(bacc >= bacc.max() - 1e-12)
    return float(candidates[best[np.argmin(np.abs(candidates[best] - 0.5))]])


def predict_labels(probs: np.ndarray, threshold: float | None = None, positive: int = 1) -> np.ndarray:
    """Predicted class indices ``(N,)`` from softmax ``probs (N, K)``.

    With K == 2 and a threshold: ``positive`` where ``probs[:, positive] >= threshold``, else the other
    class. Otherwise the argmax (a threshold given with K > 2 is ignored, with a logged warning).
    """
    probs = np.asarray(probs, np.float64)
    if probs.ndim != 2:
        raise ValueError(f"probs must be (N, K), got shape {probs.shape}")
    if threshold is None:
        return probs.argmax(1)
    if probs.shape[1] != 2:
        logger.warning("threshold %.4g ignored: %d classes, using the argmax", threshold, probs.shape[1])
        return probs.argmax(1)
    if positive not in (0, 1):
        raise ValueError(f"positive must be 0 or 1 for a binary threshold, got {positive}")
    return np.where(probs[:, positive] >= threshold, positive, 1 - positive)


# ---------------------------------------------------------------- report

def _num(x: float | None) -> float | None:
    """A plain float, or None for None/nan/inf (JSON-safe)."""
    return None if x is None or not np.isfinite(x) else float(x)


def _entry(value: float, low: float, high: float, n: int, method: str) -> dict:
    """One metric's dict; all None when the value is undefined."""
    if _num(value) is None:
        return {"value": None, "ci_low": None, "ci_high": None, "n": int(n), "method": method}
    return {"value": float(value), "ci_low": _num(low), "ci_high": _num(high), "n": int(n), "method": method}


def _wilson(k: int, n: int, confidence: float) -> dict:
    """A proportion ``k / n`` with its Wilson interval; None when n = 0."""
    if n == 0:
        return _entry(float("nan"), 0, 0, 0, "wilson")
    return _entry(k / n, *wilson_interval(int(k), int(n), confidence), n, "wilson")


def _bootstrapped(statistic, y: np.ndarray, array: np.ndarray, boot: dict) -> dict:
    """``statistic(y, array)`` with its stratified bootstrap interval."""
    value = statistic(y, array)
    if _num(value) is None:
        return _entry(value, 0, 0, len(y), "stratified bootstrap")
    return _entry(value, *bootstrap_interval(statistic, y, array, **boot), len(y), "stratified bootstrap")


def _check_inputs(y_true: np.ndarray, probs: np.ndarray, classes: Sequence[str] | None = None):
    """Validated ``(y (N,) int, probs (N, K) float, K)``."""
    y, probs = np.asarray(y_true).astype(np.int64).ravel(), np.asarray(probs, np.float64)
    if probs.ndim != 2 or len(probs) != len(y):
        raise ValueError(f"probs must be (N, K) with N = len(y_true) = {len(y)}, got shape {probs.shape}")
    if len(y) == 0:
        raise ValueError("no test samples: n = 0")
    k = probs.shape[1]
    if classes is not None and len(classes) != k:
        raise ValueError(f"{len(classes)} class names for {k} probability columns")
    if y.min() < 0 or y.max() >= k:
        raise ValueError(f"labels must be class indices in [0, {k}), got range [{y.min()}, {y.max()}]")
    return y, probs, k


def _ranking_entry(kind: str, y: np.ndarray, probs: np.ndarray, positive: int | None, boot: dict) -> dict:
    """AUROC (DeLong when binary) or AP (bootstrap) entry; AP carries its chance ``baseline``."""
    k = probs.shape[1]
    statistic = _ranking_statistic(kind, k, positive)
    if kind == "roc_auc" and k == 2:
        hit = y == positive
        if hit.all() or not hit.any():
            return _entry(float("nan"), 0, 0, len(y), "delong")
        return _entry(*delong_interval(hit, probs[:, positive], boot["confidence"]), len(y), "delong")
    entry = _bootstrapped(statistic, y, probs, boot)
    if kind == "pr_auc":
        prevalence = np.bincount(y, minlength=k) / len(y)
        entry["baseline"] = float(prevalence[positive] if k == 2 else prevalence[prevalence > 0].mean())
    return entry


def _per_class(cm: np.ndarray, y: np.ndarray, pred: np.ndarray, c: int, boot: dict) -> dict:
    """Precision, recall, specificity (Wilson) and F1 (bootstrap) of class ``c``."""
    n, rows, cols, tp = cm.sum(), cm.sum(1)[c], cm.sum(0)[c], cm[c, c]

    def f1(yy: np.ndarray, pp: np.ndarray) -> float:
        return _f1(yy, pp, c)
    conf = boot["confidence"]
    return {"precision": _wilson(tp, cols, conf), "recall": _wilson(tp, rows, conf),
            "specificity": _wilson(n - rows - cols + tp, n - rows, conf), "f1": _bootstrapped(f1, y, pred, boot)}


def classification_report(y_true: np.ndarray, probs: np.ndarray, classes: Sequence[str], *,
                          threshold: float | None = None, positive: int | None = None, n_resamples: int = 1000,
                          seed: int = 0, confidence: float = 0.95) -> dict:
    """Metrics with intervals for class indices ``y_true (N,)`` and softmax ``probs (N, K)``; JSON-ready.

    ``positive`` (the training split's minority class; class 1 when None and K == 2) is the class scored by
    binary AUROC/AP and thresholded by ``threshold`` (from :func:`choose_threshold`; argmax when None).
    Returns ``{"n", "classes", "positive_class", "threshold", "prevalence", "confusion_matrix", "metrics"}``,
    each metric ``{"value", "ci_low", "ci_high", "n", "method"}`` (None where undefined).
    """
    y, probs, k = _check_inputs(y_true, probs, classes)
    if positive is None and k == 2:
        positive = 1
    threshold = threshold if k == 2 else None
    pred = predict_labels(probs, threshold, positive if positive is not None else 1)
    cm = _confusion(y, pred, k)
    boot = {"n_resamples": n_resamples, "seed": seed, "confidence": confidence}

    def balanced_accuracy(yy: np.ndarray, pp: np.ndarray) -> float:
        return _balanced_accuracy(yy, pp, k)

    def mcc(yy: np.ndarray, pp: np.ndarray) -> float:
        return _mcc(yy, pp, k)
    metrics = {"accuracy": _wilson(np.trace(cm), len(y), confidence),
               "balanced_accuracy": _bootstrapped(balanced_accuracy, y, pred, boot),
               "mcc": _bootstrapped(mcc, y, pred, boot),
               "roc_auc": _ranking_entry("roc_auc", y, probs, positive, boot),
               "pr_auc": _ranking_entry("pr_auc", y, probs, positive, boot)}
    for c, name in enumerate(classes):
        for metric, entry in _per_class(cm, y, pred, c, boot).items():
            metrics[f"{metric}/{name}"] = entry
    prevalence = dict(zip([str(c) for c in classes], (cm.sum(1) / len(y)).tolist(), strict=True))
    return {"n": len(y), "classes": [str(c) for c in classes],
            "positive_class": None if positive is None else str(classes[positive]),
            "threshold": _num(threshold), "prevalence": prevalence,
            "confusion_matrix": cm.tolist(), "metrics": metrics}


# ---------------------------------------------------------------- arms and seeds

def _clean(obj):
    """Recursively replace nan/inf floats by None and numpy scalars by Python ones."""
    if isinstance(obj, dict):
        return {key: _clean(value) for key, value in obj.items()}
    if isinstance(obj, (float, np.floating)):
        return _num(float(obj))
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def compare_predictions(y_true: np.ndarray, probs_a: np.ndarray, pred_a: np.ndarray, probs_b: np.ndarray,
                        pred_b: np.ndarray, *, positive: int | None, n_resamples: int = 1000, seed: int = 0,
                        confidence: float = 0.95) -> dict:
    """Arm ``b`` against baseline arm ``a`` on the same test images in the same order; differences are b - a.

    ``probs_* (N, K)``, ``pred_* (N,)``. Returns ``{"mcnemar", "roc_auc" (paired DeLong when binary, else paired
    bootstrap of the macro AUROC), "balanced_accuracy", "minority_recall" (recall of ``positive``; None when
    K > 2 and no positive), "pr_auc"}``, JSON-ready (non-finite numbers become None).
    """
    y, probs_a, k = _check_inputs(y_true, probs_a)
    _, probs_b, _ = _check_inputs(y_true, probs_b)
    pred_a, pred_b = np.asarray(pred_a).astype(np.int64).ravel(), np.asarray(pred_b).astype(np.int64).ravel()
    if probs_b.shape != probs_a.shape or len(pred_a) != len(y) or len(pred_b) != len(y):
        raise ValueError(f"arms must score the same {len(y)} images: probs {probs_a.shape} vs {probs_b.shape}, "
                         f"predictions {len(pred_a)} and {len(pred_b)}")
    if positive is None and k == 2:
        positive = 1
    boot: dict[str, Any] = {"n_resamples": n_resamples, "seed": seed, "confidence": confidence}

    def balanced_accuracy(yy: np.ndarray, pp: np.ndarray) -> float:
        return _balanced_accuracy(yy, pp, k)

    def minority_recall(yy: np.ndarray, pp: np.ndarray) -> float:
        return float(np.mean(pp[yy == positive] == positive)) if np.any(yy == positive) else float("nan")
    out: dict[str, dict | None] = {"mcnemar": mcnemar_test(pred_a == y, pred_b == y)}
    if k == 2:
        out["roc_auc"] = delong_test(y == positive, probs_a[:, positive], probs_b[:, positive], confidence)
    else:
        out["roc_auc"] = paired_bootstrap_difference(_ranking_statistic("roc_auc", k, positive), y,
                                                     [probs_a], [probs_b], **boot)
    out["balanced_accuracy"] = paired_bootstrap_difference(balanced_accuracy, y, [pred_a], [pred_b], **boot)
    out["minority_recall"] = (None if positive is None else
                              paired_bootstrap_difference(minority_recall, y, [pred_a], [pred_b], **boot))
    out["pr_auc"] = paired_bootstrap_difference(_ranking_statistic("pr_auc", k, positive), y,
                                                [probs_a], [probs_b], **boot)
    return _clean(out)


def aggregate_seeds(reports: Sequence[dict]) -> dict:
    """``{metric: {"mean", "sd", "n_seeds", "values"}}`` over the reports' metric values (None skipped).

    ``sd`` is the sample sd (ddof = 1), None with fewer than two seeds; ``mean`` None with none.
    """
    names = list(dict.fromkeys(name for report in reports for name in report["metrics"]))
    out = {}
    for name in names:
        values = [float(r["metrics"][name]["value"]) for r in reports
                  if name in r["metrics"] and r["metrics"][name].get("value") is not None]
        mean, sd = mean_sd(values) if values else (None, None)
        out[name] = {"mean": _num(mean), "sd": _num(sd), "n_seeds": len(values), "values": values}
    return out
