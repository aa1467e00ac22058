"""Interval and test statistics: published pins, closed formulas, brute force and scipy/sklearn cross-checks."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from scipy.stats import binomtest, norm
from sklearn.metrics import roc_auc_score

from medsynth.stats.intervals import (
    bootstrap_interval,
    delong_auc_variance,
    delong_interval,
    delong_test,
    exact_mcnemar,
    mcnemar_test,
    mean_sd,
    paired_bootstrap_difference,
    stratified_bootstrap_indices,
    wilson_interval,
)


def _psi(x: float, y: float) -> float:
    return 1.0 if x > y else 0.5 if x == y else 0.0


def _structural_components(y, s):
    """DeLong's V10, V01 by their definition, pair by pair."""
    pos = [v for v, t in zip(s, y, strict=True) if t == 1]
    neg = [v for v, t in zip(s, y, strict=True) if t == 0]
    v10 = [sum(_psi(x, z) for z in neg) / len(neg) for x in pos]
    v01 = [sum(_psi(x, z) for x in pos) / len(pos) for z in neg]
    return v10, v01


def _sample_cov(a, b):
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    return sum((u - ma) * (v - mb) for u, v in zip(a, b, strict=True)) / (len(a) - 1)


# ---------------------------------------------------------------- Wilson

def test_wilson_pin():
    low, high = wilson_interval(178, 300)
    assert low == pytest.approx(0.5369, abs=5e-5) and high == pytest.approx(0.6474, abs=5e-5)


@pytest.mark.parametrize("k,n,confidence", [(0, 7, 0.95), (3, 7, 0.95), (7, 7, 0.95), (45, 1000, 0.9), (1, 2, 0.99)])
def test_wilson_closed_formula(k, n, confidence):
    z = norm.ppf(1 - (1 - confidence) / 2)
    # the form with counts: (k + z²/2 ± z √(k(n-k)/n + z²/4)) / (n + z²)
    centre, half = k + z * z / 2, z * np.sqrt(k * (n - k) / n + z * z / 4)
    expected = ((centre - half) / (n + z * z), (centre + half) / (n + z * z))
    assert wilson_interval(k, n, confidence) == pytest.approx(expected, abs=1e-12)


def test_wilson_edges_are_exact():
    z2 = norm.ppf(0.975) ** 2
    assert wilson_interval(0, 20) == (0.0, pytest.approx(z2 / (20 + z2)))
    assert wilson_interval(20, 20) == (pytest.approx(20 / (20 + z2)), 1.0)


@pytest.mark.parametrize("args", [(0, 0), (5, 4), (1, 10, 1.0), (1, 10, 0.0)])
def test_wilson_rejects_bad_input(args):
    with pytest.raises(ValueError):
        wilson_interval(*args)


# ---------------------------------------------------------------- McNemar

def test_mcnemar_pin():
    # rows: A right / wrong; columns: B right / wrong -> [[50, 10], [2, 38]]
    a = np.array([1] * 50 + [1] * 10 + [0] * 2 + [0] * 38, bool)
    b = np.array([1] * 50 + [0] * 10 + [1] * 2 + [0] * 38, bool)
    result = mcnemar_test(a, b)
    assert (result["b"], result["c"], result["n"]) == (10, 2, 100)
    assert result["p_value"] == pytest.approx(0.03857, abs=1e-5)
    assert mcnemar_test(b, a)["p_value"] == pytest.approx(result["p_value"])


def test_exact_mcnemar_is_the_binomial_test():
    for b in range(0, 30, 3):
        for c in range(0, 30, 4):
            if b + c:
                assert exact_mcnemar(b, c) == pytest.approx(binomtest(b, b + c, 0.5).pvalue, rel=1e-10)
    assert exact_mcnemar(0, 0) == 1.0
    with pytest.raises(ValueError, match="same length"):
        mcnemar_test(np.ones(3, bool), np.ones(4, bool))


# ---------------------------------------------------------------- DeLong

