"""Fréchet distance: equal to pytorch-fid's on the same statistics, exact on hand cases."""

from __future__ import annotations

import numpy as np
import pytest
from pytorch_fid.fid_score import calculate_frechet_distance

from medsynth.metrics.fid import feature_statistics, frechet_distance, frechet_distance_from_features


def _two_sets(n1: int, n2: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) / np.sqrt(d)  # correlated features, like a network's
    return rng.normal(size=(n1, d)) @ mix, 1.3 * rng.normal(size=(n2, d)) @ mix + 0.2


@pytest.mark.filterwarnings("ignore:The `disp` argument is deprecated")  # inside pytorch-fid
@pytest.mark.parametrize(("n1", "n2", "d"), [(300, 200, 32), (20, 30, 64), (12, 10, 256)],
                         ids=["full-rank", "rank-deficient", "n<<d"])
def test_equals_pytorch_fid_on_the_same_statistics(n1, n2, d):
    x, y = _two_sets(n1, n2, d)
    stats = (*feature_statistics(x), *feature_statistics(y))
    reference = calculate_frechet_distance(*stats)
    assert frechet_distance(*stats) == pytest.approx(reference, rel=1e-6)
    assert frechet_distance_from_features(x, y) == pytest.approx(reference, rel=1e-6)


def test_statistics_are_pytorch_fids():
    x, _ = _two_sets(50, 2, 8)
    mu, sigma = feature_statistics(x)
    np.testing.assert_array_equal(mu, np.mean(x, axis=0))
    np.testing.assert_array_equal(sigma, np.cov(x, rowvar=False))


def test_one_dimensional_hand_value():
    # N(0, 1) vs N(1, 4): (0 - 1)^2 + 1 + 4 - 2 * sqrt(1 * 4) = 2
    value = frechet_distance(np.array([0.0]), np.array([[1.0]]), np.array([1.0]), np.array([[4.0]]))
    assert value == pytest.approx(2.0)


def test_diagonal_hand_value():
    # diagonal covariances: sum over dimensions of (s1 - s2)^2 in standard deviations, plus the mean term
    mu1, mu2 = np.zeros(3), np.array([1.0, 2.0, 0.0])
    s1, s2 = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 1.0, 9.0])
    expected = 5.0 + (1 - 2) ** 2 + (2 - 1) ** 2 + 0.0
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected)


def test_identical_sets_are_zero_and_the_distance_is_symmetric():
    x, y = _two_sets(40, 25, 16)
    assert frechet_distance_from_features(x, x) == pytest.approx(0.0, abs=1e-9)
    forward, backward = frechet_distance_from_features(x, y), frechet_distance_from_features(y, x)
    assert forward == pytest.approx(backward, rel=1e-9)


def test_mismatched_or_too_small_inputs_are_refused():
    x, y = _two_sets(10, 10, 4)
    with pytest.raises(ValueError, match="do not match"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="dimensions differ"):
        frechet_distance_from_features(x, y[:, :3])
    with pytest.raises(ValueError, match="N >= 2"):
        frechet_distance_from_features(x[:1], y)
