"""The primary paired test holds its size on data shaped like the demo test split, with patients as clusters.

The skin demo's test split (850 images, seed 0, patient-grouped 70/15/15) has 127 images from 91 patients and
15 positives: 49 patients with one negative image, 28 with two negatives, 7 with one of each, 6 with one
positive, 1 with two positives (72 of the 127 images belong to the 36 two-image patients). Two exchangeable
classifiers: each image has a latent difficulty (a patient effect plus an image effect) and both classifiers'
correct/incorrect calls are drawn independently given it, with the same probability. Under this H0 the
sign-flip test over patients is exact, so its rejection rate at α = 0.05 must not exceed 0.05 beyond Monte-Carlo
error (binomial sd over 2000 data sets: 0.005); a rate far below would mean a uselessly conservative test.
"""

from __future__ import annotations

import numpy as np

from medsynth.stats.clustered import linear_contributions, sign_flip_test

# (images, positives) per patient, as the demo test split
LAYOUT = [(1, 0)] * 49 + [(2, 0)] * 28 + [(2, 1)] * 7 + [(1, 1)] * 6 + [(2, 2)]
N_SIMS, N_PERMUTATIONS, ALPHA = 2000, 999, 0.05


def _demo_shaped_layout() -> tuple[np.ndarray, np.ndarray]:
    """``(y (127,), groups (127,))``."""
    groups = np.repeat(np.arange(len(LAYOUT)), [size for size, _ in LAYOUT])
    y = np.concatenate([[1] * pos + [0] * (size - pos) for size, pos in LAYOUT])
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


def test_sign_flip_over_patients_holds_its_size():
    y, groups = _demo_shaped_layout()
    rng = np.random.default_rng(20240601)
    rejected = 0
    for sim in range(N_SIMS):
        pred_a, pred_b = _exchangeable_predictions(rng, y, groups)
        d = linear_contributions("balanced_accuracy", y, pred_a, pred_b, 1, 2)
        rejected += sign_flip_test(d, groups, N_PERMUTATIONS, seed=sim)["p_value"] <= ALPHA
    rate = rejected / N_SIMS
    assert 0.03 <= rate <= 0.06, rate
