"""Calibration, operating point and detectable difference: simulation from known models, sklearn, hand cases."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.linear_model import LogisticRegression

from medsynth.stats.calibration import (
    brier_score,
    calibration_slope_intercept,
    min_detectable_difference,
    reliability_bins,
    sensitivity_at_specificity,
)


def _expit(x):
    return 1.0 / (1.0 + np.exp(-x))


def _simulate(n: int, seed: int):
    """True logits ~ N(-1, 1.5²) and outcomes drawn from them."""
    rng = np.random.default_rng(seed)
    lp = rng.normal(-1.0, 1.5, n)
    return lp, (rng.random(n) < _expit(lp)).astype(int)


def _slope_se(lp, slope, intercept):
    """SE of the slope from the inverse Fisher information of the fitted two-parameter model."""
    mu = _expit(intercept + slope * lp)
    x = np.column_stack([np.ones_like(lp), lp])
    return math.sqrt(np.linalg.inv((x * (mu * (1 - mu))[:, None]).T @ x)[1, 1])


def test_brier_score_by_hand():
    assert brier_score([0, 1, 1], [0.2, 0.7, 1.0]) == pytest.approx((0.04 + 0.09 + 0.0) / 3)
    with pytest.raises(ValueError, match="binary"):
        brier_score([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="same length"):
        brier_score([0, 1], [0.1])


def test_calibrated_model_has_slope_one_and_intercept_zero():
    lp, y = _simulate(20_000, seed=0)
    result = calibration_slope_intercept(y, _expit(lp))
    slope_se = _slope_se(lp, 1.0, 0.0)  # about 0.025
    intercept_se = 1 / math.sqrt(np.sum(_expit(lp) * (1 - _expit(lp))))  # offset model: 1 / √Σ w
    assert abs(result["slope"] - 1) < 4 * slope_se and abs(result["intercept"]) < 4 * intercept_se
    assert slope_se < 0.05  # the check has teeth


def test_over_confident_probabilities_have_slope_one_half():
    lp, y = _simulate(20_000, seed=1)
    result = calibration_slope_intercept(y, _expit(2 * lp))  # logits doubled: y depends on 0.5 · logit(p)
    assert abs(result["slope"] - 0.5) < 4 * _slope_se(2 * lp, 0.5, 0.0)


def test_slope_agrees_with_sklearn_and_intercept_solves_its_score_equation():
    rng = np.random.default_rng(2)
    p = np.clip(rng.beta(0.8, 2.5, 400), 0.01, 0.99)
    y = (rng.random(400) < p ** 0.7).astype(int)  # miscalibrated
    result = calibration_slope_intercept(y, p)
    lp = np.log(p / (1 - p))
    reference = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(lp[:, None], y)  # unpenalised
    assert result["slope"] == pytest.approx(reference.coef_[0, 0], rel=1e-5)
    # with slope fixed at 1 the maximum-likelihood intercept makes the expected events equal the observed
    assert np.sum(_expit(result["intercept"] + lp)) == pytest.approx(y.sum(), rel=1e-9)
    assert result["intercept"] > 0.2  # p ** 0.7 > p: events more frequent than predicted


def test_calibration_intercept_by_hand_and_failures(caplog):
    # constant p = 0.2 and half the outcomes positive: intercept = logit(0.5) - logit(0.2) = log 4; no slope
    y, p = np.array([0, 1] * 10), np.full(20, 0.2)
    with caplog.at_level(logging.WARNING):
        result = calibration_slope_intercept(y, p)
    assert result["intercept"] == pytest.approx(math.log(4), rel=1e-10) and np.isnan(result["slope"])
    assert "slope" in caplog.text
    caplog.clear()
    separated = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    with caplog.at_level(logging.WARNING):
        result = calibration_slope_intercept([0, 0, 0, 1, 1, 1], separated)
    assert np.isnan(result["slope"]) and "did not converge" in caplog.text
    edges = calibration_slope_intercept([0, 1, 0, 1, 1], [0.0, 1.0, 0.3, 0.6, 0.2])  # clipped, no infinities
    assert np.isfinite(edges["slope"]) and np.isfinite(edges["intercept"])


def test_reliability_bins_are_equal_count():
    p = np.array([0.9, 0.1, 0.5, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6, 0.0])
    y = np.array([1, 0, 1, 0, 1, 0, 1, 0, 0, 0])
    bins = reliability_bins(y, p, n_bins=3)  # sorted p: [0.0 .. 0.3], [0.4 .. 0.6], [0.7 .. 0.9]
    assert bins["count"].tolist() == [4, 3, 3]
    assert bins["mean_predicted"] == pytest.approx([0.15, 0.5, 0.8])
    assert bins["observed"] == pytest.approx([0.0, 1 / 3, 1.0])
    few = reliability_bins([0, 1], [0.3, 0.6], n_bins=5)  # three empty bins dropped
    assert few["count"].tolist() == [1, 1] and few["observed"].tolist() == [0.0, 1.0]


def test_sensitivity_at_specificity_by_hand():
    neg = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
    pos = [0.85, 0.9, 0.92, 0.97, 0.99]
    y, s = np.r_[np.zeros(10), np.ones(5)], np.r_[neg, pos]
    # 90 %: the 9th smallest negative, 0.9; positives strictly above it: 0.92, 0.97, 0.99
    assert sensitivity_at_specificity(y, s, 0.9) == {"value": 0.6, "threshold": 0.9, "specificity_achieved": 0.9}
    # 70 % of 10 is 7 (not 8, whatever the rounding of 0.7 · 10): threshold 0.7, all positives above
    assert sensitivity_at_specificity(y, s, 0.7)["threshold"] == 0.7
    assert sensitivity_at_specificity(y, s, 1.0) == {"value": 0.4, "threshold": 0.95, "specificity_achieved": 1.0}
    # ties: negatives 0.1, 0.2, 0.2, 0.2, 0.5; 50 % -> 3rd smallest, 0.2, which holds 4 of 5 negatives
    y = np.array([0, 0, 0, 0, 0, 1, 1, 1])
    s = np.array([0.1, 0.2, 0.2, 0.2, 0.5, 0.2, 0.3, 0.6])
    assert sensitivity_at_specificity(y, s, 0.5) == {"value": pytest.approx(2 / 3), "threshold": 0.2,
                                                      "specificity_achieved": 0.8}
    assert sensitivity_at_specificity(y, s, 0.0)["threshold"] == 0.1  # the smallest score
    with pytest.raises(ValueError, match="both classes"):
        sensitivity_at_specificity([0, 0], [0.1, 0.2])


def _connor_n(delta, psi, alpha=0.05, power=0.8):
    za, zb = norm.ppf(1 - alpha / 2), norm.ppf(power)
    return (za * math.sqrt(psi) + zb * math.sqrt(psi - delta ** 2)) ** 2 / delta ** 2


@pytest.mark.parametrize("n,psi,alpha,power,deff", [(15, 0.4, 0.05, 0.8, 1.0), (100, 0.2, 0.05, 0.9, 1.0),
                                                     (60, 0.3, 0.01, 0.8, 1.5), (500, 0.05, 0.05, 0.8, 1.2)])
def test_min_detectable_difference_solves_connors_formula(n, psi, alpha, power, deff):
    delta = min_detectable_difference(n, psi, alpha, power, deff)
    assert 0 < delta <= math.sqrt(psi)
    assert _connor_n(delta, psi, alpha, power) == pytest.approx(n / deff, rel=1e-8)


def test_min_detectable_difference_edges():
    # power 1/2: z_power = 0 and n = z² ψ / δ², so δ = z √(ψ / n)
    assert min_detectable_difference(50, 0.3, power=0.5) == pytest.approx(1.959964 * math.sqrt(0.3 / 50), rel=1e-6)
    assert min_detectable_difference(40, 0.3, design_effect=2.0) > min_detectable_difference(40, 0.3)
    assert np.isnan(min_detectable_difference(15, 0.0))
    assert np.isnan(min_detectable_difference(3, 0.5))  # n = 3 < z² = 3.84: not even δ = √ψ
    with pytest.raises(ValueError, match="at most 1"):
        min_detectable_difference(15, 1.5)


def test_slope_and_intercept_alone_equal_the_pair_and_can_stay_quiet(caplog):
    from medsynth.stats.calibration import calibration_intercept, calibration_slope

    rng = np.random.default_rng(5)
    p = rng.uniform(0.05, 0.95, 300)
    y = (rng.random(300) < p).astype(int)
    both = calibration_slope_intercept(y, p)
    assert calibration_slope(y, p) == both["slope"] and calibration_intercept(y, p) == both["intercept"]
    separated = [0.1, 0.2, 0.3, 0.7, 0.8, 0.9]
    caplog.clear()
    assert np.isnan(calibration_slope([0, 0, 0, 1, 1, 1], separated, warn=False))
    assert not caplog.records
    assert np.isnan(calibration_slope([0, 0, 0, 1, 1, 1], separated))
    assert any("did not converge" in r.getMessage() for r in caplog.records)
