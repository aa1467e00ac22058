"""Kernel Inception Distance: the unbiased MMD² with a cubic polynomial kernel (Bińkowski et al. 2018).

    k(x, y) = (x·y / d + 1)^3
    MMD²_u = 1/(m(m-1)) Σ_{i≠j} k(x_i, x_j) + 1/(m(m-1)) Σ_{i≠j} k(y_i, y_j) - 2/m² Σ_{i,j} k(x_i, y_j)

averaged over ``num_subsets`` random subsets of ``m = min(n_real, n_fake, max_subset_size)`` images per
set, drawn without replacement: the definition of clean-fid's ``kernel_distance`` and torchmetrics'
``KernelInceptionDistance`` (which instead refuses sets smaller than its subset size). Unbiased, so it
can be slightly negative, and its expectation does not depend on ``m`` (unlike FID's).
"""

from __future__ import annotations

import numpy as np


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``(x y^T / d + 1)^3`` for ``x (N, D)``, ``y (M, D)``; returns ``(N, M)``."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² between ``x (m, D)`` and ``y (m, D)`` with :func:`polynomial_kernel`."""
    m = len(x)
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.mean())


def kernel_inception_distance(
    real: np.ndarray,
    fake: np.ndarray,
    num_subsets: int = 100,
    max_subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float, int]:
    """KID between feature sets ``real (N1, D)`` and ``fake (N2, D)``.

    Returns:
        ``(mean, std, m)``: the mean and the (population) standard deviation of MMD²_u over the
        subsets, and the subset size ``m`` used.
    """
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    m = min(len(real), len(fake), max_subset_size)
    if m < 2:
        raise ValueError(f"KID needs at least 2 samples per set, got {len(real)} and {len(fake)}")
    rng = np.random.default_rng(seed)
    subsets = ((rng.choice(len(real), m, replace=False), rng.choice(len(fake), m, replace=False))
               for _ in range(num_subsets))
    values = np.array([mmd2_unbiased(real[i], fake[j]) for i, j in subsets])
    return float(values.mean()), float(values.std()), m


def kid_kernels(real: np.ndarray, fake: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three full kernel matrices ``(K_rr, K_ff, K_rf)``, for :func:`mmd2_from_kernels`."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    return polynomial_kernel(real, real), polynomial_kernel(fake, fake), polynomial_kernel(real, fake)


def mmd2_from_kernels(kernels: tuple[np.ndarray, np.ndarray, np.ndarray], idx_real: np.ndarray,
                      idx_fake: np.ndarray) -> float:
    """MMD²_u of the samples ``idx_real``, ``idx_fake`` (indices, repeats allowed) from precomputed kernels.

    Pairs of positions holding the *same* original sample are left out of the within-set means, not
    just the diagonal: a bootstrap resample repeats images, and ``k(x, x)`` would bias MMD² upward.
    NaN when a set holds a single distinct image.
    """
    k_rr, k_ff, k_rf = kernels
    within = 0.0
    for k, idx in ((k_rr, idx_real), (k_ff, idx_fake)):
        distinct = idx[:, None] != idx[None, :]
        if not distinct.any():  # one image repeated: no pair to average
            return float("nan")
        within += k[np.ix_(idx, idx)][distinct].mean()
    return float(within - 2.0 * k_rf[np.ix_(idx_real, idx_fake)].mean())
