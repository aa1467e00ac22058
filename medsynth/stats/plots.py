"""Plots of a classifier evaluation: ROC and precision-recall curves, the confusion matrix, the reliability diagram.

PNGs drawn on a bare :class:`matplotlib.figure.Figure` (Agg canvas, no pyplot global state), written to a
temporary name and renamed into place. Two classes: one curve, for the positive class (class 1 when
``positive`` is None); more: one curve per class, one-vs-rest. A class missing from the test labels is noted
in the legend instead of failing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from medsynth.fileio import atomic_write


def _save_figure(fig, path: str | os.PathLike) -> Path:
    def write(tmp: str) -> None:
        fig.savefig(tmp, format="png", dpi=100)
    try:
        return atomic_write(path, write)
    finally:
        fig.clear()


def _curve_inputs(y_true, probs, classes, positive) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Labelled rows only; the classes drawn: the positive one when binary, else every class one-vs-rest."""
    y, probs = np.asarray(y_true).astype(np.int64).ravel(), np.asarray(probs, np.float64)
    if probs.ndim != 2 or probs.shape != (len(y), len(classes)):
        raise ValueError(f"probs must be (N, K) = ({len(y)}, {len(classes)}), got {probs.shape}")
    keep = y >= 0
    y, probs = y[keep], probs[keep]
    if len(classes) == 2:
        drawn = [1 if positive is None else int(positive)]
    else:
        drawn = list(range(len(classes)))
    return y, probs, drawn


def _curve_figure(title: str, xlabel: str, ylabel: str):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), xlabel=xlabel, ylabel=ylabel, title=title)
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    return fig, ax


def plot_roc(path: str | os.PathLike, y_true: np.ndarray, probs: np.ndarray, classes: Sequence[str],
             positive: int | None = None) -> Path:
    """ROC curve(s) to a PNG: the positive class when binary (class 1 when ``positive`` is None), else one curve
    per class one-vs-rest. A class absent from (or the only class of) ``y_true`` gets no curve."""
    from sklearn.metrics import auc, roc_curve

    y, probs, drawn = _curve_inputs(y_true, probs, classes, positive)
    fig, ax = _curve_figure("ROC", "false positive rate (1 - specificity)", "true positive rate (sensitivity)")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance")
    for c in drawn:
        hit = y == c
        if hit.all() or not hit.any():
            ax.plot([], [], " ", label=f"{classes[c]}: undefined (one class only)")
            continue
        fpr, tpr, _ = roc_curve(hit, probs[:, c])
        ax.plot(fpr, tpr, linewidth=1.5, label=f"{classes[c]} (AUC {auc(fpr, tpr):.3f})")
    ax.legend(loc="lower right", fontsize="small")
    return _save_figure(fig, path)


def plot_pr(path: str | os.PathLike, y_true: np.ndarray, probs: np.ndarray, classes: Sequence[str],
            positive: int | None = None) -> Path:
    """Precision-recall curve(s) to a PNG, as :func:`plot_roc`, each with its chance level (the class's
    prevalence) as a dashed horizontal line in the curve's colour."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    y, probs, drawn = _curve_inputs(y_true, probs, classes, positive)
    fig, ax = _curve_figure("Precision-recall", "recall (sensitivity)", "precision (PPV)")
    for i, c in enumerate(drawn):
        hit = y == c
        colour = f"C{i % 10}"
        if not hit.any():
            ax.plot([], [], " ", label=f"{classes[c]}: undefined (no positives)")
            continue
        precision, recall, _ = precision_recall_curve(hit, probs[:, c])
        ap = average_precision_score(hit, probs[:, c])
        ax.plot(recall, precision, drawstyle="steps-post", color=colour, linewidth=1.5,
                label=f"{classes[c]} (AP {ap:.3f})")
        prevalence = float(hit.mean())
        ax.axhline(prevalence, linestyle="--", color=colour, linewidth=1,
                   label=f"chance: prevalence of {classes[c]} {prevalence:.3f}")
    ax.legend(loc="upper right", fontsize="small")
    return _save_figure(fig, path)


def plot_confusion(path: str | os.PathLike, confusion: Sequence[Sequence[int]], classes: Sequence[str]) -> Path:
    """The confusion matrix (rows true, columns predicted) to a PNG: colour by row share (recall), each cell
    annotated with its count and row percentage."""
    from matplotlib.figure import Figure

    cm = np.asarray(confusion, np.int64)
    k = len(classes)
    if cm.shape != (k, k):
        raise ValueError(f"confusion matrix must be ({k}, {k}) for {k} classes, got {cm.shape}")
    rows = cm.sum(1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape, np.float64), where=rows > 0)
    size = 2.5 + 0.9 * k
    fig = Figure(figsize=(size, size))
    ax = fig.subplots()
    ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{cm[i, j]}\n{100 * share[i, j]:.0f}%", ha="center", va="center",
                    color="white" if share[i, j] > 0.5 else "black")
    ax.set(xticks=range(k), yticks=range(k), xlabel="predicted class", ylabel="true class",
           title=f"Confusion matrix (n = {int(cm.sum())})")
    ax.set_xticklabels(classes, rotation=30 if k > 2 else 0, ha="right" if k > 2 else "center")
    ax.set_yticklabels(classes)
    fig.tight_layout()
    return _save_figure(fig, path)


def plot_reliability(path: str | os.PathLike, reliability: Mapping[str, Sequence[float]],
                     positive_name: str | None = None) -> Path:
    """The reliability diagram to a PNG: the observed share of the positive class against the mean predicted
    P(positive) in each bin of ``reliability`` (:func:`~medsynth.stats.calibration.reliability_bins`:
    ``mean_predicted``, ``observed``, ``count``), points sized by the bin's count, the diagonal = calibrated."""
    predicted = np.asarray(reliability["mean_predicted"], np.float64)
    observed = np.asarray(reliability["observed"], np.float64)
    count = np.asarray(reliability["count"], np.float64)
    if not len(predicted) == len(observed) == len(count):
        raise ValueError("reliability bins need mean_predicted, observed and count of one length")
    what = f"P({positive_name})" if positive_name else "P(positive)"
    fig, ax = _curve_figure("Reliability (calibration)", f"mean predicted {what}", "observed share of positives")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect calibration")
    if len(count):
        ax.plot(predicted, observed, color="C0", linewidth=1)
        ax.scatter(predicted, observed, s=20 + 180 * count / count.max(), color="C0", zorder=3,
                   label=f"{len(count)} equal-count bins (n = {int(count.sum())})")
    ax.legend(loc="upper left", fontsize="small")
    return _save_figure(fig, path)
