"""Calibration of predicted probabilities, an operating point at fixed specificity, and the detectable difference.

For binary outcomes y ∈ {0, 1} and predicted probabilities p (clipped to [1e-7, 1 - 1e-7]):

    Brier score = mean (p - y)²                                             (Brier 1950)
    calibration slope: β in logit P(y = 1) = α + β logit(p)                  (Cox 1958)
    calibration-in-the-large: α in logit P(y = 1) = α + logit(p)  (offset, slope fixed at 1; Van Calster et
    al. 2019)

Both logistic fits are maximum likelihood by Newton-Raphson, β ← β + (Xᵀ W X)⁻¹ Xᵀ (y - μ) with
μ = expit(offset + X β), W = diag(μ(1 - μ)); a fit that does not converge (perfect separation, a constant
predictor) gives nan. A calibrated model has slope 1 and intercept 0; slope < 1 means over-confident
probabilities (too extreme), intercept > 0 that they are too low on average.

Reliability bins: the images sorted by p and cut into ``n_bins`` equal-count bins (sizes differ by at most
one; tied p may straddle a cut), each bin's mean p against its observed event rate.

Sensitivity at specificity s on this set's ROC curve: the threshold t is the smallest score with
#{negatives ≤ t} / n_neg ≥ s (the ⌈s n_neg⌉-th smallest negative score); an image is called positive when its
score is > t, so the specificity achieved is #{negatives ≤ t} / n_neg ≥ s (more when negatives tie at t) and
the sensitivity is #{positives > t} / n_pos.

Minimum detectable difference of a paired proportion (e.g. minority recall of two arms on the same n
positive images) by McNemar's test, from Connor's (1987) sample size with ψ the share of discordant pairs
and δ the difference of the two proportions:

    n = [z_{1-α/2} √ψ + z_{power} √(ψ - δ²)]² / δ²

solved for δ in (0, √ψ] at n = n_positive / design_effect (the design effect 1 + (m̄ - 1) ρ of correlated
images of one patient; Kish 1965).
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import optimize, special
from scipy import stats as sps

logger = logging.getLogger(__name__)

_EPS = 1e-7


def _labels_probs(y01: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``(y (N,) float in {0, 1}, p (N,) float)``."""
    y, q = np.asarray(y01).ravel(), np.asarray(p, np.float64).ravel()
    if len(y) != len(q):
        raise ValueError(f"y01 and p must have the same length, got {len(y)} and {len(q)}")
    if len(y) == 0:
        raise ValueError("no samples: n = 0")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"labels must be binary 0/1, got values {np.unique(y)[:10].tolist()}")
    return y.astype(np.float64), q


def brier_score(y01: np.ndarray, p: np.ndarray) -> float:
    """Mean squared difference between ``p (N,)`` and the outcomes ``y01 (N,)``."""
    y, q = _labels_probs(y01, p)
    return float(np.mean((q - y) ** 2))


def _newton_logistic(x: np.ndarray, y: np.ndarray, offset: np.ndarray, max_iter: int = 100,
                     tol: float = 1e-10) -> np.ndarray | None:
    """Maximum-likelihood coefficients ``(P,)`` of logit μ = offset + x β for design ``x (N, P)``.

    None when the steps do not converge or the information matrix is singular (condition number ≥ 1e12).
    """
    beta = np.zeros(x.shape[1])
    for _ in range(max_iter):
        mu = special.expit(offset + x @ beta)
        hessian = (x * (mu * (1.0 - mu))[:, None]).T @ x
        if not np.linalg.cond(hessian) < 1e12:  # a constant predictor, or weights vanishing under separation
            return None
        try:
            step = np.linalg.solve(hessian, x.T @ (y - mu))
        except np.linalg.LinAlgError:
            return None
        if not np.all(np.isfinite(step)):
            return None
        beta = beta + step
        if np.max(np.abs(step)) < tol * (1.0 + np.max(np.abs(beta))):
            return beta
    return None


