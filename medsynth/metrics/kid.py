"""Kernel Inception Distance: the unbiased MMD² with a cubic polynomial kernel (Bińkowski et al. 2018).

    k(x, y) = (x·y / d + 1)^3
    MMD²_u = 1/(n(n-1)) Σ_{i≠j} k(x_i, x_j) + 1/(m(m-1)) Σ_{i≠j} k(y_i, y_j) - 2/(nm) Σ_{i,j} k(x_i, y_j)

for ``x`` the ``n`` real and ``y`` the ``m`` synthetic feature vectors.

**medsynth's KID value is this statistic on the full sets** (:func:`mmd2_unbiased`, the U-statistic:
the minimum-variance unbiased estimator of the population MMD²), and its interval is a bootstrap of
*the same* statistic (:func:`mmd2_from_kernels` on resampled indices; see
:mod:`medsynth.metrics.quality`).

clean-fid's ``kernel_distance`` and torchmetrics' ``KernelInceptionDistance`` instead average MMD²_u
over ``num_subsets`` random subsets of ``min(n, m, max_subset_size)`` images per set, drawn without
replacement (:func:`kernel_inception_distance`, reported beside the value as ``subset_mean``). Given the
two sets, that average is an unbiased Monte Carlo estimate of the full-set statistic (every within-set
pair and every cross pair is equally likely to be drawn), so the two agree in expectation; they are
equal when ``n = m <= max_subset_size`` (every subset is then a permutation of its set). The subset
average adds Monte Carlo noise that the bootstrap does not see, which is why it is not the value the
interval is built around. Unbiased, so KID can be slightly negative, and its expectation does not
depend on the sample sizes (unlike FID's).
"""

from __future__ import annotations

import numpy as np


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``(x y^T / d + 1)^3`` for ``x (N, D)``, ``y (M, D)``; returns ``(N, M)``."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def _within_and_cross_sums(x: np.ndarray, y: np.ndarray, block: int) -> tuple[float, float]:
    """``(Σ_{i≠j} k(x_i, x_j), Σ_{i,j} k(x_i, y_j))``, ``block`` rows of ``x`` at a time (bounded memory)."""
    within = cross = 0.0
    for start in range(0, len(x), block):
        rows = x[start:start + block]
        k_rows = polynomial_kernel(rows, x)
        own = np.arange(len(rows))
        within += float(k_rows.sum() - k_rows[own, start + own].sum())
        cross += float(polynomial_kernel(rows, y).sum())
    return within, cross


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, block: int = 2048) -> float:
    """Unbiased MMD² (the module docstring's formula) between ``x (n, D)`` and ``y (m, D)``.

    The sizes may differ (``n, m >= 2``). Kernels are summed ``block`` rows at a time, so large sets
    never hold an ``n × n`` matrix.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n, m = len(x), len(y)
    if min(n, m) < 2:
        raise ValueError(f"KID needs at least 2 samples per set, got {n} and {m}")
    within_x, cross = _within_and_cross_sums(x, y, block)
    within_y, _ = _within_and_cross_sums(y, y[:0], block)
    return within_x / (n * (n - 1)) + within_y / (m * (m - 1)) - 2.0 * cross / (n * m)


def kernel_inception_distance(
    real: np.ndarray,
    fake: np.ndarray,
    num_subsets: int = 100,
    max_subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float, int]:
    """clean-fid's subset-averaged KID between ``real (N1, D)`` and ``fake (N2, D)``.

    An unbiased Monte Carlo estimate of the full-set :func:`mmd2_unbiased`, which is what medsynth
    reports as KID (see the module docstring); kept for comparison with clean-fid and torchmetrics.

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
    """The three full kernel matrices ``(K_rr, K_ff, K_rf)``, for :func:`mmd2_from_kernels`.

    ``mmd2_from_kernels(kid_kernels(r, f), arange(len(r)), arange(len(f)))`` is ``mmd2_unbiased(r, f)``.
    """
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    return polynomial_kernel(real, real), polynomial_kernel(fake, fake), polynomial_kernel(real, fake)


def mmd2_from_kernels(kernels: tuple[np.ndarray, np.ndarray, np.ndarray], idx_real: np.ndarray,
                      idx_fake: np.ndarray) -> float:
    """MMD²_u of the samples ``idx_real``, ``idx_fake`` (indices, repeats allowed) from precomputed kernels.

    Pairs of positions holding the *same* original sample are left out of the within-set means, not
    just the diagonal: a bootstrap resample repeats images, and ``k(x, x)`` would bias MMD² upward.
    With that exclusion the statistic of a bootstrap resample has *exactly* the full-set MMD²_u as its
    expectation: the cross mean trivially, and each within-set mean because, given how often each image
    is repeated, which image gets which multiplicity is uniformly random, so every distinct pair carries
    the same expected weight. NaN when a set holds a single distinct image.
    """
    k_rr, k_ff, k_rf = kernels
    within = 0.0
    for k, idx in ((k_rr, idx_real), (k_ff, idx_fake)):
        distinct = idx[:, None] != idx[None, :]
        if not distinct.any():  # one image repeated: no pair to average
            return float("nan")
        within += k[np.ix_(idx, idx)][distinct].mean()
    return float(within - 2.0 * k_rf[np.ix_(idx_real, idx_fake)].mean())
