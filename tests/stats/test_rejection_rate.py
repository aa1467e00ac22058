"""The primary paired test holds its size on data shaped like the demo test split, with patients as clusters.

The skin demo's test split (850 images, seed 0, patient-grouped 70/15/15) has 127 images from 91 patients and
15 positives: 49 patients with one negative image, 28 with two negatives, 7 with one of each, 6 with one
positive, 1 with two positives (72 of the 127 images belong to the 36 two-image patients). Two exchangeable
classifiers: each image has a latent difficulty (a patient effect plus an image effect) and both classifiers'
correct/incorrect calls are drawn independently given it, with the same probability. Under this H0 the
sign-flip test over patients is exact, so its rejection rate at α = 0.05 must not exceed 0.05 beyond Monte-Carlo
error (binomial sd over 2000 data sets: 0.005); a rate far below would mean a uselessly conservative test.

Under an alternative (arm B's logit raised by β_y plus a patient effect: the advantage differs between patients) the
95 % interval that inverts the sign-flip test must cover the population Δ balanced accuracy (exact by quadrature:
the metric is linear in the calls) in about 95 % of data sets; the cluster bootstrap BCa interval covered about 90 %
in ``benchmarks/rejection_rate.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from medsynth.stats.clustered import linear_contributions, linear_weights, sign_flip_interval, sign_flip_test

# (images, positives) per patient, as the demo test split (split algorithm 1)
LAYOUT = [(1, 0)] * 49 + [(2, 0)] * 28 + [(2, 1)] * 7 + [(1, 1)] * 6 + [(2, 2)]
# the same test split under split algorithm 2 (patients balanced by images per patient): 127 images from 61 patients
LAYOUT_V2 = ([(1, 0)] * 22 + [(1, 1)] * 2 + [(2, 0)] * 13 + [(2, 1)] * 2 + [(2, 2)] + [(3, 0)] * 9 + [(3, 1)] * 3
             + [(3, 2)] + [(4, 0)] * 5 + [(4, 1)] * 2 + [(4, 2)])
N_SIMS, N_PERMUTATIONS, ALPHA = 2000, 999, 0.05
ADVANTAGE, ADVANTAGE_PATIENT_SD = (0.25, 1.0), 0.5  # arm B's logit + β_y (negatives, positives) + N(0, 0.5²)


def _demo_shaped_layout(layout: list[tuple[int, int]] = LAYOUT) -> tuple[np.ndarray, np.ndarray]:
    """``(y (127,), groups (127,))``."""
    groups = np.repeat(np.arange(len(layout)), [size for size, _ in layout])
    y = np.concatenate([[1] * pos + [0] * (size - pos) for size, pos in layout])
    return y, groups


def _exchangeable_predictions(rng: np.random.Generator, y: np.ndarray, groups: np.ndarray):
    """Two arms' predicted labels, drawn independently with the same per-image probability of being right.

    logit P(correct) = μ_y + u_patient + e_image, μ = 0 for positives (recall about 0.5) and 1 for negatives,
    u, e ~ N(0, 1).
    """
    logit = np.where(y == 1, 0.0, 1.0) + rng.normal(0, 1, groups.max() + 1)[groups] + rng.normal(0, 1, len(y))
    p_correct = 1.0 / (1.0 + np.exp(-logit))
    right_a, right_b = rng.random(len(y)) < p_correct, rng.random(len(y)) < p_correct
    return np.where(right_a, y, 1 - y), np.where(right_b, y, 1 - y)


def test_layout_matches_the_demo_split():
    y, groups = _demo_shaped_layout()
    sizes = np.bincount(groups)
    assert (len(y), len(sizes), y.sum(), (sizes[groups] >= 2).sum()) == (127, 91, 15, 72)
    y, groups = _demo_shaped_layout(LAYOUT_V2)
    sizes = np.bincount(groups)
    assert (len(y), len(sizes), y.sum(), len(np.unique(groups[y == 1]))) == (127, 61, 15, 12)


@pytest.mark.parametrize("layout", [LAYOUT, LAYOUT_V2], ids=["split1", "split2"])
def test_sign_flip_over_patients_holds_its_size(layout):
    y, groups = _demo_shaped_layout(layout)
    rng = np.random.default_rng(20240601)
    rejected = 0
    for sim in range(N_SIMS):
        pred_a, pred_b = _exchangeable_predictions(rng, y, groups)
        d = linear_contributions("balanced_accuracy", y, pred_a, pred_b, 1, 2)
        rejected += sign_flip_test(d, groups, N_PERMUTATIONS, seed=sim)["p_value"] <= ALPHA
    rate = rejected / N_SIMS
    assert 0.03 <= rate <= 0.06, rate


def _mean_expit(mean: float, var: float) -> float:
    """E expit(X), X ~ N(mean, var), by Gauss–Hermite quadrature."""
    x, weight = np.polynomial.hermite_e.hermegauss(120)
    return float(np.sum(weight * expit(mean + np.sqrt(var) * x)) / np.sqrt(2 * np.pi))


def test_sign_flip_interval_covers_under_an_alternative():
    """logit P(correct) = μ_y + u + e for arm A, + β_y + v_patient for arm B (v ~ N(0, 0.5²)); the population Δ
    balanced accuracy is ½ Σ_y (E expit(N(μ_y + β_y, 2.25)) - E expit(N(μ_y, 2))) = 0.1026. Coverage over 2000 data
    sets, binomial sd 0.005 at 0.95: at least 0.93 (not too narrow), at most 0.975 (not uselessly wide)."""
    y, groups = _demo_shaped_layout()
    w = linear_weights("balanced_accuracy", y, 1, 2)
    mu = np.where(y == 1, 0.0, 1.0)
    target = 0.5 * sum(_mean_expit(m + b, 2.0 + ADVANTAGE_PATIENT_SD ** 2) - _mean_expit(m, 2.0)
                       for m, b in zip((1.0, 0.0), ADVANTAGE, strict=True))
    assert target == pytest.approx(0.1026, abs=1e-4)
    rng = np.random.default_rng(20240602)
    covered = 0
    for sim in range(N_SIMS):
        base = mu + rng.normal(0, 1, groups.max() + 1)[groups] + rng.normal(0, 1, len(y))
        better = base + np.where(y == 1, ADVANTAGE[1], ADVANTAGE[0]) \
            + rng.normal(0, ADVANTAGE_PATIENT_SD, groups.max() + 1)[groups]
        pred_a = np.where(rng.random(len(y)) < expit(base), y, 1 - y)
        pred_b = np.where(rng.random(len(y)) < expit(better), y, 1 - y)
        d = linear_contributions("balanced_accuracy", y, pred_a, pred_b, 1, 2)
        low, high = sign_flip_interval(d, w, groups, n_permutations=499, seed=sim, confidence=1 - ALPHA)
        covered += low <= target <= high
    coverage = covered / N_SIMS
    assert 0.93 <= coverage <= 0.975, coverage