def _logit_predictions(y01: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(y (N,), logit(p) (N,))`` with ``p`` clipped to [1e-7, 1 - 1e-7]."""
    y, q = _labels_probs(y01, p)
    return y, special.logit(np.clip(q, _EPS, 1.0 - _EPS))


def calibration_slope(y01: np.ndarray, p: np.ndarray, *, warn: bool = True) -> float:
    """Cox's calibration slope: the coefficient of logit(p) in a logistic regression of ``y01`` on it; nan (with a
    logged warning unless ``warn`` is False) when the Newton-Raphson fit does not converge."""
    y, lp = _logit_predictions(y01, p)
    fit = _newton_logistic(np.column_stack([np.ones(len(y)), lp]), y, np.zeros(len(y)))
    if fit is None:
        if warn:
            logger.warning("calibration slope: the logistic fit did not converge (separation?); nan")
        return float("nan")
    return float(fit[1])


def calibration_intercept(y01: np.ndarray, p: np.ndarray, *, warn: bool = True) -> float:
    """Calibration-in-the-large: the intercept of a logistic regression of ``y01`` with logit(p) as offset (slope
    fixed at 1); nan (with a logged warning unless ``warn`` is False) when the fit does not converge."""
    y, lp = _logit_predictions(y01, p)
    shift = _newton_logistic(np.ones((len(y), 1)), y, lp)
    if shift is None:
        if warn:
            logger.warning("calibration intercept: the logistic fit did not converge (separation?); nan")
        return float("nan")
    return float(shift[0])


def calibration_slope_intercept(y01: np.ndarray, p: np.ndarray) -> dict:
    """``{"slope", "intercept"}``: :func:`calibration_slope` and :func:`calibration_intercept`.

    ``p (N,)`` predicted probabilities of ``y01 (N,) = 1``, clipped to [1e-7, 1 - 1e-7]. Each is nan (with a
    logged warning) when its Newton-Raphson fit does not converge, e.g. under perfect separation.
    """
    return {"slope": calibration_slope(y01, p), "intercept": calibration_intercept(y01, p)}


def reliability_bins(y01: np.ndarray, p: np.ndarray, n_bins: int = 10) -> dict:
    """``{"mean_predicted", "observed", "count"}``, each ``(B,)``: equal-count bins of ``p (N,)``, empty dropped."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    y, q = _labels_probs(y01, p)
    bins = [b for b in np.array_split(np.argsort(q, kind="stable"), n_bins) if len(b)]
    return {"mean_predicted": np.array([q[b].mean() for b in bins]),
            "observed": np.array([y[b].mean() for b in bins]),
            "count": np.array([len(b) for b in bins], dtype=np.int64)}


def sensitivity_at_specificity(y01: np.ndarray, scores: np.ndarray, specificity: float = 0.9) -> dict:
    """``{"value", "threshold", "specificity_achieved"}`` at the target ``specificity`` on this set's ROC curve.

    Positive when score > threshold; the threshold is the ⌈specificity · n_neg⌉-th smallest negative score
    (the smallest score when the target is 0). Both classes must be present.
    """
    if not 0.0 <= specificity <= 1.0:
        raise ValueError(f"specificity must be in [0, 1], got {specificity}")
    y, s = _labels_probs(y01, scores)
    pos, neg = s[y == 1], np.sort(s[y == 0])
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("sensitivity at specificity needs both classes")
    k = int(np.ceil(specificity * len(neg) - 1e-9))  # the tolerance keeps e.g. 0.7 · 10 at 7, not 8
    t = float(neg[k - 1]) if k > 0 else float(s.min())
    return {"value": float(np.mean(pos > t)), "threshold": t, "specificity_achieved": float(np.mean(neg <= t))}


def min_detectable_difference(n_positive: int, discordance: float, alpha: float = 0.05, power: float = 0.8,
                              design_effect: float = 1.0) -> float:
    """The smallest |δ| of a paired proportion detected by McNemar's test with ``power`` at level ``alpha``.

    ``discordance`` ψ is the share of discordant pairs; the effective size is n_positive / design_effect.
    nan when ψ ≤ 0, or when even δ = √ψ needs more pairs than there are (n ≤ z²_{1-α/2}). Only δ ≤ ψ is
    attainable (|p10 - p01| ≤ p10 + p01), so a result above ψ means no attainable difference is detectable.
    """
    if not 0.0 < alpha < 1.0 or not 0.0 < power < 1.0:
        raise ValueError(f"alpha and power must be in (0, 1), got {alpha} and {power}")
    if n_positive <= 0 or design_effect <= 0:
        raise ValueError(f"need n_positive > 0 and design_effect > 0, got {n_positive} and {design_effect}")
    if discordance > 1:
        raise ValueError(f"discordance is a share of pairs, at most 1, got {discordance}")
    if not discordance > 0:
        return float("nan")
    n = n_positive / design_effect
    za, zb, psi = sps.norm.ppf(1.0 - alpha / 2.0), sps.norm.ppf(power), float(discordance)

    def excess(delta: float) -> float:
        return float((za * np.sqrt(psi) + zb * np.sqrt(max(psi - delta * delta, 0.0))) ** 2 / delta ** 2 - n)
    high = np.sqrt(psi)
    if excess(high) > 0:
        return float("nan")
    return float(optimize.brentq(excess, high * 1e-9, high, xtol=1e-14, rtol=1e-12))
