"""KID: the unbiased MMD² with the cubic kernel, checked by hand and by its expectation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from medsynth.metrics.kid import kernel_inception_distance, kid_kernels, mmd2_from_kernels, mmd2_unbiased


def _hand_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """The textbook estimator, term by term."""
    m, d = len(x), x.shape[1]
    k = lambda a, b: (float(np.dot(a, b)) / d + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_small_hand_case():
    x = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = np.array([[2.0, 0.0], [0.0, 0.0], [1.0, 2.0]])
    expected = _hand_mmd2(x, y)
    # by hand: xx pairs k = 1, 3.375, 3.375 -> 7.75 / 3; yy: 1, 8, 1 -> 10 / 3; the 9 xy terms sum to 47
    assert expected == pytest.approx(7.75 / 3 + 10 / 3 - 2 * 47 / 9)
    assert mmd2_unbiased(x, y) == pytest.approx(expected, rel=1e-12)
    # subsets of size m = n are permutations of the whole sets: every subset gives the same value
    mean, std, m = kernel_inception_distance(x, y, num_subsets=7, max_subset_size=1000)
    assert m == 3 and mean == pytest.approx(expected, rel=1e-12) and std == pytest.approx(0.0, abs=1e-12)


def test_one_set_against_itself_is_near_zero_as_theory_says():
    x = np.random.default_rng(0).normal(size=(400, 16))
    n, k = len(x), (x @ x.T / 16 + 1) ** 3
    # subsets drawn independently from one empirical set: E[KID] = -2 (mean k(x,x) - mean k(x,x')) / (n - 1)
    expected = -2 * (np.mean(np.diag(k)) - np.mean(k)) / (n - 1)
    mean, std, m = kernel_inception_distance(x, x, num_subsets=200, max_subset_size=100, seed=1)
    assert m == 100
    assert mean == pytest.approx(expected, abs=4 * std / np.sqrt(200))
    shifted, _, _ = kernel_inception_distance(x, x + 0.5, num_subsets=20, max_subset_size=100)
    assert abs(mean) < 0.05 * shifted


def test_different_distributions_score_higher():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(200, 8)), rng.normal(size=(200, 8))
    same, _, _ = kernel_inception_distance(a, b, num_subsets=20)
    far, _, _ = kernel_inception_distance(a, b * 2 + 1, num_subsets=20)
    assert far > 10 * abs(same)


def test_precomputed_kernels_match_and_ignore_repeated_images():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    kernels = kid_kernels(x, y)
    idx = np.arange(6)
    assert mmd2_from_kernels(kernels, idx, idx) == pytest.approx(mmd2_unbiased(x, y), rel=1e-12)
    # a resample repeating image 0: pairs of its two copies leave the within-set mean
    rx, ry = np.array([0, 0, 1, 2]), np.array([3, 4, 5, 5])
    kxx = np.array([[(x[a] @ x[b] / 3 + 1) ** 3 for b in rx] for a in rx])
    kyy = np.array([[(y[a] @ y[b] / 3 + 1) ** 3 for b in ry] for a in ry])
    kxy = np.array([[(x[a] @ y[b] / 3 + 1) ** 3 for b in ry] for a in rx])
    keep_x, keep_y = rx[:, None] != rx[None, :], ry[:, None] != ry[None, :]
    expected = kxx[keep_x].mean() + kyy[keep_y].mean() - 2 * kxy.mean()
    assert mmd2_from_kernels(kernels, rx, ry) == pytest.approx(expected, rel=1e-12)


def test_too_few_samples_is_an_error():
    with pytest.raises(ValueError, match="at least 2"):
        kernel_inception_distance(np.zeros((1, 3)), np.zeros((5, 3)))


def _reference_full_set_kid(x: np.ndarray, y: np.ndarray) -> float:
    """The documented definition, independently: unbiased MMD² of the full sets (sizes may differ)."""
    k = lambda a, b: (a @ b.T / a.shape[1] + 1.0) ** 3  # noqa: E731
    off_x, off_y = ~np.eye(len(x), dtype=bool), ~np.eye(len(y), dtype=bool)
    return float(k(x, x)[off_x].mean() + k(y, y)[off_y].mean() - 2 * k(x, y).mean())


# (n_real, n_synthetic, dim, seed, kid_subsets, kid_max_subset_size). The last case put the old value
# (the mean over 10 random subsets of 50) at 0.06724, outside its own interval [-0.00288, 0.05218].
KID_CASES = [(40, 40, 16, 0, 100, 1000), (100, 250, 16, 1, 100, 1000), (300, 300, 64, 2, 100, 1000),
             (300, 500, 16, 3, 100, 1000), (600, 200, 32, 4, 100, 1000), (250, 180, 16, 5, 10, 1000),
             (300, 300, 16, 1, 10, 50)]


@pytest.mark.parametrize(("n_real", "n_fake", "dim", "seed", "subsets", "max_subset"), KID_CASES)
def test_kid_value_is_the_full_set_statistic_and_lies_in_its_interval(n_real, n_fake, dim, seed, subsets,
                                                                      max_subset):
    from medsynth.metrics.quality import MetricSettings, kid_entry

    rng = np.random.default_rng(seed)
    real, fake = rng.normal(size=(n_real, dim)), rng.normal(size=(n_fake, dim)) + 0.1
    settings = MetricSettings(kid_subsets=subsets, kid_max_subset_size=max_subset)
    kid = kid_entry(real, fake, {}, "toy", settings)
    assert kid["value"] == pytest.approx(_reference_full_set_kid(real, fake), rel=1e-10, abs=1e-12)
    low, high = kid["interval"]
    assert low <= kid["value"] <= high
    # clean-fid's subset average rides along, unchanged
    assert kid["subset_mean"] == kernel_inception_distance(real, fake, subsets, max_subset, settings.seed)[0]


def test_subset_mean_equals_the_value_for_equal_sets_below_the_subset_size():
    from medsynth.metrics.quality import MetricSettings, kid_entry

    rng = np.random.default_rng(7)
    real, fake = rng.normal(size=(50, 8)), rng.normal(size=(50, 8)) * 1.2
    kid = kid_entry(real, fake, {}, "toy", MetricSettings(bootstrap=0, kid_subsets=5))
    assert kid["subset_mean"] == pytest.approx(kid["value"], rel=1e-10) and kid["interval"] is None


def test_blockwise_full_set_statistic_and_the_no_interval_path(monkeypatch):
    from medsynth.metrics import quality

    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(37, 5)), rng.normal(size=(23, 5)) + 0.3
    expected = _reference_full_set_kid(real, fake)
    assert mmd2_unbiased(real, fake, block=4) == pytest.approx(expected, rel=1e-12)
    assert mmd2_from_kernels(kid_kernels(real, fake), np.arange(37), np.arange(23)) == pytest.approx(expected)
    monkeypatch.setattr(quality, "KID_BOOTSTRAP_MAX", 30)
    kid = quality.kid_entry(real, fake, {}, "toy", quality.MetricSettings(kid_subsets=3))
    assert kid["interval"] is None and kid["value"] == pytest.approx(expected, rel=1e-12)
