"""ROC, precision-recall and confusion-matrix PNGs: written, readable, not blank, for 2 and 3 classes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medsynth.stats import plots

CLASSES = ["benign", "malignant"]





def _assert_png(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 0
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 0 and image.height > 0
        pixels = np.asarray(image.convert("L"), dtype=np.float64)
    assert pixels.std() > 1.0  # something was drawn


@pytest.mark.parametrize("k, positive", [(2, 1), (2, 0), (3, None)])
def test_curve_plots(tmp_path, k, positive):
    rng = np.random.default_rng(1)
    y = np.r_[np.arange(k), rng.integers(0, k, 40)]
    probs = rng.dirichlet(np.ones(k), size=len(y))
    probs[np.arange(len(y)), y] += 0.5
    probs /= probs.sum(1, keepdims=True)
    classes = ["a", "b", "c"][:k]
    _assert_png(plots.plot_roc(tmp_path / "roc.png", y, probs, classes, positive))
    _assert_png(plots.plot_pr(tmp_path / "pr.png", y, probs, classes, positive))
    assert sorted(os.listdir(tmp_path)) == ["pr.png", "roc.png"]


def test_curve_plots_single_class(tmp_path):
    """A test split with one class has no ROC curve; the plot is still written."""
    probs = np.tile([[0.3, 0.7]], (5, 1))
    _assert_png(plots.plot_roc(tmp_path / "roc.png", np.ones(5, int), probs, CLASSES, 1))
    _assert_png(plots.plot_pr(tmp_path / "pr.png", np.zeros(5, int), probs, CLASSES, 1))


def test_plot_confusion(tmp_path):
    _assert_png(plots.plot_confusion(tmp_path / "confusion.png", [[95, 7], [6, 12]], CLASSES))
    _assert_png(plots.plot_confusion(tmp_path / "c3.png", [[5, 1, 0], [0, 0, 0], [2, 2, 9]], ["x", "y", "z"]))
    with pytest.raises(ValueError, match="confusion"):
        plots.plot_confusion(tmp_path / "bad.png", [[1, 2]], CLASSES)