def test_delong_pin():
    auc, var = delong_auc_variance(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    assert auc == pytest.approx(0.75) and var == pytest.approx(0.125)


def test_delong_matches_sklearn_and_brute_force_with_ties():
    rng = np.random.default_rng(3)
    for n in (12, 40):
        y = np.r_[0, 1, rng.integers(0, 2, n - 2)]
        s = rng.integers(0, 5, n).astype(float)  # many ties
        auc, var = delong_auc_variance(y, s)
        v10, v01 = _structural_components(y, s)
        assert auc == pytest.approx(roc_auc_score(y, s), abs=1e-12)
        assert var == pytest.approx(_sample_cov(v10, v10) / len(v10) + _sample_cov(v01, v01) / len(v01), rel=1e-10)


def test_delong_paired_test_against_brute_force():
    rng = np.random.default_rng(5)
    y = np.r_[np.zeros(15, int), np.ones(10, int)]
    sa, sb = y + rng.normal(0, 1, 25), np.round(y * 0.5 + rng.normal(0, 1, 25), 1)
    (a10, a01), (b10, b01) = _structural_components(y, sa), _structural_components(y, sb)
    var = sum(_sample_cov(u, v) * w for u, v, w in [(a10, a10, 1), (b10, b10, 1), (a10, b10, -2)]) / 10
    var += sum(_sample_cov(u, v) * w for u, v, w in [(a01, a01, 1), (b01, b01, 1), (a01, b01, -2)]) / 15
    diff = roc_auc_score(y, sb) - roc_auc_score(y, sa)
    result = delong_test(y, sa, sb)
    assert result["difference"] == pytest.approx(diff, abs=1e-12)
    assert result["z"] == pytest.approx(diff / np.sqrt(var), rel=1e-9)
    assert result["p_value"] == pytest.approx(2 * norm.sf(abs(diff / np.sqrt(var))), rel=1e-9)
    assert result["ci_low"] == pytest.approx(diff - norm.ppf(0.975) * np.sqrt(var), rel=1e-9)


def test_delong_comparison_pin_from_mlstatkit_data():
    rng = np.random.default_rng(0)
    y = np.array([0, 1] * 50)
    pa = np.clip(0.5 + 0.4 * (y - 0.5) + rng.normal(0, 0.15, y.size), 0, 1)
    pb = np.clip(0.5 + 0.3 * (y - 0.5) + rng.normal(0, 0.20, y.size), 0, 1)
    result = delong_test(y, pa, pb)
    assert result["auc_a"] == pytest.approx(0.9824, abs=5e-5) and result["auc_b"] == pytest.approx(0.8880, abs=5e-5)
    assert result["z"] == pytest.approx(-2.741, abs=5e-4)  # difference is b - a
    assert result["p_value"] == pytest.approx(0.0061, abs=5e-5)


def test_delong_score_against_itself_has_zero_difference_and_p_one():
    rng = np.random.default_rng(1)
    y, s = np.r_[0, 1, rng.integers(0, 2, 30)], rng.random(32)
    result = delong_test(y, s, s)
    assert result["difference"] == 0 and result["z"] == 0 and result["p_value"] == 1.0
    assert result["ci_low"] == result["ci_high"] == 0


def test_delong_interval_is_on_the_logit_scale():
    # Was the clipped Wald interval AUC ± z √Var; now the logit-scale interval expit(logit AUC ± z SE / (AUC (1 -
    # AUC))), which stays inside (0, 1) without clipping, so the old expectations (a bound clipped to 1, and
    # (1, 1, 1) at perfect separation) no longer hold.
    y = np.array([0, 0, 0, 1, 1, 1, 0, 1])
    s = np.array([0.1, 0.5, 0.3, 0.4, 0.9, 0.7, 0.2, 0.6])
    auc, var = delong_auc_variance(y, s)
    assert auc == pytest.approx(15 / 16)  # only 0.4 < 0.5 is mis-ordered
    assert auc + 1.959964 * np.sqrt(var) > 1  # the symmetric interval would cross 1 here
    centre, half = np.log(auc / (1 - auc)), 1.959964 * np.sqrt(var) / (auc * (1 - auc))
    low, high = 1 / (1 + np.exp(-(centre - half))), 1 / (1 + np.exp(-(centre + half)))
    assert delong_interval(y, s) == pytest.approx((auc, low, high), rel=1e-6)
    assert 0 < low < auc < high < 1
    auc, low, high = delong_interval(y, y.astype(float))  # perfect separation: no logit, no interval
    assert auc == 1.0 and np.isnan(low) and np.isnan(high)
    auc, low, high = delong_interval(np.array([0, 1, 0]), np.array([0.2, 0.6, 0.7]))  # one positive: Var undefined
    assert auc == 0.5 and np.isnan(low) and np.isnan(high)


def test_delong_rejects_bad_input():
    with pytest.raises(ValueError, match="both classes"):
        delong_auc_variance(np.ones(5, int), np.arange(5.0))
    with pytest.raises(ValueError, match="same length"):
        delong_test(np.array([0, 1, 1]), np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match="confidence"):
        delong_interval(np.array([0, 1]), np.array([0.2, 0.4]), confidence=95)


# ---------------------------------------------------------------- bootstrap

def test_stratified_indices_keep_the_classes():
    y = np.array([0] * 17 + [1] * 3 + [2] * 6)
    np.random.default_rng(0).shuffle(y)
    idx = stratified_bootstrap_indices(y, n_resamples=300, seed=4)
    assert idx.shape == (300, 26) and idx.dtype.kind == "i"
    assert (y[idx] == y).all()  # every position resampled within its own class
    counts = np.array([np.bincount(y[row], minlength=3) for row in idx])
    assert (counts == [17, 3, 6]).all()
    assert len(np.unique(idx[:, y == 1])) == 3  # the minority images do get resampled
    assert (stratified_bootstrap_indices(y, 300, seed=4) == idx).all()
    assert (stratified_bootstrap_indices(y, 300, seed=5) != idx).any()


def test_bootstrap_interval_covers_at_about_nominal_rate():
    rng = np.random.default_rng(0)
    trials, covered = 200, 0
    for t in range(trials):
        x = rng.normal(1.0, 2.0, 60)
        low, high = bootstrap_interval(lambda _y, v: v.mean(), np.zeros(60, int), x, n_resamples=200, seed=t,
                                       confidence=0.9)
        covered += low <= 1.0 <= high
    assert 0.80 <= covered / trials <= 0.97  # nominal 0.90; binomial sd of the rate over 200 trials: 0.021


def test_bootstrap_interval_drops_nan_and_says_so(caplog):
    y, x = np.r_[np.zeros(10, int), np.ones(10, int)], np.arange(20.0)

    def first_small_mean(_y, v):
        return np.nan if v[0] > 4 else v.mean()
    idx = stratified_bootstrap_indices(y, 100, seed=2)
    kept = np.array([x[i].mean() for i in idx if x[i][0] <= 4])
    with caplog.at_level(logging.WARNING):
        low, high = bootstrap_interval(first_small_mean, y, x, n_resamples=100, seed=2)
    assert f"{100 - len(kept)} of 100" in caplog.text
    assert (low, high) == pytest.approx(tuple(np.percentile(kept, [2.5, 97.5])))
    with pytest.raises(ValueError, match="same length"):
        bootstrap_interval(first_small_mean, y, x[:5])


def test_paired_bootstrap_difference():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(30, int), np.ones(20, int)]
    a, b = rng.normal(0, 1, 50), rng.normal(0.8, 1, 50)

    def mean(_y, v):
        return v.mean()
    same = paired_bootstrap_difference(mean, y, [a], [a], n_resamples=200)
    assert same["difference"] == same["ci_low"] == same["ci_high"] == 0 and same["p_value"] == 1.0
    result = paired_bootstrap_difference(mean, y, a, [b], n_resamples=400, seed=3)  # a bare array works too
    diffs = np.array([b[i].mean() - a[i].mean() for i in stratified_bootstrap_indices(y, 400, seed=3)])
    assert result["difference"] == pytest.approx(b.mean() - a.mean())
    assert (result["a"], result["b"]) == pytest.approx((a.mean(), b.mean()))
    assert (result["ci_low"], result["ci_high"]) == pytest.approx(tuple(np.percentile(diffs, [2.5, 97.5])))
    assert result["p_value"] == pytest.approx(min(1, 2 * min((diffs <= 0).mean(), (diffs >= 0).mean())))
    assert result["ci_low"] > 0 and result["n_resamples"] == 400


