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


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size) - (size - 1) / 2
    g = np.exp(-x ** 2 / (2 * sigma ** 2))
    return g / g.sum()


def _blur(img: np.ndarray) -> np.ndarray:
    """Separable 11×11 Gaussian (σ 1.5), 'valid' (no padding): ``(H, W) -> (H-10, W-10)``."""
    g = _gaussian_window()
    rows = np.lib.stride_tricks.sliding_window_view(img, len(g), axis=1) @ g
    return np.lib.stride_tricks.sliding_window_view(rows, len(g), axis=0) @ g


def _ssim_cs_maps(x: np.ndarray, y: np.ndarray, data_range: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = _blur(x), _blur(y)
    vx, vy, cxy = _blur(x * x) - mx ** 2, _blur(y * y) - my ** 2, _blur(x * y) - mx * my
    cs = (2 * cxy + c2) / (vx + vy + c2)
    return (2 * mx * my + c1) / (mx ** 2 + my ** 2 + c1) * cs, cs


def _halve(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[0] // 2 * 2, img.shape[1] // 2 * 2
    return img[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))


def _ms_ssim_channel_averaged(x: np.ndarray, y: np.ndarray, weights) -> float:
    """The documented formula: at each scale the CS (last scale: SSIM) map is averaged over channels *and*
    pixels, clipped at 0, then Π_s term_s^{w_s}; 2×2 average pooling between scales."""
    terms = []
    for s in range(len(weights)):
        maps = [_ssim_cs_maps(xc, yc) for xc, yc in zip(x, y, strict=True)]
        terms.append(max(float(np.mean([m[0] if s == len(weights) - 1 else m[1] for m in maps])), 0.0))
        x, y = np.stack([_halve(c) for c in x]), np.stack([_halve(c) for c in y])
    return float(np.prod(np.asarray(terms) ** np.asarray(weights)))


def _ms_ssim_per_channel_then_mean(x: np.ndarray, y: np.ndarray, weights) -> float:
    """pytorch_msssim's / TensorFlow's order: MS-SSIM of each channel, then the mean over channels."""
    return float(np.mean([_ms_ssim_channel_averaged(xc[None], yc[None], weights) for xc, yc in zip(x, y, strict=True)]))


@pytest.mark.parametrize("size", [64, 128])
def test_grey_ms_ssim_equals_an_independent_implementation(size):
    rng = np.random.default_rng(5)
    a = rng.random((size, size))
    b = np.clip(0.8 * a + 0.2 * rng.random((size, size)) + 0.05, 0, 1)
    images = torch.from_numpy(np.stack([a, b])[:, None].astype(np.float32))
    weights = ms_ssim_weights(size, size)
    expected = _ms_ssim_channel_averaged(images[0].double().numpy(), images[1].double().numpy(), weights)
    assert 0.3 < expected < 0.99  # a value in the informative range
    np.testing.assert_allclose(pairwise_ms_ssim(images, np.array([[0, 1]])), [expected], rtol=0, atol=2e-5)
    # one channel: both channel orders are the same number
    assert _ms_ssim_per_channel_then_mean(images[0].double().numpy(), images[1].double().numpy(),
                                          weights) == pytest.approx(expected, rel=1e-12)


def test_rgb_ms_ssim_averages_channels_before_the_scale_product():
    rng = np.random.default_rng(6)
    a = rng.random((3, 64, 64))
    b = a.copy()
    b[0] = np.clip(0.9 * a[0] + 0.1 * rng.random((64, 64)), 0, 1)  # channel 0 alike
    b[1] = rng.random((64, 64))  # channel 1 unrelated
    b[2] = np.clip(0.5 * a[2] + 0.5 * rng.random((64, 64)), 0, 1)  # channel 2 in between
    images = torch.from_numpy(np.stack([a, b]).astype(np.float32))
    x, y = images[0].double().numpy(), images[1].double().numpy()
    weights = ms_ssim_weights(64, 64)
    averaged, per_channel = _ms_ssim_channel_averaged(x, y, weights), _ms_ssim_per_channel_then_mean(x, y, weights)
    assert abs(averaged - per_channel) > 1e-2  # the two conventions really differ here
    value = float(pairwise_ms_ssim(images, np.array([[0, 1]]))[0])
    assert value == pytest.approx(averaged, abs=2e-5)
    assert abs(value - per_channel) > 1e-2
