"""MS-SSIM diversity: scale choice, pair sampling, and the two ends of the scale."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.metrics import MultiScaleSSIMMetric

from medsynth.metrics.diversity import (
    STANDARD_WEIGHTS,
    mean_pairwise_ms_ssim,
    ms_ssim_weights,
    pairwise_ms_ssim,
    sample_pairs,
)


@pytest.mark.parametrize(("size", "scales"), [(256, 5), (176, 5), (128, 4), (64, 3), (32, 2), (16, 1)])
def test_scales_fit_the_image(size, scales):
    weights = ms_ssim_weights(size, size)
    assert len(weights) == scales and sum(weights) == pytest.approx(1.0)
    kept = np.asarray(STANDARD_WEIGHTS[:scales])
    np.testing.assert_allclose(weights, kept / kept.sum())


def test_too_small_images_are_refused():
    with pytest.raises(ValueError, match="smaller than the 11-pixel"):
        ms_ssim_weights(8, 64)


def test_pair_sampling():
    assert len(sample_pairs(10, 100)) == 45  # all pairs
    pairs = sample_pairs(1000, 300, seed=3)
    assert len(pairs) == 300 and len({tuple(p) for p in pairs}) == 300 and (pairs[:, 0] < pairs[:, 1]).all()
    np.testing.assert_array_equal(pairs, sample_pairs(1000, 300, seed=3))


def test_identical_images_score_one_and_noise_scores_low():
    rng = np.random.default_rng(0)
    one = torch.from_numpy(rng.random((1, 1, 64, 64), dtype=np.float32))
    collapsed, values = mean_pairwise_ms_ssim(one.repeat(6, 1, 1, 1))
    assert collapsed == pytest.approx(1.0, abs=1e-5) and len(values) == 15
    # independent uniform noise: the contrast-structure terms are ~0 at every scale
    noise, _ = mean_pairwise_ms_ssim(torch.from_numpy(rng.random((6, 1, 64, 64), dtype=np.float32)))
    assert noise < 0.2


def test_values_are_monais_ms_ssim():
    rng = np.random.default_rng(1)
    images = torch.from_numpy(rng.random((4, 3, 64, 64), dtype=np.float32))
    images[1] = 0.7 * images[0] + 0.3 * images[1]  # one similar pair
    pairs = np.array([[0, 1], [2, 3]])
    metric = MultiScaleSSIMMetric(spatial_dims=2, data_range=1.0, weights=ms_ssim_weights(64, 64),
                                  reduction="none")
    expected = metric(images[[0, 2]], images[[1, 3]]).reshape(-1).numpy()
    np.testing.assert_allclose(pairwise_ms_ssim(images, pairs), expected, rtol=1e-6)
    assert expected[0] > expected[1]
