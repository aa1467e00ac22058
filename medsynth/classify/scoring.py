"""Scoring predicted probabilities and writing the files of a scored split: the one path every classifier uses.

The experiment's test scoring (:mod:`medsynth.classify.experiment`), the bundle's inference
(:class:`~medsynth.classify.inference.PredictionWriter`) and the scikit-learn baselines
(:mod:`medsynth.classify.baselines`) all turn probabilities into predictions with the validation-chosen
threshold, a report with 95 % intervals, and the same files::

    predictions.csv    one row per image (stats.tables.write_predictions_csv)
    metrics.json       the report plus the caller's extra keys
    metrics.md         the report as Markdown, under an optional title
    roc.png pr.png confusion.png   with ``plots=True``
    reliability.png                with ``plots=True`` in a binary task (observed vs predicted P(positive))
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from medsynth.fileio import atomic_write_text
from medsynth.stats import classification as cls
from medsynth.stats import plots as figures
from medsynth.stats import tables


def patient_ids(items: Sequence[Mapping]) -> list[str | None] | None:
    """The ``patient_id`` of each datalist item (None where an item has none), or None when no item has one."""
    if not any(it.get("patient_id") is not None for it in items):
        return None
    return [None if it.get("patient_id") is None else str(it["patient_id"]) for it in items]


def score(y_true: np.ndarray, probs: np.ndarray, classes: Sequence[str], *, threshold: float | None,
          positive: int | None, n_resamples: int = 1000, seed: int = 0,
          groups: Sequence[str | None] | None = None) -> tuple[np.ndarray, dict | None]:
    """``(pred, report)`` of probabilities ``probs (N, K)`` against labels ``y_true (N,)`` (-1: unknown).

    ``pred`` applies ``threshold`` to P(``positive``) (argmax when ``threshold`` is None; ``positive`` None
    means class 1). ``report`` is :func:`~medsynth.stats.classification.classification_report` (patients as
    the unit when ``groups``, the images' patient ids, say so), or None when an image has no label or the
    labels hold one class only (nothing to score).
    """
    probs = np.asarray(probs)
    y_true = np.asarray(y_true)
    pred = cls.predict_labels(probs, threshold, positive=1 if positive is None else positive)
    if len(y_true) == 0 or (y_true < 0).any() or len(np.unique(y_true)) < 2:
        return pred, None
    report = cls.classification_report(y_true, probs, list(classes), threshold=threshold, positive=positive,
                                       groups=groups, n_resamples=n_resamples, seed=seed)
    return pred, report


def write_scores(folder: str | os.PathLike, items: Sequence[Mapping], y_true: np.ndarray, probs: np.ndarray,
                 pred: np.ndarray, classes: Sequence[str], report: Mapping | None, *, extra: Mapping | None = None,
                 title: str | None = None, plots: bool = False, positive: int | None = None) -> Path:
    """Write ``predictions.csv`` and, with a ``report``, ``metrics.json`` (``extra`` keys added), ``metrics.md``
    (under ``# title``) and with ``plots`` ``roc.png``, ``pr.png`` and ``confusion.png`` into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tables.write_predictions_csv(folder / "predictions.csv", items, y_true, probs, pred, classes)
    if report is None:
        return folder
    tables.write_metrics_json(folder / "metrics.json", report, extra)
    table = tables.metrics_table(report)
    atomic_write_text(folder / "metrics.md", f"# {title}\n\n{table}\n" if title else f"{table}\n")
    if plots:
        figures.plot_roc(folder / "roc.png", y_true, probs, classes, positive)
        figures.plot_pr(folder / "pr.png", y_true, probs, classes, positive)
        figures.plot_confusion(folder / "confusion.png", report["confusion_matrix"], classes)
        if report.get("reliability"):
            figures.plot_reliability(folder / "reliability.png", report["reliability"], report["positive_class"])
    return folder


def score_and_write(folder: str | os.PathLike, items: Sequence[Mapping], y_true: np.ndarray, probs: np.ndarray,
                    classes: Sequence[str], *, threshold: float | None, positive: int | None, n_resamples: int = 1000,
                    seed: int = 0, groups: Sequence[str | None] | None = None, extra: Mapping | None = None,
                    title: str | None = None, plots: bool = False,
                    write: bool = True) -> tuple[np.ndarray, dict | None]:
    """:func:`score`, then (when ``write``, e.g. on the main rank only) :func:`write_scores`; returns
    ``(pred, report)``."""
    pred, report = score(y_true, probs, classes, threshold=threshold, positive=positive, n_resamples=n_resamples,
                         seed=seed, groups=groups)
    if write:
        write_scores(folder, items, y_true, probs, pred, classes, report, extra=extra, title=title, plots=plots,
                     positive=positive)
    return pred, report
