"""Manifold metrics from k-nearest-neighbour balls: improved precision/recall and density/coverage.

Each real sample ``x_i`` gets a ball ``B(x_i, NND_k(x_i))`` whose radius is the Euclidean distance to its
k-th nearest *other* real sample (and likewise for fake samples):

* **precision** (Kynkäänniemi et al. 2019): fraction of fake samples inside the union of real balls.
* **recall**: fraction of real samples inside the union of fake balls.
* **density** (Naeem et al. 2020): ``1/(kM) Σ_j Σ_i 1[y_j ∈ B(x_i)]`` — how many real balls hold each fake
  sample, ≈ 1 when the two distributions are equal.
* **coverage**: ``1/N Σ_i 1[∃ j: y_j ∈ B(x_i)]`` — fraction of real balls holding a fake sample,
  ≈ 1 - 2^-k for equal distributions (k = 5: 0.97).

Ball membership is strict (``d < r``) as in ``prdc`` 0.2 (Naeem et al.'s code) for :func:`prdc`, and
inclusive (``d <= r``, on squared distances in their code) as in Kynkäänniemi et al.'s reference for
:func:`improved_precision_recall`; the two differ only on exact ties. Distances are exact Euclidean
(``scipy.spatial.distance.cdist``, not the faster ``|x|² + |y|² - 2x·y``, whose rounding depends on the
matrix shapes and would break ties inconsistently: identical sets must score exactly 1), in chunks of
rows, so memory stays ``O(chunk × N)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial.distance import cdist

CHUNK = 1024


def kth_neighbour_radii(features: np.ndarray, k: int | Sequence[int]) -> np.ndarray:
    """Distance from each row of ``features (N, D)`` to its k-th nearest other row: ``(N,)``, or
    ``(len(k), N)`` for several ``k``."""
    ks = np.atleast_1d(k)
    if not (1 <= ks.min() and ks.max() < len(features)):
        raise ValueError(f"k = {ks.max()} needs at least {ks.max() + 1} samples, got {len(features)}")
    radii = np.empty((len(ks), len(features)))
    for start in range(0, len(features), CHUNK):
        d = np.partition(cdist(features[start:start + CHUNK], features), ks, axis=1)
        radii[:, start:start + CHUNK] = d[:, ks].T  # column 0 is the sample itself
    return radii[0] if np.ndim(k) == 0 else radii


def manifold_terms(real: np.ndarray, fake: np.ndarray,
                   specs: Sequence[tuple[int, bool]]) -> list[dict[str, np.ndarray]]:
    """Per-sample terms of the four metrics for each ``(k, inclusive)`` in ``specs``, in one pass.

    Args:
        real: ``(N, D)`` features; fake: ``(M, D)`` features.
        specs: neighbourhood sizes, each with ``inclusive`` (``d <= r``) or strict (``d < r``) balls.

    Returns:
        One dict per spec: ``precision`` and ``density`` ``(M,)`` (one term per fake sample), ``recall`` and
        ``coverage`` ``(N,)`` (one per real sample); each metric is the mean of its vector. Resampling
        these vectors gives bootstrap intervals with the balls held fixed.
    """
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    ks = [k for k, _ in specs]
    r_real, r_fake = kth_neighbour_radii(real, ks), kth_neighbour_radii(fake, ks)
    out = [{"precision": np.zeros(len(fake), bool), "density": np.zeros(len(fake)),
            "recall": np.empty(len(real)), "coverage": np.empty(len(real))} for _ in specs]
    for start in range(0, len(real), CHUNK):  # exact distances (cdist): ties compare equal both ways
        d, rows = cdist(real[start:start + CHUNK], fake), slice(start, start + CHUNK)
        for s, (k, inclusive) in enumerate(specs):
            inside = np.less_equal if inclusive else np.less
            hits = inside(d, r_real[s, rows, None])  # (real chunk, M): fake j in the ball of real i
            out[s]["precision"] |= hits.any(axis=0)
            out[s]["density"] += hits.sum(axis=0) / k
            out[s]["coverage"][rows] = hits.any(axis=1)
            out[s]["recall"][rows] = inside(d, r_fake[s][None, :]).any(axis=1)
    for terms in out:
        terms["precision"] = terms["precision"].astype(np.float64)
    return out


def manifold_indicators(real: np.ndarray, fake: np.ndarray, k: int,
                        inclusive: bool = False) -> dict[str, np.ndarray]:
    """:func:`manifold_terms` for one ``k``."""
    return manifold_terms(real, fake, [(k, inclusive)])[0]


def prdc(real: np.ndarray, fake: np.ndarray, k: int = 5) -> dict[str, float]:
    """Precision, recall, density and coverage of ``fake (M, D)`` against ``real (N, D)`` (Naeem et al. 2020).

    Same definitions and strict inequality as ``prdc.compute_prdc(real, fake, nearest_k=k)``.
    """
    return {name: float(v.mean()) for name, v in manifold_indicators(real, fake, k).items()}


def improved_precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> dict[str, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019; k = 3 as their ``nhood_sizes=[3]``)."""
    terms = manifold_indicators(real, fake, k, inclusive=True)
    return {"precision": float(terms["precision"].mean()), "recall": float(terms["recall"].mean())}
