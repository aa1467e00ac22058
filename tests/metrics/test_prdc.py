"""Precision/recall and density/coverage: hand cases and the theory of identical distributions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import pairwise_distances

from medsynth.metrics import prdc as prdc_module
from medsynth.metrics.prdc import improved_precision_recall, kth_neighbour_radii, prdc


def test_identical_sets_score_one():
    x = np.random.default_rng(0).normal(size=(300, 16))
    assert prdc(x, x.copy(), k=5) == pytest.approx({"precision": 1, "recall": 1, "density": 1, "coverage": 1})
    assert improved_precision_recall(x, x.copy(), k=3) == pytest.approx({"precision": 1, "recall": 1})


def test_one_dimensional_hand_case():
    real = np.array([[0.0], [1.0], [2.0], [3.0]])
    fake = np.array([[0.5], [10.0]])
    # k = 1: real radii are all 1; the two fake points are 9.5 apart, so each fake ball has radius 9.5
    assert improved_precision_recall(real, fake, k=1) == pytest.approx({"precision": 0.5, "recall": 1.0})
    # 0.5 lies strictly inside the balls of 0 and 1 (density 2 / (k M) = 1); balls of 0 and 1 hold a fake
    assert prdc(real, fake, k=1) == pytest.approx({"precision": 0.5, "recall": 1.0, "density": 1.0,
                                                   "coverage": 0.5})


def test_strict_and_inclusive_balls_differ_only_on_ties():
    real = np.array([[0.0], [1.0], [5.0], [6.0]])  # every real radius is 1 (k = 1)
    fake = np.array([[2.0], [7.0]])  # each lies exactly on a ball's surface: 2 on 1's, 7 on 6's
    assert improved_precision_recall(real, fake, k=1)["precision"] == 1.0  # d <= r: both fakes inside
    assert prdc(real, fake, k=1)["precision"] == 0.0  # d < r: neither


def test_two_samples_of_one_gaussian():
    """Naeem et al.: E[density] = 1 and E[coverage] = 1 - C(N-1, k) / C(N-1+M, k) (≈ 1 - 2^-k) for equal
    distributions, whatever the distribution. The coverage terms are near-Bernoulli(0.97) over 2000 real
    samples (sd ≈ 0.004); density's sum is correlated through hub samples (prdc 0.2 gives 1.026 here and
    1.056 on 10k × 1000-d), hence the wider band."""
    rng = np.random.default_rng(0)
    n, k = 2000, 5
    real, fake = rng.normal(size=(n, 64)), rng.normal(size=(n, 64))
    result = prdc(real, fake, k=k)
    expected_coverage = 1 - np.prod([(n - 1 - i) / (2 * n - 1 - i) for i in range(k)])
    assert expected_coverage == pytest.approx(0.9688, abs=1e-4)
    assert result["coverage"] == pytest.approx(expected_coverage, abs=0.015)
    assert result["density"] == pytest.approx(1.0, abs=0.1)
    assert 0.5 < result["precision"] < 0.95 and 0.5 < result["recall"] < 0.95  # P/R miss the equality


def test_chunked_computation_equals_the_full_matrices(monkeypatch):
    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=(40, 5)), rng.normal(size=(30, 5)) + 0.3
    monkeypatch.setattr(prdc_module, "CHUNK", 7)
    got = prdc(real, fake, k=3)
    # prdc 0.2's computation, on whole distance matrices
    r_real = np.sort(pairwise_distances(real), axis=1)[:, 3]
    r_fake = np.sort(pairwise_distances(fake), axis=1)[:, 3]
    d = pairwise_distances(real, fake)
    expected = {"precision": (d < r_real[:, None]).any(axis=0).mean(),
                "recall": (d < r_fake[None, :]).any(axis=1).mean(),
                "density": (d < r_real[:, None]).sum(axis=0).mean() / 3,
                "coverage": (d.min(axis=1) < r_real).mean()}
    assert got == pytest.approx(expected)
    np.testing.assert_allclose(kth_neighbour_radii(real, 3), r_real)


def test_k_must_leave_neighbours():
    with pytest.raises(ValueError, match="at least 6 samples"):
        prdc(np.zeros((5, 2)), np.ones((10, 2)), k=5)
