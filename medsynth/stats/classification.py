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

Intervals, the patient as the unit (:mod:`medsynth.stats.clustered`): where patients have several test images,
a percentile cluster bootstrap over patients for every metric and Obuchowski's clustered variance for binary
AUROC; where each has one (or there are no patient ids), Wilson for proportions (accuracy, precision, recall,
specificity), DeLong for binary AUROC and a stratified percentile bootstrap for the rest
(:mod:`medsynth.stats.intervals`). AUROC intervals are on the logit scale. Binary reports add calibration
(:mod:`medsynth.stats.calibration`): Brier score, calibration slope and intercept, the sensitivity at a fixed
specificity, reliability bins. The decision threshold is fixed on the validation split only
(:func:`choose_threshold`), never on the test set. Arms are compared in :mod:`medsynth.stats.comparison`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from medsynth.stats.calibration import (
    brier_score,
    calibration_intercept,
    calibration_slope,
    reliability_bins,
    sensitivity_at_specificity,
)
from medsynth.stats.clustered import auc_interval, cluster_bootstrap_interval
from medsynth.stats.intervals import wilson_interval

logger = logging.getLogger(__name__)

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


def patient_groups(groups: Sequence | np.ndarray | None, n: int) -> np.ndarray | None:
    """The patient id of each of ``n`` images as an array, or None when every image is its own patient.

    ``groups`` None means no patient ids; an id None or "" makes that image its own patient. None is returned
    when no two images share a patient: then every clustered method equals its image-level original.
    """
    if groups is None:
        return None
    ids = np.array(["" if g is None else str(g) for g in groups], dtype=object)
    if len(ids) != n:
        raise ValueError(f"{len(ids)} patient ids for {n} images")
    alone = ids == ""
    ids[alone] = [f"\x00image {i}" for i in np.flatnonzero(alone)]  # cannot collide with a real id
    return None if len(set(ids.tolist())) == n else ids


def n_patients(groups: np.ndarray | None, n: int) -> int:
    """How many patients the ``n`` images come from (``n`` when ``groups`` is None)."""
    return n if groups is None else len(set(groups.tolist()))


class _Intervals:
    """Interval methods of one report: image-level (Wilson, DeLong, stratified bootstrap) when every patient has
    one image, patient-level (cluster bootstrap, Obuchowski) otherwise."""

    def __init__(self, y: np.ndarray, groups: np.ndarray | None, n_resamples: int, seed: int, confidence: float):
        self.y, self.groups, self.confidence = y, groups, confidence
        self.boot: dict[str, Any] = {"n_resamples": n_resamples, "seed": seed, "confidence": confidence}
        self.bootstrap_name = "stratified bootstrap" if groups is None else "cluster bootstrap (patients)"

    def bootstrapped(self, statistic, *arrays: np.ndarray) -> dict:
        """``statistic(y, *arrays)`` with its percentile (cluster) bootstrap interval."""
        value = statistic(self.y, *arrays)
        if _num(value) is None:
            return _entry(value, 0, 0, len(self.y), self.bootstrap_name)
        low, high = cluster_bootstrap_interval(statistic, self.y, *arrays, groups=self.groups, method="percentile",
                                               **self.boot)
        return _entry(value, low, high, len(self.y), self.bootstrap_name)

    def proportion(self, hit: np.ndarray, within: np.ndarray) -> dict:
        """The share of ``hit`` among the images ``within`` (boolean (N,)): Wilson, or a cluster bootstrap."""
        k, n = int(np.sum(hit & within)), int(np.sum(within))
        if n == 0:
            return _entry(float("nan"), 0, 0, 0, "wilson")
        if self.groups is None:
            return _entry(k / n, *wilson_interval(k, n, self.confidence), n, "wilson")

        def share(_y: np.ndarray, h: np.ndarray, w: np.ndarray) -> float:
            return float(np.sum(h & w) / np.sum(w)) if np.any(w) else float("nan")
        entry = self.bootstrapped(share, hit, within)
        entry["n"] = n
        return entry


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


def _ranking_entry(kind: str, y: np.ndarray, probs: np.ndarray, positive: int | None, ci: _Intervals) -> dict:
    """AUROC (logit-scale DeLong or Obuchowski interval when binary) or AP (bootstrap); AP carries its chance
    ``baseline``."""
    k = probs.shape[1]
    statistic = _ranking_statistic(kind, k, positive)
    if kind == "roc_auc" and k == 2:
        hit = y == positive
        if hit.all() or not hit.any():
            return _entry(float("nan"), 0, 0, len(y), "delong")
        auc = auc_interval(hit, probs[:, positive], groups=ci.groups, confidence=ci.confidence)
        return _entry(auc["value"], auc["ci_low"], auc["ci_high"], len(y), auc["method"])
    entry = ci.bootstrapped(statistic, probs)
    if kind == "pr_auc":
        prevalence = np.bincount(y, minlength=k) / len(y)
        entry["baseline"] = float(prevalence[positive] if k == 2 else prevalence[prevalence > 0].mean())
    return entry