def test_mean_sd():
    v = [0.61, 0.58, 0.66, 0.59]
    assert mean_sd(v) == pytest.approx((np.mean(v), np.std(v, ddof=1)))
    mean, sd = mean_sd([0.7])
    assert mean == 0.7 and np.isnan(sd)
    with pytest.raises(ValueError, match="n = 0"):
        mean_sd([])


def _newcombe_excess(theta: float, auc: float, m: int, n: int, z: float = 1.959963984540054) -> float:
    """(AUC - θ)² - z² V(θ), V the Hanley-McNeil variance with N* = (m + n)/2 - 1 (Newcombe 2006), by hand."""
    n_star = (m + n) / 2 - 1
    v = theta * (1 - theta) * (1 + (n_star - 1) * ((1 - theta) / (2 - theta) + theta / (1 + theta))) / (m * n)
    return (auc - theta) ** 2 - z * z * v


@pytest.mark.parametrize("auc,m,n", [(1.0, 4, 14), (0.0, 5, 20), (0.83, 15, 112), (1.0, 1, 30)])
def test_newcombe_interval_solves_its_equation(auc, m, n):
    from medsynth.stats.intervals import newcombe_auc_interval

    low, high = newcombe_auc_interval(auc, m, n)
    assert 0.0 <= low <= auc <= high <= 1.0 and low < high
    for bound, edge in ((low, 0.0), (high, 1.0)):
        if bound != auc and bound != edge:
            assert _newcombe_excess(bound, auc, m, n) == pytest.approx(0.0, abs=1e-9)
    # just outside the bounds the equation says "excluded", just inside "included"
    if low > 0:
        assert _newcombe_excess(low - 1e-4, auc, m, n) > 0 and _newcombe_excess(low + 1e-4, auc, m, n) < 0
    if high < 1:
        assert _newcombe_excess(high + 1e-4, auc, m, n) > 0
    if auc == 1.0:  # (1 - θ)² = z² V(θ) at m = 4, n = 14: by hand 0.7 is outside (0.09 > 0.079), 0.8 inside
        assert high == 1.0 and (m, n) != (4, 14) or 0.7 < low < 0.8


def test_auc_interval_at_perfect_separation_is_not_undefined():
    from medsynth.stats.clustered import auc_interval

    y = np.r_[np.ones(4, int), np.zeros(14, int)]
    scores = np.r_[np.linspace(0.6, 0.9, 4), np.linspace(0.0, 0.5, 14)]
    out = auc_interval(y, scores)
    assert out["value"] == 1.0 and out["ci_high"] == 1.0 and 0.7 < out["ci_low"] < 0.8
    assert out["method"].startswith("Newcombe")
