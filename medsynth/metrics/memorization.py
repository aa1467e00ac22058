"""Memorization audit: is a synthetic image closer to a training image than real images ever are?

For each synthetic image ``g``, ``d_min(g) = min_j ||φ(g) - φ(x_j^train)||`` (Euclidean, in the extractor's
feature space). The yardstick is the same statistic for held-out real images, which the generator never
saw: ``d_min(x^heldout)``. A synthetic image is *flagged* when its ``d_min`` falls below the
``percentile``-th percentile (default 1st) of the held-out distances, so about ``percentile`` % of fresh
samples from the real distribution would be flagged by chance; a much larger fraction means copies
(Esteban et al. 2017; docs/metrics.md). With few held-out images the 1st percentile is close to their
minimum, so the flag is conservative; the report gives ``n_heldout``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.distance import cdist

CHUNK = 1024


@dataclass
class MemorizationAudit:
    """Result of :func:`memorization_audit`; arrays are per synthetic image ``(M,)`` unless noted."""

    distances: np.ndarray  # d_min of each synthetic image
    nearest: np.ndarray  # index of its nearest training image
    heldout_distances: np.ndarray  # d_min of each held-out real image, (H,)
    threshold: float  # the percentile of heldout_distances
    percentile: float

    @property
    def flagged(self) -> np.ndarray:
        """Boolean ``(M,)``: ``d_min`` strictly below the threshold."""
        return self.distances < self.threshold

    @property
    def fraction_flagged(self) -> float:
        return float(self.flagged.mean())

    def closest(self, count: int) -> np.ndarray:
        """Indices of the ``count`` synthetic images nearest to a training image, closest first."""
        return np.argsort(self.distances, kind="stable")[:count]


def nearest_neighbours(query: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distance from each row of ``query (N, D)`` to its nearest row of ``reference (M, D)``.

    Returns:
        ``(distances (N,), indices (N,))``.
    """
    query, reference = np.asarray(query, np.float64), np.asarray(reference, np.float64)
    distances, indices = np.empty(len(query)), np.empty(len(query), dtype=np.int64)
    for start in range(0, len(query), CHUNK):
        d = cdist(query[start:start + CHUNK], reference)  # exact: a copy is at distance 0
        indices[start:start + CHUNK] = d.argmin(axis=1)
        distances[start:start + CHUNK] = d.min(axis=1)
    return distances, indices


def memorization_audit(synthetic: np.ndarray, train: np.ndarray, heldout: np.ndarray,
                       percentile: float = 1.0) -> MemorizationAudit:
    """Audit ``synthetic (M, D)`` against ``train (N, D)`` with ``heldout (H, D)`` as the yardstick.

    ``heldout`` must not overlap ``train`` (an image in both has distance 0 and breaks the yardstick).
    """
    if len(train) < 1 or len(heldout) < 1 or len(synthetic) < 1:
        raise ValueError("the memorization audit needs synthetic, training and held-out images")
    distances, nearest = nearest_neighbours(synthetic, train)
    heldout_distances, _ = nearest_neighbours(heldout, train)
    threshold = float(np.percentile(heldout_distances, percentile))
    return MemorizationAudit(distances, nearest, heldout_distances, threshold, percentile)


def fraction_below_percentile(distances: np.ndarray, heldout_distances: np.ndarray,
                              percentile: float) -> float:
    """Fraction of ``distances`` below the ``percentile`` of ``heldout_distances`` (for the bootstrap)."""
    return float(np.mean(distances < np.percentile(heldout_distances, percentile)))


def write_pair_grid(pairs: list[tuple[np.ndarray, np.ndarray]], path: str | os.PathLike, tile: int = 96,
                    gap: int = 4, columns: int = 4) -> Path:
    """Write a PNG preview of image pairs ``[synthetic | nearest training image]``, ``columns`` pairs a row.

    Args:
        pairs: ``(synthetic, training)`` images, each ``(C, H, W)`` float in [0, 1], C = 1 or 3; closest
            first (read left to right, top to bottom).
        tile: side of each tile in pixels (nearest-neighbour upscaling of small images, so pixels stay
            visible). The PNG is an 8-bit preview for a human; no metric reads it.
    """
    from PIL import Image

    rows, cols = -(-len(pairs) // columns), max(1, min(columns, len(pairs)))
    pair_width, separation = 2 * tile + gap, 3 * gap  # pairs stand further apart than their two halves
    width = 2 * gap + cols * pair_width + (cols - 1) * separation
    canvas = np.full((gap + rows * (tile + gap), width, 3), 128, np.uint8)
    for index, images in enumerate(pairs):
        row, col = divmod(index, columns)
        for side, image in enumerate(images):
            y, x = gap + row * (tile + gap), gap + col * (pair_width + separation) + side * (tile + gap)
            canvas[y:y + tile, x:x + tile] = _tile(image, tile)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(canvas).save(path)
    return path


def _tile(image: np.ndarray, tile: int) -> np.ndarray:
    from PIL import Image

    rgb = np.repeat(image, 3, axis=0) if image.shape[0] == 1 else image[:3]
    pixels = np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8).transpose(1, 2, 0)
    h, w = pixels.shape[:2]
    scale = tile / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = Image.fromarray(pixels).resize(size, Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.BILINEAR)
    out = np.full((tile, tile, 3), 128, np.uint8)
    out[:size[1], :size[0]] = np.asarray(small)
    return out
