"""Fréchet distance between Gaussians fitted to two feature sets (FID when the features are Inception's).

    FID = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))        (Heusel et al. 2017)

Pure NumPy; no network, no files. Two entry points:

* :func:`frechet_distance` takes the statistics ``(mu, sigma)``, like
  ``pytorch_fid.fid_score.calculate_frechet_distance`` (which it equals within 1e-6 relative).
* :func:`frechet_distance_from_features` takes the features themselves. It is the one the reports use:
  below ``n = d`` samples (every minority class is far below 2048 images) it never forms a ``d × d``
  matrix, so it is exact where the covariances are singular and fast enough to bootstrap.

**How the trace of the matrix square root is computed.** ``S1 S2`` is similar to the symmetric PSD
matrix ``F S2 F^T`` for any factor ``S1 = F^T F``, so ``Tr (S1 S2)^(1/2)`` is the sum of the square roots of
the eigenvalues of ``F S2 F^T`` (clipped at 0). pytorch-fid instead calls ``scipy.linalg.sqrtm`` on the
non-symmetric product, which can return complex parts and needs an ``eps`` fallback when the product is
singular; the symmetric form has neither problem, and on 2048-d statistics it takes seconds, not minutes.
With features, ``F = A / sqrt(n1 - 1)`` (``A`` the centred features) whenever ``n1 <= d``, so the
eigenproblem is ``n × n``.

FID is biased upward at small ``n`` (Chong & Forsyth 2020): always report ``n`` and compare with the
real-vs-real value at the same ``n`` (see ``docs/metrics.md``).
"""

from __future__ import annotations

import numpy as np


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and unbiased covariance ``(D, D)`` of ``features (N, D)``, float64 (as pytorch-fid)."""
    features = _as_features(features, "features")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``.

    Args:
        mu1, mu2: means, ``(D,)``.
        sigma1, sigma2: covariances, ``(D, D)``, symmetric positive semi-definite.

    Returns:
        The squared Fréchet distance (what papers call FID), a float >= 0 up to rounding.
    """
    mu1, mu2 = (np.atleast_1d(np.asarray(m, np.float64)) for m in (mu1, mu2))
    sigma1, sigma2 = (np.atleast_2d(np.asarray(s, np.float64)) for s in (sigma1, sigma2))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(f"statistics do not match: mu {mu1.shape} vs {mu2.shape}, "
                         f"sigma {sigma1.shape} vs {sigma2.shape}")
    factor = _psd_factor(sigma1)
    tr_covmean = _trace_sqrt_psd(factor @ sigma2 @ factor.T)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)


def frechet_distance_from_features(features1: np.ndarray, features2: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to ``features1 (N1, D)`` and ``features2 (N2, D)``.

    Equal to ``frechet_distance(*feature_statistics(features1), *feature_statistics(features2))``; when
    ``min(N1, N2) <= D`` it works on ``N × N`` matrices only (see the module docstring).
    """
    x, y = _as_features(features1, "features1"), _as_features(features2, "features2")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature dimensions differ: {x.shape[1]} and {y.shape[1]}")
    if len(y) < len(x):
        x, y = y, x  # the formula is symmetric; factor the smaller set
    n1, n2, d = len(x), len(y), x.shape[1]
    if n1 > d:
        return frechet_distance(*feature_statistics(x), *feature_statistics(y))
    mu1, mu2 = x.mean(axis=0), y.mean(axis=0)
    a, b = (x - mu1) / np.sqrt(n1 - 1), (y - mu2) / np.sqrt(n2 - 1)  # S1 = a^T a, S2 = b^T b
    cross = a @ b.T  # (n1, n2); eig(S1 S2) \ {0} = eig(cross cross^T) \ {0}
    tr_covmean = _trace_sqrt_psd(cross @ cross.T)
    diff = mu1 - mu2
    return float(diff @ diff + np.sum(a * a) + np.sum(b * b) - 2.0 * tr_covmean)


def _as_features(features: np.ndarray, name: str) -> np.ndarray:
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"{name} must be (N, D) with N >= 2 samples, got shape {features.shape}")
    if not np.isfinite(features).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    return features


def _psd_factor(sigma: np.ndarray) -> np.ndarray:
    """``F`` with ``sigma = F^T F`` (Cholesky when positive definite, else eigendecomposition)."""
    try:
        return np.linalg.cholesky(sigma).T
    except np.linalg.LinAlgError:  # singular (fewer samples than dimensions): fall back to eigh
        values, vectors = np.linalg.eigh((sigma + sigma.T) / 2)
        return np.sqrt(np.clip(values, 0.0, None))[:, None] * vectors.T


def _trace_sqrt_psd(matrix: np.ndarray) -> float:
    """Sum of the square roots of the eigenvalues of a symmetric PSD matrix (negative rounding clipped)."""
    values = np.linalg.eigvalsh((matrix + matrix.T) / 2)
    return float(np.sum(np.sqrt(np.clip(values, 0.0, None))))
