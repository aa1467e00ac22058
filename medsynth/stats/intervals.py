"""Confidence intervals and paired tests for classifier evaluation: Wilson, exact McNemar, DeLong, bootstrap.

Wilson score interval for k successes in n trials, with z = Φ⁻¹(1 - α/2) and p̂ = k/n (Wilson 1927):

    (p̂ + z²/2n ± z √(p̂(1-p̂)/n + z²/4n²)) / (1 + z²/n)

Exact McNemar (McNemar 1947): on the discordant pairs b (A right, B wrong) and c (A wrong, B right), under
H0 b ~ Binomial(b + c, 1/2); two-sided p = min(1, 2 P(X ≤ min(b, c))).

Fast DeLong (DeLong et al. 1988; Sun & Xu 2014), midranks from ``scipy.stats.rankdata``, m positives x_i,
n negatives y_j, ``tz`` the ranks in the pooled sample and ``tx``, ``ty`` the ranks within each class:

    AUC = (Σ_i tz(x_i) - m(m+1)/2) / (mn)             (the Mann-Whitney U / mn; ties count 1/2)
    V10_i = (tz(x_i) - tx_i) / n,   V01_j = 1 - (tz(y_j) - ty_j) / m
    Var(AUC) = s²(V10)/m + s²(V01)/n                  (sample variances, ddof = 1)

For two scores on the same images, Var(AUC_b - AUC_a) = s²(V10_b - V10_a)/m + s²(V01_b - V01_a)/n (equal to
S_aa + S_bb - 2 S_ab), z = (AUC_b - AUC_a) / √Var, p = 2 (1 - Φ(|z|)).

The AUC interval is a Wald interval on the logit scale, back-transformed (the delta method gives
SE(logit θ) = SE(θ) / (θ(1 - θ))):

    expit(logit(θ) ± z √Var / (θ(1 - θ)))

so it stays inside (0, 1) without clipping and is asymmetric near the bounds, where the symmetric
θ ± z √Var would cross 0 or 1 (compared with other AUC intervals by Qin & Hotilovac 2008). At θ = 0 or 1
(perfect separation) the logit is infinite and the variance 0: no interval (nan bounds).

Bootstrap: a *stratified* resample draws, with replacement, within each class, so every resample keeps the
class sizes (no resample lacks positives). Intervals are percentile intervals; paired differences use the
same indices for both arms, and the two-sided bootstrap p is 2 min(P*(d ≤ 0), P*(d ≥ 0)), capped at 1.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
from scipy import special
from scipy import stats as sps

logger = logging.getLogger(__name__)


def _z(confidence: float) -> float:
    """The two-sided normal quantile Φ⁻¹(1 - α/2) for ``confidence = 1 - α``."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return float(sps.norm.ppf(0.5 + confidence / 2.0))


def _same_length(*arrays: np.ndarray) -> int:
    """The common first dimension of ``arrays``; ValueError when they differ or are empty."""
    lengths = [len(a) for a in arrays]
    if len(set(lengths)) > 1:
        raise ValueError(f"arrays must have the same length, got lengths {lengths}")
    if lengths[0] == 0:
        raise ValueError("no samples: n = 0")
    return lengths[0]


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval ``(low, high)`` for ``k`` successes out of ``n`` trials."""
    if n <= 0:
        raise ValueError(f"Wilson interval needs n > 0 trials, got n = {n}")
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k = {k}, n = {n}")
    z = _z(confidence)
    p, z2 = k / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    low = 0.0 if k == 0 else max(0.0, float(centre - half))  # exact ends: rounding would give ±1e-17
    return low, 1.0 if k == n else min(1.0, float(centre + half))


def exact_mcnemar(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value on the discordant counts ``b`` and ``c`` (1.0 when b + c = 0)."""
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be non-negative, got b = {b}, c = {c}")
    if b + c == 0:
        return 1.0
    return float(min(1.0, 2.0 * sps.binom.cdf(min(b, c), b + c, 0.5)))


def mcnemar_test(correct_a: np.ndarray, correct_b: np.ndarray) -> dict:
    """Exact McNemar test of two classifiers' correct/incorrect calls ``(N,)`` on the same test images.

    Returns ``{"b", "c", "n", "p_value", "method"}`` with ``b`` = A right and B wrong, ``c`` = A wrong and
    B right, ``n`` = N.
    """
    a, b_ = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    n = _same_length(a, b_)
    b, c = int(np.sum(a & ~b_)), int(np.sum(~a & b_))
    return {"b": b, "c": c, "n": n, "p_value": exact_mcnemar(b, c), "method": "exact McNemar (binomial)"}


