"""Shared small fixtures: tiny images in ``tmp_path`` (never in the repository)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import write_dicom

# class -> patient -> number of 8x12 gray PNGs, named "<patient>_<i>.png"
PNG_TREE = {"benign": {"p1": 2, "p2": 2, "p3": 2}, "malignant": {"p4": 2, "p5": 2}}


def _pixels(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (8, 12), dtype=np.uint8)


@pytest.fixture
def png_tree(tmp_path: Path) -> Path:
    """``tmp_path/data/<class>/<patient>_<i>.png`` laid out as ``PNG_TREE`` (10 images, 5 patients)."""
    root, seed = tmp_path / "data", 0
    for cls, patients in PNG_TREE.items():
        (root / cls).mkdir(parents=True)
        for patient, n in patients.items():
            for i in range(n):
                Image.fromarray(_pixels(seed)).save(root / cls / f"{patient}_{i}.png")
                seed += 1
    return root


@pytest.fixture
def dicom_writer():
    """The :func:`write_dicom` helper, for tests in any folder."""
    return write_dicom
