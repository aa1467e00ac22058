"""Memorization audit: copies of training images are flagged, fresh samples are not."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy.spatial.distance import cdist

from medsynth.metrics import memorization as memorization_module
from medsynth.metrics.memorization import memorization_audit, nearest_neighbours, write_pair_grid


def test_copies_are_flagged_and_fresh_samples_are_not():
    rng = np.random.default_rng(0)
    train, heldout, fresh = (rng.normal(size=(500, 32)) for _ in range(3))
    copies = train[rng.choice(500, 20, replace=False)]
    audit = memorization_audit(np.vstack([copies, fresh]), train, heldout, percentile=1.0)
    assert audit.flagged[:20].all()  # distance 0 is below any positive threshold
    # fresh samples are exchangeable with held-out ones: ~1% fall below the 1st percentile by chance
    # (binomial sd 0.45%, plus the percentile's own error, sd 0.45% at 500 held-out images)
    assert audit.flagged[20:].mean() <= 0.04
    assert set(audit.closest(20)) == set(range(20))
    assert audit.threshold == pytest.approx(np.percentile(cdist(heldout, train).min(axis=1), 1.0))


def test_nearest_neighbours_match_brute_force(monkeypatch):
    rng = np.random.default_rng(1)
    query, reference = rng.normal(size=(23, 4)), rng.normal(size=(17, 4))
    monkeypatch.setattr(memorization_module, "CHUNK", 5)
    distances, indices = nearest_neighbours(query, reference)
    full = cdist(query, reference)
    np.testing.assert_array_equal(indices, full.argmin(axis=1))
    np.testing.assert_allclose(distances, full.min(axis=1), rtol=1e-9)


def test_pair_grid_lays_out_pairs_in_rows(tmp_path):
    gray, rgb = np.zeros((1, 8, 8), np.float32), np.ones((3, 16, 12), np.float32)
    path = write_pair_grid([(gray, rgb), (rgb, gray), (gray, gray)], tmp_path / "grid.png", tile=32, gap=4,
                           columns=2)
    with Image.open(path) as image:  # 2 rows of up to 2 pairs: 4 + 68 + 12 + 68 + 4 wide, 4 + 2 * 36 high
        assert image.size == (156, 76)
        pixels = np.asarray(image)
    assert (pixels[4:36, 4:36] == 0).all() and (pixels[4:36, 40:64] == 255).all()  # black | white (12 of 16)
    assert (pixels[4:36, 84:108] == 255).all() and (pixels[40:72, 4:36] == 0).all()


def test_empty_sets_are_refused():
    with pytest.raises(ValueError, match="needs synthetic, training and held-out"):
        memorization_audit(np.zeros((3, 2)), np.zeros((0, 2)), np.zeros((3, 2)))
