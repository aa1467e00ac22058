"""Arms compared on the same test images, with the patient as the unit: secondary paired comparisons seed by
seed, the pre-specified primary endpoint pooled over seeds with Holm's correction, and the design's power.

The protocol a ``comparison.md`` reports (docs/metrics.md, "Classifier statistics"):

- **Primary endpoint** (pre-specified, ``ENDPOINTS``; default Δ balanced accuracy of each arm vs ``real``):
  one inference per arm over all its seeds, :func:`pooled_comparison`. The estimate is the paired difference
  averaged over the seeds both arms ran, with test *patients* as the unit (the seeds are training randomness,
  kept together; the patients are the sampling). For the endpoints linear in per-image calls (balanced accuracy,
  minority recall) the p-value is the paired sign-flip (arm-swap) randomisation test over patients (exact size
  under exchangeable arms) and the interval its inversion (:func:`~medsynth.stats.clustered.sign_flip_interval`,
  the same sign vectors: it excludes 0 exactly when p ≤ 1 - confidence); for ROC-AUC a BCa cluster bootstrap
  interval and the bootstrap p. Holm's step-down correction across the arms compared (:func:`holm_adjust`).
- **Secondary endpoints**, seed by seed (:func:`compare_predictions`): Δ balanced accuracy and Δ minority recall
  (sign-flip p and its inverted interval), Δ ROC-AUC (DeLong, or Obuchowski's clustered test when patients have
  several images), Δ PR-AUC (BCa cluster bootstrap) and McNemar (exact, or Durkalski's clustered version).
  Not corrected for multiplicity: read them as description.
- **Power** (:func:`power_statement`): the smallest Δ minority recall the test set can detect with 80 % power.

Where every patient has one image (or there are no patient ids) each clustered method reduces to its
image-level original: the bootstrap to the stratified image bootstrap, Obuchowski to DeLong, the clustered
McNemar to the exact McNemar.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from medsynth.stats.calibration import min_detectable_difference
from medsynth.stats.classification import (
    _balanced_accuracy,
    _check_inputs,
    _clean,
    _num,
    _ranking_statistic,
    n_patients,
    patient_groups,
)
from medsynth.stats.clustered import (
    auc_difference_test,
    cluster_bootstrap_difference,
    clustered_mcnemar,
    holm,
    linear_contributions,
    linear_weights,
    sign_flip_interval,
    sign_flip_test,
)
from medsynth.stats.intervals import mean_sd

ENDPOINTS = ("balanced_accuracy", "minority_recall", "roc_auc")
ENDPOINT_NAMES = {"balanced_accuracy": "balanced accuracy", "minority_recall": "minority recall",
                  "roc_auc": "ROC-AUC"}
LINEAR = ("balanced_accuracy", "minority_recall")  # tested by the sign-flip test
NO_DISCORDANCE = "none: no image's call differs between the arms"
SIGN_FLIP = "paired sign-flip randomisation test over patients"
SIGN_FLIP_INTERVAL = "sign-flip test inversion"


def _check_endpoint(endpoint: str, k: int, positive: int | None) -> None:
    if endpoint not in ENDPOINTS:
        raise ValueError(f"unknown primary endpoint {endpoint!r}; choose from {', '.join(ENDPOINTS)}")
    if endpoint != "balanced_accuracy" and positive is None:
        raise ValueError(f"primary endpoint {endpoint!r} needs a positive (minority) class: a binary task")


def _statistic(endpoint: str, k: int, positive: int | None):
    """``statistic(y, *per_seed_arrays)``: the endpoint averaged over the seeds' arrays (predictions, or the
    probabilities for ROC-AUC)."""
    if endpoint == "roc_auc":
        one = _ranking_statistic("roc_auc", k, positive)
    elif endpoint == "balanced_accuracy":
        def one(y: np.ndarray, pred: np.ndarray) -> float:
            return _balanced_accuracy(y, pred, k)
    else:
        def one(y: np.ndarray, pred: np.ndarray) -> float:
            hit = y == positive
            return float(np.mean(pred[hit] == positive)) if hit.any() else float("nan")

    def averaged(y: np.ndarray, *arrays: np.ndarray) -> float:
        return float(np.mean([one(y, a) for a in arrays]))
    averaged.__name__ = endpoint
    return averaged


def _difference(endpoint: str, y: np.ndarray, groups: np.ndarray | None, arrays_a: Sequence[np.ndarray],
                arrays_b: Sequence[np.ndarray], preds_a: Sequence[np.ndarray], preds_b: Sequence[np.ndarray], k: int,
                positive: int | None, boot: Mapping[str, Any], n_permutations: int) -> dict:
    """The seed-averaged Δ endpoint: where it is linear, the sign-flip p and the interval inverting it (one sign
    matrix); otherwise the BCa cluster bootstrap interval and the bootstrap p."""
    if endpoint not in LINEAR:
        result = cluster_bootstrap_difference(_statistic(endpoint, k, positive), y, list(arrays_a), list(arrays_b),
                                              groups=groups, **boot)
        result["interval"] = result.pop("method")
        result["test"] = "cluster bootstrap (two-sided, percentile)"
        return result
    statistic = _statistic(endpoint, k, positive)
    a, b = statistic(y, *arrays_a), statistic(y, *arrays_b)
    contributions = np.stack([linear_contributions(endpoint, y, pa, pb, positive, k)
                              for pa, pb in zip(preds_a, preds_b, strict=True)])
    flips = {"groups": groups, "n_permutations": n_permutations, "seed": boot["seed"]}
    test = sign_flip_test(contributions, **flips)
    interval = SIGN_FLIP_INTERVAL
    if np.any(contributions != 0):
        low, high = sign_flip_interval(contributions, linear_weights(endpoint, y, positive, k), **flips,
                                       confidence=boot["confidence"])
    else:  # no call differs: the shift model would call any Δ ≠ 0 impossible, an interval of width 0
        low = high = float("nan")
        interval = NO_DISCORDANCE
    return {"a": a, "b": b, "difference": b - a, "ci_low": low, "ci_high": high, "p_value": test["p_value"],
            "n_permutations": test["n_permutations"], "n_images": len(y), "n_patients": test["n_patients"],
            "interval": interval, "test": SIGN_FLIP}


def compare_predictions(y_true: np.ndarray, probs_a: np.ndarray, pred_a: np.ndarray, probs_b: np.ndarray,
                        pred_b: np.ndarray, *, positive: int | None, groups: Sequence | np.ndarray | None = None,
                        n_resamples: int = 1000, seed: int = 0, confidence: float = 0.95,
                        n_permutations: int = 10000) -> dict:
    """Arm ``b`` against baseline arm ``a`` on the same test images in the same order; differences are b - a.

    ``probs_* (N, K)``, ``pred_* (N,)``, ``groups (N,)`` the patient ids (None: one patient per image).
    Returns ``{"n_images", "n_patients", "mcnemar", "roc_auc", "balanced_accuracy", "minority_recall" (recall of
    ``positive``; None when K > 2 and no positive), "pr_auc", "discordance_positive"}``, JSON-ready
    (non-finite numbers become None). ``discordance_positive`` is the share of the positive class's images on
    which the arms' calls differ (the ψ of :func:`power_statement`).
    """
    y, probs_a, k = _check_inputs(y_true, probs_a)
    _, probs_b, _ = _check_inputs(y_true, probs_b)
    pred_a, pred_b = np.asarray(pred_a).astype(np.int64).ravel(), np.asarray(pred_b).astype(np.int64).ravel()
    if probs_b.shape != probs_a.shape or len(pred_a) != len(y) or len(pred_b) != len(y):
        raise ValueError(f"arms must score the same {len(y)} images: probs {probs_a.shape} vs {probs_b.shape}, "
                         f"predictions {len(pred_a)} and {len(pred_b)}")
    if positive is None and k == 2:
        positive = 1
    clusters = patient_groups(groups, len(y))
    boot: dict[str, Any] = {"n_resamples": n_resamples, "seed": seed, "confidence": confidence}
    out: dict[str, Any] = {"n_images": len(y), "n_patients": n_patients(clusters, len(y)),
                           "mcnemar": clustered_mcnemar(pred_a == y, pred_b == y, clusters)}
    if k == 2:
        out["roc_auc"] = auc_difference_test(y == positive, probs_a[:, positive], probs_b[:, positive], clusters,
                                             confidence)
    else:
        out["roc_auc"] = _difference("roc_auc", y, clusters, [probs_a], [probs_b], [pred_a], [pred_b], k, positive,
                                     boot, n_permutations)
    out["balanced_accuracy"] = _difference("balanced_accuracy", y, clusters, [pred_a], [pred_b], [pred_a], [pred_b],
                                           k, positive, boot, n_permutations)
    out["minority_recall"] = (None if positive is None else
                              _difference("minority_recall", y, clusters, [pred_a], [pred_b], [pred_a], [pred_b], k,
                                          positive, boot, n_permutations))
    pr = cluster_bootstrap_difference(_ranking_statistic("pr_auc", k, positive), y, [probs_a], [probs_b],
                                      groups=clusters, **boot)
    pr["interval"] = pr.pop("method")
    out["pr_auc"] = pr
    hit = y == positive if positive is not None else np.zeros(len(y), bool)
    out["discordance_positive"] = float(np.mean(pred_a[hit] != pred_b[hit])) if hit.any() else None
    return _clean(out)


def pooled_comparison(y_true: np.ndarray, runs_a: Sequence[tuple[np.ndarray, np.ndarray]],
                      runs_b: Sequence[tuple[np.ndarray, np.ndarray]], *, endpoint: str = "balanced_accuracy",
                      positive: int | None, groups: Sequence | np.ndarray | None = None, n_resamples: int = 1000,
                      seed: int = 0, confidence: float = 0.95, n_permutations: int = 10000) -> dict:
    """One inference on ``endpoint`` over seeds: ``runs_a``/``runs_b`` are ``(probs (N, K), pred (N,))`` per seed,
    paired by position (seed s of arm a with seed s of arm b), all on the test images ``y_true (N,)``.

    Returns ``{"endpoint", "n_seeds", "n_images", "n_patients", "a", "b", "difference" (b - a, mean over seeds),
    "ci_low", "ci_high", "p_value", "test", "interval", "per_seed" (the differences), "mean", "sd" (over seeds)}``.
    Balanced accuracy and minority recall: the sign-flip test over patients (a patient's sign shared by every
    seed) and the interval inverting it; ROC-AUC: BCa cluster bootstrap over patients, each resample re-scoring
    every seed, and the bootstrap p.
    """
    if not runs_a or len(runs_a) != len(runs_b):
        raise ValueError(f"need the same number (>= 1) of seeds for both arms, got {len(runs_a)} and {len(runs_b)}")
    y, _, k = _check_inputs(y_true, runs_a[0][0])
    for probs, pred in (*runs_a, *runs_b):
        _check_inputs(y, probs)
        if len(np.asarray(pred).ravel()) != len(y):
            raise ValueError(f"predictions of {len(np.asarray(pred).ravel())} images for {len(y)} test images")
    if positive is None and k == 2:
        positive = 1
    _check_endpoint(endpoint, k, positive)
    clusters = patient_groups(groups, len(y))
    preds_a = [np.asarray(p).astype(np.int64).ravel() for _, p in runs_a]
    preds_b = [np.asarray(p).astype(np.int64).ravel() for _, p in runs_b]
    arrays_a: list[np.ndarray] = preds_a
    arrays_b: list[np.ndarray] = preds_b
    if endpoint == "roc_auc":
        arrays_a = [np.asarray(p, np.float64) for p, _ in runs_a]
        arrays_b = [np.asarray(p, np.float64) for p, _ in runs_b]
    boot: dict[str, Any] = {"n_resamples": n_resamples, "seed": seed, "confidence": confidence}
    result = _difference(endpoint, y, clusters, arrays_a, arrays_b, preds_a, preds_b, k, positive, boot,
                         n_permutations)
    one = _statistic(endpoint, k, positive)
    per_seed = [one(y, b) - one(y, a) for a, b in zip(arrays_a, arrays_b, strict=True)]
    mean, sd = mean_sd(per_seed)
    result.update(endpoint=endpoint, n_seeds=len(runs_a), n_images=len(y), n_patients=n_patients(clusters, len(y)),
                  per_seed=per_seed, mean=mean, sd=sd)
    return _clean(result)


def holm_adjust(results: Mapping[str, Mapping], alpha: float = 0.05) -> dict[str, dict]:
    """Holm's step-down correction of the ``p_value`` of each arm's primary result; returns ``{arm: {"p_holm",
    "significant", "k"}}`` (``significant``: adjusted p < ``alpha``; None where p is undefined)."""
    names = list(results)
    raw = np.array([np.nan if results[n].get("p_value") is None else float(results[n]["p_value"]) for n in names])
    adjusted = holm(raw) if len(raw) else raw
    k = int(np.sum(~np.isnan(raw)))
    return {n: {"p_holm": _num(float(p)), "significant": None if np.isnan(p) else bool(p < alpha), "k": k}
            for n, p in zip(names, adjusted, strict=True)}


def cohort(y_true: np.ndarray, positive: int | None, groups: Sequence | np.ndarray | None) -> dict:
    """``{"n", "n_patients"}`` of the test images ``y_true (N,)``, plus ``"positive_images"`` and
    ``"positive_patients"`` (the patients with an image of class ``positive``) when there is a positive class."""
    y = np.asarray(y_true).ravel()
    clusters = patient_groups(groups, len(y))
    out = {"n": len(y), "n_patients": n_patients(clusters, len(y))}
    if positive is not None:
        hit = y == positive
        out["positive_images"] = int(hit.sum())
        out["positive_patients"] = n_patients(None if clusters is None else clusters[hit], int(hit.sum()))
    return out


def power_statement(y_true: np.ndarray, positive: int | None, groups: Sequence | np.ndarray | None,
                    discordance: float | None, *, baseline_recall: float | None = None, alpha: float = 0.05,
                    power: float = 0.8) -> dict | None:
    """The smallest Δ minority recall detectable with ``power`` at two-sided ``alpha`` on this test set.

    McNemar's test on the positive class's images (Connor 1987), with ψ the share of those images on which two
    arms' calls differ: the observed ``discordance`` when given and > 0, else 2 r (1 - r) for the baseline's
    minority recall r (independent errors). Two answers: with every positive image independent
    (``mdd_images``), and with the positive images of one patient counted once (``mdd_patients``, the
    conservative end when a patient's images are fully correlated). None without a positive class.
    """
    if positive is None:
        return None
    counts = cohort(y_true, positive, groups)
    n_images, n_pat = counts["positive_images"], counts["positive_patients"]
    if discordance is not None and discordance > 0:
        psi, assumption = float(discordance), "observed discordance"
    elif baseline_recall is not None and 0 < baseline_recall < 1:
        psi, assumption = 2 * baseline_recall * (1 - baseline_recall), "independent errors at the baseline's recall"
    else:
        psi, assumption = float("nan"), "undefined (no discordance observed and no baseline recall)"
    mdd = {name: (min_detectable_difference(n, psi, alpha=alpha, power=power) if n > 0 and psi > 0 else float("nan"))
           for name, n in (("mdd_images", n_images), ("mdd_patients", n_pat))}
    return _clean({"positive_images": n_images, "positive_patients": n_pat, "discordance": psi,
                   "discordance_from": assumption, "alpha": alpha, "power": power, **mdd})


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
