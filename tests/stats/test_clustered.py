"""Patient-level statistics: hand cases in exact fractions, brute force, scipy/sklearn and image-level reductions."""

from __future__ import annotations

import itertools
import logging
import math
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats
from scipy.stats import norm
from sklearn.metrics import accuracy_score, balanced_accuracy_score, recall_score, roc_auc_score

from medsynth.stats import clustered
from medsynth.stats.clustered import (
    _bca_parameters,
    auc_difference_test,
    auc_interval,
    bca_interval,
    cluster_bootstrap_difference,
    cluster_bootstrap_indices,
    cluster_bootstrap_interval,
    cluster_jackknife_indices,
    clustered_mcnemar,
    holm,
    linear_contributions,
    linear_weights,
    obuchowski_auc_variance,
    obuchowski_test,
    sign_flip_interval,
    sign_flip_test,
)
from medsynth.stats.intervals import (
    delong_auc_variance,
    delong_interval,
    delong_test,
    mcnemar_test,
    paired_bootstrap_difference,
    stratified_bootstrap_indices,
)

Z975 = 1.959963984540054


def _mean(_y, v):
    return float(np.mean(v))


def _clustered_set(seed: int = 0, n_patients: int = 30):
    """Labels, patient ids (strings) and two score vectors; 1-3 images per patient, some mixed patients."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 4, n_patients)
    groups = np.repeat([f"P{i:03d}" for i in range(n_patients)], sizes)
    y = (rng.random(len(groups)) < 0.3).astype(int)
    y[:2] = [0, 1]
    effect = rng.normal(0, 1, n_patients)[np.repeat(np.arange(n_patients), sizes)]
    sa = np.round(y + effect + rng.normal(0, 1, len(y)), 1)  # rounded: ties
    sb = np.round(1.3 * y + effect + rng.normal(0, 1, len(y)), 1)
    order = rng.permutation(len(y))  # patients' images need not be adjacent
    return y[order], groups[order], sa[order], sb[order]


# ---------------------------------------------------------------- resampling indices

@pytest.mark.parametrize("singletons", [False, True])
def test_cluster_bootstrap_without_clusters_is_the_stratified_bootstrap(singletons):
    y = np.array([0] * 17 + [1] * 3 + [2] * 6)
    np.random.default_rng(0).shuffle(y)
    groups = [f"id{i}" for i in range(len(y))] if singletons else None
    rows = cluster_bootstrap_indices(y, groups, n_resamples=50, seed=7)
    expected = stratified_bootstrap_indices(y, 50, seed=7)
    assert len(rows) == 50 and all(np.array_equal(r, e) for r, e in zip(rows, expected, strict=True))


def test_cluster_bootstrap_draws_whole_patients_within_composition_strata():
    # patients: a (0, 0), b (1, 1), c (0), d (0, 1), e (0, 1), f (1)
    groups = np.array(["a", "b", "a", "c", "d", "b", "d", "e", "e", "f"])
    y = np.array([0, 1, 0, 0, 0, 1, 1, 0, 1, 1])
    members = {g: np.flatnonzero(groups == g) for g in "abcdef"}
    strata = [{"a", "c"}, {"d", "e"}, {"b", "f"}]  # compositions (0,), (0, 1), (1,)
    rows = cluster_bootstrap_indices(y, groups, n_resamples=400, seed=3)
    draws = np.zeros((400, 6))
    for r, row in enumerate(rows):
        counts = np.bincount(row, minlength=len(y))
        for j, g in enumerate("abcdef"):
            per_image = counts[members[g]]
            assert (per_image == per_image[0]).all()  # a patient comes with all of its images
            draws[r, j] = per_image[0]
        for stratum in strata:  # as many patients drawn per stratum as it holds
            assert sum(draws[r, "abcdef".index(g)] for g in stratum) == 2
    assert np.allclose(draws.mean(0), 1.0, atol=0.15)  # uniform within the stratum (sd of a mean: 0.035)
    assert draws.max() == 2 and (draws == 0).any()
    again = cluster_bootstrap_indices(y, list(groups), n_resamples=400, seed=3)
    assert all(np.array_equal(r, s) for r, s in zip(rows, again, strict=True))
    assert any(not np.array_equal(r, s) for r, s in zip(rows, cluster_bootstrap_indices(y, groups, 400, seed=4),
                                                         strict=True))


def test_cluster_jackknife_indices():
    assert [r.tolist() for r in cluster_jackknife_indices(["x", "y", "x", "z"])] == [[1, 3], [0, 2, 3], [0, 1, 2]]
    assert [r.tolist() for r in cluster_jackknife_indices(np.array([7, 7, 7]))] == [[]]
    assert [r.tolist() for r in cluster_jackknife_indices(None, n=3)] == [[1, 2], [0, 2], [0, 1]]
    with pytest.raises(ValueError, match="needs n"):
        cluster_jackknife_indices(None)


def test_groups_of_the_wrong_length_are_refused():
    with pytest.raises(ValueError, match="one patient id per image"):
        cluster_bootstrap_indices(np.zeros(4), ["a", "b", "c"])


# ---------------------------------------------------------------- BCa

def test_bca_parameters_by_hand_with_ties():
    # 2 of 5 values below the estimate 3, 2 tied: P = 2/5 + 1/2 · 2/5 = 3/5
    # jackknife [1, 2, 6]: mean 3, d = 3 - θ_(i) = [2, 1, -3]; Σd³ = -18, Σd² = 14 -> a = -18 / (6 · 14^1.5)
    z0, a = _bca_parameters(3.0, np.array([1.0, 2, 3, 3, 4]), np.array([1.0, 2, 6]))
    assert z0 == pytest.approx(0.2533471031357997, abs=1e-12)  # Φ⁻¹(0.6)
    assert a == pytest.approx(-3.0 / 14 ** 1.5, rel=1e-12)
    assert _bca_parameters(3.0, np.array([1.0, 5]), np.array([2.0, 2, 2])) == (0.0, 0.0)


def test_bca_interval_by_hand():
    boot = np.arange(1000.0)  # np.percentile(boot, q) = 9.99 q
    # P*(θ* < 599.5) = 0.6 -> z0 = Φ⁻¹(0.6) = 0.253347...; jackknife d = [2, 1, -3] -> a = -3 / 14^1.5
    z0, a = 0.2533471031357997, -3.0 / 14 ** 1.5
    levels = [norm.cdf(z0 + (z0 + z) / (1 - a * (z0 + z))) for z in (-Z975, Z975)]
    low, high = bca_interval(599.5, boot, np.array([8.0, 9, 13]))
    assert (low, high) == pytest.approx((999 * levels[0], 999 * levels[1]), rel=1e-9)
    assert 999 * 0.025 < low < 999 * 0.08  # moved up from the percentile bound, as z0 > 0
    # z0 = 0 and a = 0: the percentile interval
    assert bca_interval(499.5, boot, np.ones(4)) == pytest.approx((999 * 0.025, 999 * 0.975))
    # nan values are dropped
    with_nan = bca_interval(599.5, np.r_[boot, np.nan, np.nan], np.array([8.0, np.nan, 9, 13]))
    assert with_nan == pytest.approx((low, high), rel=1e-12)


def test_bca_falls_back_to_the_percentile_interval_when_z0_is_infinite(caplog):
    boot = np.linspace(1.0, 2.0, 101)
    with caplog.at_level(logging.WARNING):
        assert bca_interval(0.5, boot, np.array([0.4, 0.5, 0.7])) == pytest.approx((1.025, 1.975))
    assert "one side" in caplog.text
    assert all(np.isnan(bca_interval(np.nan, boot, boot)))
    assert all(np.isnan(bca_interval(1.0, np.array([np.nan]), boot)))


def test_bca_agrees_with_scipy_on_a_skewed_statistic():
    # the mean of 30 exponential draws: skewed, so z0 ≈ 0.09 and a ≈ 0.09 both move the bounds. Here the
    # percentile interval is (0.75, 1.96), BCa without acceleration (0.79, 2.03), with the sign of z0 flipped
    # (0.78, 2.04), without z0 (0.81, 2.13): all miss scipy's (0.84, 2.22) by more than the tolerance; the
    # Monte-Carlo error of each bound with 100,000 resamples is about 0.003.
    x = np.random.default_rng(1).exponential(1.0, 30)
    ref = stats.bootstrap((x,), np.mean, n_resamples=100_000, method="BCa", random_state=7).confidence_interval
    boot = x[np.random.default_rng(3).integers(0, 30, (100_000, 30))].mean(1)
    jack = (x.sum() - x) / 29
    low, high = bca_interval(x.mean(), boot, jack)
    assert low == pytest.approx(ref.low, abs=0.015) and high == pytest.approx(ref.high, abs=0.02)


# ---------------------------------------------------------------- cluster bootstrap of statistics

def test_cluster_bootstrap_difference_by_brute_force():
    rng = np.random.default_rng(2)
    y, groups, _, _ = _clustered_set(2)
    a, b = rng.normal(0, 1, len(y)), rng.normal(0.3, 1, len(y))
    result = cluster_bootstrap_difference(_mean, y, [a], [b], groups, n_resamples=300, seed=1)
    rows = cluster_bootstrap_indices(y, groups, 300, seed=1)
    diffs = np.array([b[r].mean() - a[r].mean() for r in rows])
    jack = np.array([b[groups != g].mean() - a[groups != g].mean() for g in np.unique(groups)])
    assert (result["ci_low"], result["ci_high"]) == pytest.approx(bca_interval(b.mean() - a.mean(), diffs, jack))
    assert result["p_value"] == pytest.approx(min(1, 2 * min((diffs <= 0).mean(), (diffs >= 0).mean())))
    assert result["difference"] == pytest.approx(b.mean() - a.mean())
    assert (result["a"], result["b"]) == pytest.approx((a.mean(), b.mean()))
    assert result["n_resamples"] == 300 and result["n_images"] == len(y)
    assert result["n_patients"] == 30 and result["method"] == "cluster bootstrap (BCa)"


def test_cluster_bootstrap_difference_without_groups_shares_the_stratified_resamples():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(30, int), np.ones(20, int)]
    a, b = rng.normal(0, 1, 50), rng.normal(0.5, 1, 50)
    old = paired_bootstrap_difference(_mean, y, [a], [b], n_resamples=400, seed=3)
    new = cluster_bootstrap_difference(_mean, y, a, [b], n_resamples=400, seed=3)  # a bare array works too
    assert new["p_value"] == old["p_value"] and new["n_patients"] == new["n_images"] == 50
    assert new["method"] == "stratified bootstrap (BCa)"
    diffs = np.array([b[i].mean() - a[i].mean() for i in stratified_bootstrap_indices(y, 400, seed=3)])
    jack = np.array([np.delete(b, i).mean() - np.delete(a, i).mean() for i in range(50)])
    assert (new["ci_low"], new["ci_high"]) == pytest.approx(bca_interval(b.mean() - a.mean(), diffs, jack))
    same = cluster_bootstrap_difference(_mean, y, [a], [a], n_resamples=100)
    assert same["difference"] == same["ci_low"] == same["ci_high"] == 0 and same["p_value"] == 1.0


def test_cluster_bootstrap_interval_and_nan_resamples(caplog):
    y, groups, sa, _ = _clustered_set(4)
    rows = cluster_bootstrap_indices(y, groups, 200, seed=5)
    values = np.array([sa[r].mean() for r in rows])
    got = cluster_bootstrap_interval(_mean, y, sa, groups=groups, n_resamples=200, seed=5, method="percentile")
    assert got == pytest.approx(tuple(np.percentile(values, [2.5, 97.5])))
    jack = np.array([sa[groups != g].mean() for g in np.unique(groups)])
    got = cluster_bootstrap_interval(_mean, y, sa, groups=groups, n_resamples=200, seed=5)
    assert got == pytest.approx(bca_interval(sa.mean(), values, jack))

    def first_small(_y, v):
        return np.nan if v[0] > 0.5 else v.mean()
    kept = [sa[r].mean() for r in rows if sa[r][0] <= 0.5]
    with caplog.at_level(logging.WARNING):
        got = cluster_bootstrap_interval(first_small, y, sa, groups=groups, n_resamples=200, seed=5,
                                         method="percentile")
    assert f"{200 - len(kept)} of 200" in caplog.text
    assert got == pytest.approx(tuple(np.percentile(kept, [2.5, 97.5])))
    with pytest.raises(ValueError, match="method"):
        cluster_bootstrap_interval(_mean, y, sa, groups=groups, method="basic")


def test_cluster_bootstrap_widens_the_interval_of_repeated_images():
    # 40 patients with 4 identical images each: the information is that of 40 values, not 160
    x = np.repeat(np.random.default_rng(6).normal(0, 1, 40), 4)
    groups, y = np.repeat(np.arange(40), 4), np.zeros(160, int)
    low_c, high_c = cluster_bootstrap_interval(_mean, y, x, groups=groups, n_resamples=2000, method="percentile")
    low_i, high_i = cluster_bootstrap_interval(_mean, y, x, n_resamples=2000, method="percentile")
    assert (high_c - low_c) / (high_i - low_i) == pytest.approx(2.0, rel=0.2)  # √4


# ---------------------------------------------------------------- sign-flip test

def _exact_sign_flip_p(patient_sums):
    t = abs(sum(patient_sums))
    hits = [abs(sum(s * d for s, d in zip(signs, patient_sums, strict=True))) >= t - 1e-12
            for signs in itertools.product((-1, 1), repeat=len(patient_sums))]
    return sum(hits) / len(hits)


def test_sign_flip_matches_full_enumeration_over_patients(monkeypatch):
    d = np.array([0.3, -0.1, 0.25, 0.2, -0.4, 0.15, 0.05, 0.1, 0.2, -0.05])
    groups = np.array([1, 1, 2, 3, 3, 4, 5, 6, 6, 6])
    sums = [0.2, 0.25, -0.2, 0.15, 0.05, 0.25]
    exact = _exact_sign_flip_p(sums)  # 12 of the 64 sign vectors: 0.1875
    monkeypatch.setattr(clustered, "_SIGN_CHUNK", 600)  # 100 rows per chunk: many chunks
    result = sign_flip_test(d, groups, n_permutations=100_000, seed=2)
    assert result["p_value"] == pytest.approx(exact, abs=0.006)  # Monte-Carlo sd 0.0016
    assert result["statistic"] == pytest.approx(0.7) and result["n_patients"] == 6
    assert result["method"] == "paired sign-flip (arm-swap) randomisation test over patients"
    image_level = _exact_sign_flip_p(d.tolist())  # flipping images separately is another test: 356/1024
    assert abs(image_level - exact) > 0.05
    assert sign_flip_test(d, None, 100_000, seed=2)["p_value"] == pytest.approx(image_level, abs=0.006)


def test_sign_flip_over_seeds_sums_contributions_and_is_never_zero():
    rng = np.random.default_rng(0)
    d, groups = rng.normal(0, 1, (3, 40)), np.repeat(np.arange(20), 2)
    by_seed = sign_flip_test(d, groups, 999, seed=4)
    summed = sign_flip_test(d.sum(0), groups, 999, seed=4)
    assert by_seed["p_value"] == summed["p_value"] and by_seed["statistic"] == pytest.approx(d.sum())
    one_sided = sign_flip_test(np.full(20, 0.01), np.arange(20), 999)  # P(|T*| = |T|) = 2 / 2^20
    assert one_sided["p_value"] == 1 / 1000
    nothing = sign_flip_test(np.zeros(12), None, 99)
    assert nothing["p_value"] == 1.0 and nothing["statistic"] == 0.0 and nothing["n_permutations"] == 99
    with pytest.raises(ValueError, match="shape"):
        sign_flip_test(np.zeros((2, 2, 2)))


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")  # sklearn, on purpose
def test_linear_contributions_sum_to_the_metric_difference():
    rng = np.random.default_rng(1)
    y = rng.choice([0, 2], 60, p=[0.8, 0.2])  # class 1 of k = 3 absent from y
    pa, pb = rng.integers(0, 3, 60), np.where(rng.random(60) < 0.6, y, rng.integers(0, 3, 60))
    bacc = linear_contributions("balanced_accuracy", y, pa, pb, None, 3)
    assert bacc.sum() == pytest.approx(balanced_accuracy_score(y, pb) - balanced_accuracy_score(y, pa), abs=1e-12)
    acc = linear_contributions("accuracy", y, pa, pb, None, 3)
    assert acc.sum() == pytest.approx(accuracy_score(y, pb) - accuracy_score(y, pa), abs=1e-12)
    recall = linear_contributions("minority_recall", y, pa, pb, 2, 3)
    expected = recall_score(y == 2, pb == 2) - recall_score(y == 2, pa == 2)
    assert recall.sum() == pytest.approx(expected, abs=1e-12) and (recall[y != 2] == 0).all()
    # binary: a positive image counts 1 / (2 · n_pos), a negative 1 / (2 · n_neg)
    yb = np.array([1, 1, 0, 0, 0, 0])
    got = linear_contributions("balanced_accuracy", yb, [0, 1, 0, 0, 1, 1], [1, 1, 0, 1, 0, 1], 1, 2)
    assert got.tolist() == pytest.approx([1 / 4, 0, 0, -1 / 8, 1 / 8, 0])
    with pytest.raises(ValueError, match="unknown metric"):
        linear_contributions("f1", yb, yb, yb, 1, 2)
    with pytest.raises(ValueError, match="positive"):
        linear_contributions("minority_recall", yb, yb, yb, None, 2)
    with pytest.raises(ValueError, match="class indices"):
        linear_contributions("accuracy", yb, yb, yb + 1, 1, 2)


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")  # sklearn, on purpose
def test_linear_weights_are_the_contribution_weights():
    rng = np.random.default_rng(3)
    y = rng.choice([0, 2], 60, p=[0.7, 0.3])  # class 1 of k = 3 absent
    pa, pb = rng.integers(0, 3, 60), np.where(rng.random(60) < 0.6, y, rng.integers(0, 3, 60))
    correct = [(pa == y).astype(float), (pb == y).astype(float)]
    for metric, positive, score in (("balanced_accuracy", None, balanced_accuracy_score),
                                    ("accuracy", None, accuracy_score),
                                    ("minority_recall", 2, lambda t, p: recall_score(t == 2, p == 2))):
        w = linear_weights(metric, y, positive, 3)
        assert w.shape == (60,) and (w >= 0).all() and w.sum() == pytest.approx(1.0, abs=1e-12), metric
        assert np.array_equal(linear_contributions(metric, y, pa, pb, positive, 3), w * (correct[1] - correct[0]))
        for pred, c in zip((pa, pb), correct, strict=True):
            assert np.sum(w * c) == pytest.approx(score(y, pred), abs=1e-12), metric
    yb = np.array([1, 1, 0, 0, 0, 0])
    assert linear_weights("balanced_accuracy", yb, 1, 2).tolist() == pytest.approx([1 / 4] * 2 + [1 / 8] * 4)
    assert linear_weights("minority_recall", yb, 1, 2).tolist() == [0.5, 0.5, 0, 0, 0, 0]
    with pytest.raises(ValueError, match="unknown metric"):
        linear_weights("f1", yb, 1, 2)
    with pytest.raises(ValueError, match="positive"):
        linear_weights("minority_recall", yb, 3, 4)
    with pytest.raises(ValueError, match="class indices"):
        linear_weights("accuracy", yb + 1, 1, 2)


# ---------------------------------------------------------------- sign-flip interval (the test inverted)

def _paired_calls(rng, n_patients: int, advantage: float = 0.0, continuous: bool = False):
    """``(differences (N,), weights (N,), groups (N,))``: balanced-accuracy contributions of two arms on 1-3 images
    per patient (some mixed), or, ``continuous``, normal contributions with random positive weights."""
    sizes = rng.integers(1, 4, n_patients)
    groups = np.repeat(np.arange(n_patients), sizes)
    n = len(groups)
    if continuous:
        w = rng.random(n) + 0.1
        w /= w.sum()
        return w * (advantage + rng.normal(0, 1, n) + rng.normal(0, 1, n_patients)[groups]), w, groups
    y = (rng.random(n) < 0.25).astype(int)
    y[:2] = [0, 1]
    p = 0.65 + rng.normal(0, 0.1, n_patients)[groups]
    pa = np.where(rng.random(n) < p, y, 1 - y)
    pb = np.where(rng.random(n) < p + advantage, y, 1 - y)
    return (linear_contributions("balanced_accuracy", y, pa, pb, 1, 2), linear_weights("balanced_accuracy", y, 1, 2),
            groups)


def _closed_form_interval(d, w, groups, n_permutations, seed, confidence):
    """The inversion's ends solved exactly: sign vector r is extreme at δ on [min(δ1, δ2), max(δ1, δ2)], the roots
    δ1 = (T - a_r)/(U - b_r), δ2 = (T + a_r)/(U + b_r) of (a_r - δ b_r)² = (T - δ U)²; the acceptance region
    {p > α} is where at least m of these intervals hold δ, m the least count with (1 + m)/(1 + R) > α."""
    codes, g, _ = clustered._patients(groups, len(d))
    sums, wsums = np.bincount(codes, weights=d, minlength=g), np.bincount(codes, weights=w, minlength=g)
    a, b = clustered._sign_projections([sums, wsums], n_permutations, seed)
    t, u = d.sum(), w.sum()
    with np.errstate(divide="ignore"):
        roots = np.stack([(t - a) / (u - b), (t + a) / (u + b)])
    m = next(m for m in range(n_permutations + 1) if (1 + m) / (1 + n_permutations) > 1 - confidence + 1e-12)
    return np.sort(roots.min(0))[m - 1], np.sort(roots.max(0))[::-1][m - 1]


def test_sign_flip_interval_against_the_closed_form_ends():
    rng = np.random.default_rng(11)
    for case in range(40):
        d, w, groups = _paired_calls(rng, 40, advantage=0.1 * (case % 4), continuous=case % 2 == 1)
        low, high = sign_flip_interval(d, w, groups, n_permutations=499, seed=case)
        exact_low, exact_high = _closed_form_interval(d, w, groups, 499, case, 0.95)
        assert exact_low - 1e-6 <= low <= exact_low + 1e-12 and exact_high - 1e-12 <= high <= exact_high + 1e-6
        assert low < d.sum() < high


def test_sign_flip_interval_inverts_the_test():
    """0 lies outside the interval iff the sign-flip test (same seed and R) has p ≤ α; every δ inside is accepted by
    the test of the shifted contributions, every δ outside rejected. (S, N) over seeds: shift every seed.

    With 0/1 calls an end of the acceptance region often falls exactly on 0 (a sign vector with |T*| = |T|, counted
    as extreme): 0 is then accepted, and the end, rounded outward, lies within 1e-6 below 0 (or above)."""
    rng = np.random.default_rng(12)
    on_the_boundary, disagree = 0, []
    for case in range(300):
        d, w, groups = _paired_calls(rng, int(rng.integers(15, 60)), advantage=float(rng.uniform(0, 0.25)),
                                     continuous=case % 3 == 0)
        if case % 5 == 0:  # three seeds on the same images
            d = np.stack([d, rng.permutation(d), d * rng.choice([-1, 1], len(d))])
        confidence, r = (0.95, 199) if case % 2 else (0.9, 99)  # α (1 + R) = 10: p = 0.1 exactly is attainable
        low, high = sign_flip_interval(d, w, groups, r, seed=case, confidence=confidence)
        p = sign_flip_test(d, groups, r, seed=case)["p_value"]
        on_the_boundary += min(abs(low), abs(high)) < 1e-6
        if (not low <= 0 <= high) != (p <= 1 - confidence + 1e-12):
            disagree.append(case)
        shifts = np.array([low - 1e-6, low + 2e-6, 0.5 * (low + high), high - 2e-6, high + 1e-6])
        shifted = [sign_flip_test(d - delta * w, groups, r, seed=case)["p_value"] > 1 - confidence + 1e-12
                   for delta in shifts]
        assert shifted == [False, True, True, True, False], (case, low, high)
    assert disagree == [] and on_the_boundary > 0, (disagree, on_the_boundary)


def test_sign_flip_p_is_monotone_on_each_side_of_the_estimate():
    rng = np.random.default_rng(13)
    for continuous in (False, True):
        d, w, groups = _paired_calls(rng, 30, advantage=0.1, continuous=continuous)
        low, high = sign_flip_interval(d, w, groups, 999, seed=1)
        estimate = d.sum()
        grid = np.concatenate([np.linspace(estimate - 2.1 * (estimate - low), estimate, 81),
                               np.linspace(estimate, estimate + 2.1 * (high - estimate), 81)[1:]])
        p = np.array([sign_flip_test(d - delta * w, groups, 999, seed=1)["p_value"] for delta in grid])
        assert np.all(np.diff(p[:81]) >= 0) and np.all(np.diff(p[80:]) <= 0) and p[80] == 1.0
        assert p[0] <= 0.05 and p[-1] <= 0.05
        assert np.array_equal(p > 0.05 + 1e-12, (grid >= low) & (grid <= high))


def test_sign_flip_interval_without_groups_equals_singletons_and_is_order_invariant():
    rng = np.random.default_rng(14)
    d, w, groups = _paired_calls(rng, 50, advantage=0.1)
    plain = sign_flip_interval(d, w, None, 999, seed=3)
    assert sign_flip_interval(d, w, [f"id{i}" for i in range(len(d))], 999, seed=3) == plain
    clustered_ci = sign_flip_interval(d, w, groups, 999, seed=3)
    assert clustered_ci != plain
    # images reordered within patients, or moved later, keep the patients' order of first appearance: same signs
    first = np.unique(groups, return_index=True)[1]
    rest = np.setdiff1d(np.arange(len(d)), first)
    order = np.concatenate([first, rng.permutation(rest)])
    assert sign_flip_interval(d[order], w[order], groups[order], 999, seed=3) == pytest.approx(clustered_ci, abs=1e-9)
    # any order: another draw of sign vectors, the same interval up to Monte-Carlo error
    shuffled = rng.permutation(len(d))
    ends = np.array([sign_flip_interval(d, w, groups, 20_000, seed=4),
                     sign_flip_interval(d[shuffled], w[shuffled], groups[shuffled], 20_000, seed=4)])
    assert ends[0] == pytest.approx(ends[1], abs=0.01)


def test_sign_flip_interval_over_seeds_is_the_interval_of_the_seed_mean():
    rng = np.random.default_rng(15)
    d, w, groups = _paired_calls(rng, 40, advantage=0.1, continuous=True)
    seeds = np.stack([d, d + w * rng.normal(0, 1, len(d)), d - w * rng.normal(0, 1, len(d))])
    by_seed = sign_flip_interval(seeds, w, groups, 999, seed=2)
    assert by_seed == pytest.approx(sign_flip_interval(seeds.mean(0), w, groups, 999, seed=2), abs=2e-6)
    assert by_seed[0] < seeds.sum(1).mean() < by_seed[1]


def test_sign_flip_interval_narrows_as_patients_are_added():
    rng = np.random.default_rng(16)
    d, w, groups = _paired_calls(rng, 40, advantage=0.1)
    low, high = sign_flip_interval(d, w, groups, 1999, seed=5)
    tiled = np.tile(d, 4) / 4, np.tile(w, 4) / 4, np.concatenate([groups + 1000 * i for i in range(4)])
    low4, high4 = sign_flip_interval(*tiled, n_permutations=1999, seed=5)
    assert low4 < d.sum() < high4 and (high4 - low4) / (high - low) == pytest.approx(0.5, abs=0.08)  # 1 / √4


def test_sign_flip_interval_unbounded_and_bad_input(caplog):
    d, w = np.array([0.1, -0.05, 0.2, 0.15]), np.full(4, 0.25)
    with caplog.at_level(logging.WARNING, logger="medsynth.stats.clustered"):
        assert sign_flip_interval(d, w, None, 999) == (-np.inf, np.inf)  # 4 patients: p ≥ 2/16
    assert "unbounded" in caplog.text
    rng = np.random.default_rng(17)
    d, w, groups = _paired_calls(rng, 40)
    assert sign_flip_interval(d, w, groups, n_permutations=9) == (-np.inf, np.inf)  # p ≥ 1/10
    same = sign_flip_interval(np.zeros(len(w)), w, groups, 999)  # identical arms: only δ = 0 is accepted
    assert same[0] <= 0 <= same[1] and same[1] - same[0] < 2e-6
    with pytest.raises(ValueError, match="sum to 1"):
        sign_flip_interval(d, w * 2, groups)
    with pytest.raises(ValueError, match=">= 0"):
        sign_flip_interval(d, np.where(np.arange(len(w)) == 0, -w, w * 1.0) / np.sum(np.abs(w)), groups)
    with pytest.raises(ValueError, match="confidence"):
        sign_flip_interval(d, w, groups, confidence=1.0)
    with pytest.raises(ValueError):
        sign_flip_interval(d[:-1], w, groups)


# ---------------------------------------------------------------- Obuchowski

def _psi(x, z):
    return Fraction(1) if x > z else Fraction(1, 2) if x == z else Fraction(0)


def _obuchowski_reference(y, scores, groups):
    """θ, the centred cluster sums (V10_i - m_i θ, V01_i - n_i θ) and M, N, in exact fractions, loop by loop."""
    scores = [Fraction(float(s)) for s in scores]
    pos = [(g, s) for g, s, t in zip(groups, scores, y, strict=True) if t == 1]
    neg = [(g, s) for g, s, t in zip(groups, scores, y, strict=True) if t == 0]
    m, n = len(pos), len(neg)
    theta = sum(_psi(x, z) for _, x in pos for _, z in neg) / (m * n)
    ids = list(dict.fromkeys(groups))
    d10 = {i: Fraction(0) for i in ids}
    d01 = {i: Fraction(0) for i in ids}
    for g, x in pos:
        d10[g] += sum(_psi(x, z) for _, z in neg) / n - theta
    for g, z in neg:
        d01[g] += sum(_psi(x, z) for _, x in pos) / m - theta
    return theta, [d10[i] for i in ids], [d01[i] for i in ids], m, n


def _variance_reference(d10, d01, m, n):
    i = len(d10)
    s10 = Fraction(i, (i - 1) * m) * sum(d * d for d in d10)
    s01 = Fraction(i, (i - 1) * n) * sum(d * d for d in d01)
    s11 = Fraction(i, i - 1) * sum(a * b for a, b in zip(d10, d01, strict=True))
    return s10 / m + s01 / n + 2 * s11 / (m * n)


HAND_Y = [1, 0, 1, 0, 0, 0, 1]
HAND_SCORES = [0.9, 0.3, 0.6, 0.6, 0.2, 0.7, 0.4]
HAND_GROUPS = ["P1", "P1", "P2", "P2", "P3", "P3", "P4"]


def test_obuchowski_hand_case():
    # positives 0.9 (P1), 0.6 (P2), 0.4 (P4); negatives 0.3 (P1), 0.6 (P2), 0.2, 0.7 (P3). θ = 8.5/12 = 17/24.
    # V10: 1, 5/8, 1/2; V01: 1, 1/2, 1, 1/3. Centred cluster sums (× 24): V10 7, -2, 0, -5; V01 7, -5, -2, 0.
    # S10 = 4/9 · 78/576, S01 = 4/12 · 78/576, S11 = 4/3 · 59/576 -> Var = 13/648 + 13/1152 + 59/2592 = 187/3456
    auc, var = obuchowski_auc_variance(np.array(HAND_Y), np.array(HAND_SCORES), HAND_GROUPS)
    theta, d10, d01, m, n = _obuchowski_reference(HAND_Y, HAND_SCORES, HAND_GROUPS)
    assert theta == Fraction(17, 24) and _variance_reference(d10, d01, m, n) == Fraction(187, 3456)
    assert auc == pytest.approx(17 / 24, abs=1e-15) and var == pytest.approx(187 / 3456, rel=1e-12)


def test_obuchowski_against_the_exact_reference_and_sklearn():
    y, groups, sa, sb = _clustered_set(1, n_patients=12)
    auc, var = obuchowski_auc_variance(y, sa, groups)
    theta, d10, d01, m, n = _obuchowski_reference(y, sa, groups)
    assert auc == pytest.approx(float(theta), abs=1e-14) and auc == pytest.approx(roc_auc_score(y, sa))
    assert var == pytest.approx(float(_variance_reference(d10, d01, m, n)), rel=1e-10)
    result = obuchowski_test(y, sa, sb, groups)
    theta_b, b10, b01, _, _ = _obuchowski_reference(y, sb, groups)
    var_diff = _variance_reference([b - a for a, b in zip(d10, b10, strict=True)],
                                   [b - a for a, b in zip(d01, b01, strict=True)], m, n)
    diff = float(theta_b - theta)
    assert result["difference"] == pytest.approx(diff, abs=1e-14)
    assert result["z"] == pytest.approx(diff / math.sqrt(var_diff), rel=1e-9)
    assert result["p_value"] == pytest.approx(math.erfc(abs(diff) / math.sqrt(2 * var_diff)), rel=1e-9)
    assert result["ci_low"] == pytest.approx(diff - Z975 * math.sqrt(var_diff), rel=1e-9)
    assert set(result) == set(delong_test(y, sa, sb)) | {"method"}
    same = obuchowski_test(y, sa, sa, groups)
    assert same["z"] == 0 and same["p_value"] == 1.0 and same["ci_low"] == same["ci_high"] == 0


def _delong_components(y, s):
    pos, neg = s[y == 1], s[y == 0]
    v10 = np.array([np.mean([float(_psi(x, z)) for z in neg]) for x in pos])
    v01 = np.array([np.mean([float(_psi(x, z)) for x in pos]) for z in neg])
    return v10, v01


def test_obuchowski_with_one_image_per_patient_is_a_rescaled_delong():
    rng = np.random.default_rng(3)
    # M = N = 12: Var_O = I(M-1)/((I-1)M) · Var_DeLong = 24·11/(23·12) · Var_DeLong = 22/23 · Var_DeLong
    y = np.r_[np.zeros(12, int), np.ones(12, int)]
    s = np.round(y + rng.normal(0, 1, 24), 1)
    _, var_d = delong_auc_variance(y, s)
    _, var_o = obuchowski_auc_variance(y, s, np.arange(24))
    assert var_o == pytest.approx(22 / 23 * var_d, rel=1e-12)
    # M = 5, N = 15, I = 20: each term its own factor, I/(I-1) · (M-1)/M and I/(I-1) · (N-1)/N
    y = np.r_[np.zeros(15, int), np.ones(5, int)]
    s = np.round(y + rng.normal(0, 1, 20), 1)
    v10, v01 = _delong_components(y, s)
    expected = 20 / 19 * (4 / 5 * np.var(v10, ddof=1) / 5 + 14 / 15 * np.var(v01, ddof=1) / 15)
    assert obuchowski_auc_variance(y, s, [f"p{i}" for i in range(20)])[1] == pytest.approx(expected, rel=1e-12)


def test_obuchowski_variance_is_undefined_with_one_positive_patient():
    y, s = np.array([1, 1, 0, 0, 0]), np.array([0.9, 0.8, 0.1, 0.5, 0.3])
    auc, var = obuchowski_auc_variance(y, s, ["a", "a", "b", "c", "c"])
    assert auc == 1.0 and np.isnan(var)
    assert np.isnan(obuchowski_test(y, s, s[::-1], ["a", "a", "b", "c", "c"])["p_value"])


def test_auc_interval_is_on_the_logit_scale():
    result = auc_interval(np.array(HAND_Y), np.array(HAND_SCORES), HAND_GROUPS)
    theta, se = 17 / 24, math.sqrt(187 / 3456)
    half = Z975 * se / (theta * (1 - theta))
    centre = math.log(theta / (1 - theta))
    expected = (1 / (1 + math.exp(-(centre - half))), 1 / (1 + math.exp(-(centre + half))))
    assert (result["ci_low"], result["ci_high"]) == pytest.approx(expected, rel=1e-9)
    assert result["value"] == pytest.approx(theta) and result["method"] == "Obuchowski clustered, logit scale"
    assert theta + Z975 * se > 1 and result["ci_high"] < 1  # the Wald interval would cross 1
    y, s = np.array([0, 0, 0, 1, 1, 1, 0, 1]), np.array([0.1, 0.5, 0.3, 0.4, 0.9, 0.7, 0.2, 0.6])
    plain = auc_interval(y, s)
    assert plain["method"] == "DeLong, logit scale"
    assert (plain["value"], plain["ci_low"], plain["ci_high"]) == pytest.approx(delong_interval(y, s))
    assert auc_interval(y, s, list("abcdefgh")) == plain
    perfect = auc_interval(y, y.astype(float), [0, 0, 1, 1, 2, 2, 3, 3])
    # perfect separation: the logit is infinite, so the boundary-safe score interval is used
    assert perfect["value"] == 1.0 and perfect["ci_high"] == 1.0 and 0.0 < perfect["ci_low"] < 1.0
    assert perfect["method"].startswith("Newcombe")


def test_auc_difference_test_dispatches_on_the_groups():
    y, groups, sa, sb = _clustered_set(5)
    assert auc_difference_test(y, sa, sb, groups) == obuchowski_test(y, sa, sb, groups)
    plain = auc_difference_test(y, sa, sb)
    assert plain == delong_test(y, sa, sb) | {"method": "DeLong"}
    assert auc_difference_test(y, sa, sb, np.arange(len(y))) == plain


# ---------------------------------------------------------------- McNemar, Holm

def test_clustered_mcnemar_reduces_to_exact_mcnemar_without_clusters():
    a = np.array([1] * 50 + [1] * 10 + [0] * 2 + [0] * 38, bool)
    b = np.array([1] * 50 + [0] * 10 + [1] * 2 + [0] * 38, bool)
    exact = mcnemar_test(a, b)
    for groups in (None, [f"x{i}" for i in range(100)]):
        result = clustered_mcnemar(a, b, groups)
        assert {k: result[k] for k in exact} == exact and result["n_patients"] == 100


def test_clustered_mcnemar_durkalski_by_hand():
    # patients (b_i, c_i): P1 (2, 0), P2 (1, 1), P3 (0, 1), P4 (3, 0), P5 (0, 0)
    # X² = (2 + 0 - 1 + 3)² / (4 + 0 + 1 + 9) = 16/14; χ²₁ tail = erfc(√(X²/2))
    a = np.array([1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0], bool)
    b = np.array([0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 0], bool)
    groups = ["P1", "P1", "P2", "P2", "P3", "P5", "P4", "P4", "P4", "P5", "P5"]
    result = clustered_mcnemar(a, b, groups)
    assert (result["b"], result["c"], result["n"], result["n_patients"]) == (6, 2, 11, 5)
    assert result["p_value"] == pytest.approx(math.erfc(math.sqrt(8 / 7 / 2)), rel=1e-10)
    assert result["method"] == "clustered McNemar (Durkalski et al. 2003)"
    tied = clustered_mcnemar(np.array([1, 0, 1, 1], bool), np.array([0, 1, 1, 1], bool), ["p", "p", "q", "q"])
    assert tied["p_value"] == 1.0 and (tied["b"], tied["c"]) == (1, 1)


def test_holm_textbook_example():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04 -> running max 0.02, 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02], abs=1e-15)
    got = holm(np.array([0.2, np.nan, 0.5, 0.01]))
    assert np.isnan(got[1]) and got[[0, 2, 3]] == pytest.approx([0.4, 0.5, 0.03])
    assert holm([0.5, 0.6]).tolist() == [1.0, 1.0] and holm([]).shape == (0,)
