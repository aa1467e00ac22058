"""Diversity: mean pairwise MS-SSIM within one image set (Odena et al. 2017), a mode-collapse signal.

High values mean the images look alike; compare the synthetic set's figure with the real set's.
MS-SSIM is MONAI's ``compute_ms_ssim`` on the [0, 1] images at their native size, computed in float32:

* SSIM and contrast-structure (CS) maps with an 11×11 Gaussian window (σ 1.5, normalised), "valid"
  filtering (no padding), K1 0.01, K2 0.03, data range 1 (C1 = 0.01², C2 = 0.03²);
* at each scale s the CS map is averaged over **all channels and pixels together**, giving one number
  ``cs_s`` per image pair (at the coarsest scale the SSIM map instead, ``ssim_S``); each is clipped at 0;
* ``MS-SSIM = Π_{s<S} cs_s^{w_s} · ssim_S^{w_S}``, with 2×2 average pooling (stride 2, odd edge dropped)
  between scales and the weights below.

So for RGB the channels are averaged *before* the product over scales. pytorch_msssim and TensorFlow's
``tf.image.ssim_multiscale`` compute MS-SSIM per channel and then average the channels, which gives a
different number for colour images (by up to ~3.5e-4 near 0.8 and ~5e-2 near 0; the test's RGB pair:
0.5796 here, 0.5547 per channel). Grey (1-channel) images give the same number either way.

**Scales.** The standard 5 scales (weights 0.0448, 0.2856, 0.3001, 0.2363, 0.1333) need images of at
least 176 pixels per side in MONAI (``H // (scales-1)^2 > 10``); the coarsest scale also needs
``H / 2^(scales-1) >= 11``. :func:`ms_ssim_weights` keeps the largest number of scales that fits (64×64:
3 scales; 32×32: 2; 16×16: 1, i.e. plain SSIM) and renormalises the kept weights to sum to 1, so the
figure stays a weighted geometric mean. The report names the weights used; compare figures only at
the same image size.
"""

from __future__ import annotations

import numpy as np
import torch

STANDARD_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
KERNEL_SIZE = 11


def ms_ssim_weights(height: int, width: int, kernel_size: int = KERNEL_SIZE) -> tuple[float, ...]:
    """Scale weights for images of ``height × width`` (see the module docstring)."""
    side = min(height, width)
    for scales in range(len(STANDARD_WEIGHTS), 0, -1):
        monai_ok = side // max(1, scales - 1) ** 2 > kernel_size - 1
        if monai_ok and side // 2 ** (scales - 1) >= kernel_size:
            kept = np.asarray(STANDARD_WEIGHTS[:scales])
            return tuple(float(w) for w in kept / kept.sum())
    raise ValueError(f"images of {height}×{width} are smaller than the {kernel_size}-pixel SSIM window")


def sample_pairs(n: int, max_pairs: int, seed: int = 0) -> np.ndarray:
    """``(P, 2)`` index pairs ``i < j``: all when there are at most ``max_pairs``, else a seeded sample."""
    if n < 2:
        raise ValueError(f"pairwise MS-SSIM needs at least 2 images, got {n}")
    total = n * (n - 1) // 2
    if total <= max_pairs:
        return np.array(np.triu_indices(n, k=1)).T
    pairs: set[tuple[int, int]]
    rng, pairs = np.random.default_rng(seed), set()
    while len(pairs) < max_pairs:
        i, j = rng.choice(n, size=2, replace=False)
        pairs.add((min(i, j), max(i, j)))
    return np.array(sorted(pairs))


def pairwise_ms_ssim(images: torch.Tensor, pairs: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """MS-SSIM of each pair of ``images (N, C, H, W)`` in [0, 1]; returns ``(P,)``."""
    from monai.metrics.regression import compute_ms_ssim

    weights = ms_ssim_weights(*images.shape[-2:])
    values = []
    for start in range(0, len(pairs), batch_size):
        i, j = torch.as_tensor(pairs[start:start + batch_size]).T
        score = compute_ms_ssim(images[i].float(), images[j].float(), spatial_dims=2, data_range=1.0,
                                kernel_size=KERNEL_SIZE, weights=weights)
        values.append(score.reshape(-1).double().cpu().numpy())
    return np.concatenate(values)


def mean_pairwise_ms_ssim(images: torch.Tensor, max_pairs: int = 500,
                          seed: int = 0) -> tuple[float, np.ndarray]:
    """Mean MS-SSIM over (a seeded sample of) the pairs of ``images (N, C, H, W)``, and the pair values."""
    values = pairwise_ms_ssim(images, sample_pairs(len(images), max_pairs, seed))
    return float(values.mean()), values