def _binary(y_true: np.ndarray, *scores: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Validate binary labels ``(N,)`` in {0, 1} with both classes present and scores of the same length."""
    y = np.asarray(y_true)
    arrays = [np.asarray(s, np.float64).ravel() for s in scores]
    _same_length(y, *arrays)
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"labels must be binary 0/1, got values {np.unique(y)[:10].tolist()}")
    if y.min() == y.max():
        raise ValueError(f"DeLong needs both classes in y_true, got only class {int(y[0])}")
    return y.astype(bool), arrays


def _delong_components(y: np.ndarray, scores: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """``(AUC, V10 (m,), V01 (n,))`` of one score vector by the fast DeLong midrank recipe."""
    x, z = scores[y], scores[~y]
    m, n = len(x), len(z)
    tz = sps.rankdata(np.concatenate([x, z]))
    tx, ty = sps.rankdata(x), sps.rankdata(z)
    auc = (tz[:m].sum() - m * (m + 1) / 2.0) / (m * n)
    return float(auc), (tz[:m] - tx) / n, 1.0 - (tz[m:] - ty) / m


def _variance(v10: np.ndarray, v01: np.ndarray) -> float:
    """``s²(V10)/m + s²(V01)/n``; nan when a class has a single sample (no sample variance)."""
    if len(v10) < 2 or len(v01) < 2:
        return float("nan")
    return float(np.var(v10, ddof=1) / len(v10) + np.var(v01, ddof=1) / len(v01))


def delong_auc_variance(y_true: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """``(AUC, variance)`` of ``scores (N,)`` against binary ``y_true (N,)`` by fast DeLong.

    The variance is nan when a class has a single image.
    """
    y, (s,) = _binary(y_true, scores)
    auc, v10, v01 = _delong_components(y, s)
    return auc, _variance(v10, v01)


def _logit_interval(auc: float, var: float, confidence: float = 0.95) -> tuple[float, float]:
    """``(low, high)`` = expit(logit(auc) ± z √var / (auc (1 - auc))); nan when auc is 0 or 1 or var is nan."""
    z = _z(confidence)
    if not 0.0 < auc < 1.0 or not var >= 0.0:
        return float("nan"), float("nan")
    half = z * np.sqrt(var) / (auc * (1.0 - auc))
    centre = float(special.logit(auc))
    return float(special.expit(centre - half)), float(special.expit(centre + half))


def delong_interval(y_true: np.ndarray, scores: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """``(auc, low, high)``: the logit-scale interval with DeLong's variance, inside (0, 1).

    The bounds are nan when the AUC is 0 or 1 or the variance is undefined (a class with a single image).
    """
    _z(confidence)
    auc, var = delong_auc_variance(y_true, scores)
    return (auc, *_logit_interval(auc, var, confidence))


def newcombe_auc_interval(auc: float, m: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Score-type AUC interval for ``m`` positives and ``n`` negatives, defined at AUC 0 and 1 (Newcombe 2006).

    The set of θ with (AUC - θ)² <= z² V(θ), V the Hanley-McNeil (1982) variance with Newcombe's substitution
    N* = (m + n)/2 - 1 for both class sizes:

        V(θ) = θ(1 - θ) [1 + (N* - 1)((1 - θ)/(2 - θ) + θ/(1 + θ))] / (m n)

    Used where the logit-scale DeLong interval is undefined (perfect separation, or a class of one image); it
    treats the images as independent.
    """
    from scipy.optimize import brentq

    if m < 1 or n < 1 or not 0.0 <= auc <= 1.0:
        raise ValueError(f"need m, n >= 1 and an AUC in [0, 1], got m = {m}, n = {n}, AUC = {auc}")
    z2, n_star = _z(confidence) ** 2, (m + n) / 2.0 - 1.0

    def excess(theta: float) -> float:
        v = theta * (1 - theta) * (1 + (n_star - 1) * ((1 - theta) / (2 - theta) + theta / (1 + theta))) / (m * n)
        return (auc - theta) ** 2 - z2 * max(v, 0.0)
    eps = 1e-12
    low = 0.0 if auc <= eps or excess(0.0) <= 0 else float(brentq(excess, 0.0, max(auc - eps, 0.0) or eps, xtol=1e-10))
    high = 1.0 if auc >= 1 - eps or excess(1.0) <= 0 else float(brentq(excess, min(auc + eps, 1.0), 1.0, xtol=1e-10))
    return low, high


def delong_test(y_true: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray, confidence: float = 0.95) -> dict:
    """Paired DeLong test of two score vectors ``(N,)`` on the same images.

    Returns ``{"auc_a", "auc_b", "difference", "ci_low", "ci_high", "z", "p_value"}`` with difference and z
    for ``b - a``. Zero variance of the difference (e.g. a score against itself): z = 0 and p = 1 when the
    difference is 0, otherwise z = ±inf and p = 0.
    """
    zq = _z(confidence)
    y, (sa, sb) = _binary(y_true, scores_a, scores_b)
    auc_a, v10_a, v01_a = _delong_components(y, sa)
    auc_b, v10_b, v01_b = _delong_components(y, sb)
    diff = auc_b - auc_a
    var = _variance(v10_b - v10_a, v01_b - v01_a)
    if var > 0:
        z = diff / np.sqrt(var)
        p = 2.0 * sps.norm.sf(abs(z))
    elif var == 0:
        z, p = (0.0, 1.0) if diff == 0 else (float(np.sign(diff) * np.inf), 0.0)
    else:  # undefined (a single image in a class)
        z = p = float("nan")
    half = zq * np.sqrt(var) if var >= 0 else float("nan")
    return {"auc_a": auc_a, "auc_b": auc_b, "difference": float(diff), "ci_low": float(diff - half),
            "ci_high": float(diff + half), "z": float(z), "p_value": float(p)}


def stratified_bootstrap_indices(y_true: np.ndarray, n_resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """``(n_resamples, N)`` indices, each row resampling with replacement within each class of ``y_true``.

    Position ``i`` of every row holds an index of the same class as ``y_true[i]``, so ``y_true[idx]`` equals
    ``y_true`` and the class sizes are kept exactly.
    """
    y = np.asarray(y_true)
    _same_length(y)
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    rng = np.random.default_rng(seed)
    out = np.empty((n_resamples, len(y)), dtype=np.int64)
    for cls in np.unique(y):
        members = np.flatnonzero(y == cls)
        out[:, members] = members[rng.integers(0, len(members), size=(n_resamples, len(members)))]
    return out


def _resampled(statistic: Callable[..., float], y: np.ndarray, arrays: Sequence[np.ndarray],
               indices: np.ndarray) -> np.ndarray:
    """``statistic(y[idx], *(a[idx] for a in arrays))`` for every row ``idx`` of ``indices``."""
    return np.array([statistic(y[idx], *(a[idx] for a in arrays)) for idx in indices], dtype=np.float64)


def _drop_nan(values: np.ndarray, what: str) -> np.ndarray:
    """``values`` without nan, logging a warning with how many were dropped."""
    bad = np.isnan(values)
    if bad.any():
        logger.warning("%s: %d of %d bootstrap resamples gave nan and were dropped", what, bad.sum(), len(values))
    return values[~bad]


def _percentiles(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """The percentile interval of ``values``; nan when empty."""
    if len(values) == 0:
        return float("nan"), float("nan")
    alpha = 1.0 - confidence
    low, high = np.percentile(values, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)


def bootstrap_interval(statistic: Callable[..., float], y_true: np.ndarray, *arrays: np.ndarray,
                       n_resamples: int = 1000, seed: int = 0, confidence: float = 0.95) -> tuple[float, float]:
    """Stratified percentile bootstrap interval of ``statistic(y_true, *arrays)``; arrays share the first dim N.

    Resamples where the statistic is nan are dropped (with a logged warning); ``(nan, nan)`` if all are.
    """
    _z(confidence)
    y, arrays = np.asarray(y_true), tuple(np.asarray(a) for a in arrays)
    _same_length(y, *arrays)
    values = _resampled(statistic, y, arrays, stratified_bootstrap_indices(y, n_resamples, seed))
    return _percentiles(_drop_nan(values, getattr(statistic, "__name__", "statistic")), confidence)


def _as_arrays(arrays: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    """A single array becomes a one-element list; a sequence of arrays becomes a list of arrays."""
    if isinstance(arrays, np.ndarray):
        return [arrays]
    return [np.asarray(a) for a in arrays]


def paired_bootstrap_difference(statistic: Callable[..., float], y_true: np.ndarray,
                                arrays_a: np.ndarray | Sequence[np.ndarray],
                                arrays_b: np.ndarray | Sequence[np.ndarray], n_resamples: int = 1000, seed: int = 0,
                                confidence: float = 0.95) -> dict:
    """Paired stratified bootstrap of ``statistic(y, *arrays_b) - statistic(y, *arrays_a)``.

    ``arrays_a``/``arrays_b`` are sequences of arrays with first dim N (a single array is allowed); both arms
    use the same resample indices. Returns ``{"a", "b", "difference" (b - a, full data), "ci_low", "ci_high",
    "p_value", "n_resamples"}``, where ``n_resamples`` counts the resamples kept (difference not nan).
    """
    _z(confidence)
    y, arrays_a, arrays_b = np.asarray(y_true), _as_arrays(arrays_a), _as_arrays(arrays_b)
    _same_length(y, *arrays_a, *arrays_b)
    a, b = float(statistic(y, *arrays_a)), float(statistic(y, *arrays_b))
    indices = stratified_bootstrap_indices(y, n_resamples, seed)
    diffs = _resampled(statistic, y, arrays_b, indices) - _resampled(statistic, y, arrays_a, indices)
    diffs = _drop_nan(diffs, getattr(statistic, "__name__", "statistic") + " difference")
    low, high = _percentiles(diffs, confidence)
    p = min(1.0, 2.0 * min(np.mean(diffs <= 0), np.mean(diffs >= 0))) if len(diffs) else float("nan")
    return {"a": a, "b": b, "difference": b - a, "ci_low": low, "ci_high": high, "p_value": float(p),
            "n_resamples": int(len(diffs))}


def mean_sd(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """``(mean, sample sd with ddof = 1)`` of ``values``; sd is nan for a single value."""
    v = np.asarray(values, np.float64).ravel()
    if len(v) == 0:
        raise ValueError("mean_sd needs at least one value, got n = 0")
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else float("nan")