def _per_class(y: np.ndarray, pred: np.ndarray, c: int, ci: _Intervals) -> dict:
    """Precision, recall, specificity (Wilson or cluster bootstrap) and F1 (bootstrap) of class ``c``."""
    def f1(yy: np.ndarray, pp: np.ndarray) -> float:
        return _f1(yy, pp, c)
    true, called = y == c, pred == c
    return {"precision": ci.proportion(true, called), "recall": ci.proportion(called, true),
            "specificity": ci.proportion(~called, ~true), "f1": ci.bootstrapped(f1, pred)}


def _calibration_entries(y: np.ndarray, p: np.ndarray, ci: _Intervals, specificity: float) -> dict:
    """Brier score, calibration slope and intercept, sensitivity at ``specificity``: binary, P(positive) ``p``.

    A resample whose calibration fit does not converge is nan and dropped (the bootstrap logs how many), so the
    fits do not warn one by one."""
    def slope(yy: np.ndarray, pp: np.ndarray) -> float:
        return calibration_slope(yy, pp, warn=False)

    def intercept(yy: np.ndarray, pp: np.ndarray) -> float:
        return calibration_intercept(yy, pp, warn=False)

    def sensitivity(yy: np.ndarray, pp: np.ndarray) -> float:
        return sensitivity_at_specificity(yy, pp, specificity)["value"]
    return {name: ci.bootstrapped(fn, p) for name, fn in
            (("brier", brier_score), ("calibration_slope", slope), ("calibration_intercept", intercept),
             (f"sensitivity_at_specificity_{specificity:.2f}", sensitivity))}


def classification_report(y_true: np.ndarray, probs: np.ndarray, classes: Sequence[str], *,
                          threshold: float | None = None, positive: int | None = None,
                          groups: Sequence | np.ndarray | None = None, n_resamples: int = 1000, seed: int = 0,
                          confidence: float = 0.95, fixed_specificity: float = 0.9) -> dict:
    """Metrics with intervals for class indices ``y_true (N,)`` and softmax ``probs (N, K)``; JSON-ready.

    ``positive`` (the training split's minority class; class 1 when None and K == 2) is the class scored by
    binary AUROC/AP and thresholded by ``threshold`` (from :func:`choose_threshold`; argmax when None).
    ``groups (N,)``: the patient id of each image. Where patients have several images, every interval
    resamples patients (cluster bootstrap) and binary ROC-AUC uses Obuchowski's clustered variance; where each
    has one (or ``groups`` is None) the intervals are the image-level ones (Wilson, DeLong, stratified bootstrap).
    Binary tasks also get calibration (Brier score, calibration slope and intercept) and the sensitivity at
    ``fixed_specificity`` on the test ROC curve, and ``reliability`` (equal-count bins of P(positive)).
    Returns ``{"n", "n_patients", "classes", "positive_class", "threshold", "prevalence", "confusion_matrix",
    "metrics", "reliability"}``, each metric ``{"value", "ci_low", "ci_high", "n", "method"}`` (None where
    undefined).
    """
    y, probs, k = _check_inputs(y_true, probs, classes)
    if positive is None and k == 2:
        positive = 1
    threshold = threshold if k == 2 else None
    pred = predict_labels(probs, threshold, positive if positive is not None else 1)
    cm = _confusion(y, pred, k)
    clusters = patient_groups(groups, len(y))
    ci = _Intervals(y, clusters, n_resamples, seed, confidence)

    def balanced_accuracy(yy: np.ndarray, pp: np.ndarray) -> float:
        return _balanced_accuracy(yy, pp, k)

    def mcc(yy: np.ndarray, pp: np.ndarray) -> float:
        return _mcc(yy, pp, k)
    everything = np.ones(len(y), bool)
    metrics = {"accuracy": ci.proportion(pred == y, everything),
               "balanced_accuracy": ci.bootstrapped(balanced_accuracy, pred),
               "mcc": ci.bootstrapped(mcc, pred),
               "roc_auc": _ranking_entry("roc_auc", y, probs, positive, ci),
               "pr_auc": _ranking_entry("pr_auc", y, probs, positive, ci)}
    for c, name in enumerate(classes):
        for metric, entry in _per_class(y, pred, c, ci).items():
            metrics[f"{metric}/{name}"] = entry
    reliability = None
    if k == 2 and positive is not None:
        hit = (y == positive).astype(np.int64)
        metrics.update(_calibration_entries(hit, probs[:, positive], _Intervals(hit, clusters, n_resamples, seed,
                                                                                confidence), fixed_specificity))
        reliability = reliability_bins(hit, probs[:, positive])
    prevalence = dict(zip([str(c) for c in classes], (cm.sum(1) / len(y)).tolist(), strict=True))
    return {"n": len(y), "n_patients": n_patients(clusters, len(y)), "classes": [str(c) for c in classes],
            "positive_class": None if positive is None else str(classes[positive]),
            "threshold": _num(threshold), "prevalence": prevalence,
            "confusion_matrix": cm.tolist(), "metrics": metrics, "reliability": _clean(reliability)}


def _clean(obj):
    """Recursively replace nan/inf floats by None, numpy scalars by Python ones and arrays by lists."""
    if isinstance(obj, dict):
        return {key: _clean(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [_clean(value) for value in (obj.tolist() if isinstance(obj, np.ndarray) else obj)]
    if isinstance(obj, (float, np.floating)):
        return _num(float(obj))
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
