"""Files and tables of a classifier evaluation: predictions CSV, metrics JSON/Markdown, plots, TensorBoard scalars.

Works on the report and comparison dicts of :mod:`medsynth.stats.classification`:

- :func:`write_predictions_csv` / :func:`read_predictions_csv`: one row per test image (``image``, ``patient_id``
  when the items have one, ``source``, ``label``, ``label_name``, ``prob_<class>`` per class, ``pred``,
  ``pred_name``, ``correct``); probabilities are written with ``repr`` so a read gives back the same floats, and
  arms run in separate commands can be compared from their files. An unknown label (an unlabelled image) is
  written as an empty cell and read back as ``-1``.
- :func:`write_metrics_json`: the report (plus ``extra`` keys) as plain JSON.
- :func:`metrics_table`, :func:`headline_table`, :func:`comparison_table`, :func:`seeds_table`: Markdown.
  Proportions are shown as ``0.xxx``, intervals as ``[low, high]`` (95 %), undefined values as ``—``.
- the plots (ROC, PR, confusion matrix) are in :mod:`medsynth.stats.plots`.
- :func:`write_tensorboard`: every defined metric value as a scalar.

Every file is written atomically (:func:`medsynth.fileio.atomic_write`).
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from medsynth.errors import InputError
from medsynth.fileio import atomic_write_json, atomic_write_text

# The headline columns of the arm tables: (key, header). "minority_recall" and "specificity" are those of the
# report's positive class (the training split's minority class).
HEADLINE = (("balanced_accuracy", "balanced accuracy"), ("minority_recall", "minority recall"),
            ("specificity", "specificity"), ("roc_auc", "ROC-AUC"), ("pr_auc", "PR-AUC"))
_NAMES = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy", "mcc": "MCC", "roc_auc": "ROC-AUC",
          "pr_auc": "PR-AUC (average precision)", "brier": "Brier score", "calibration_slope": "calibration slope",
          "calibration_intercept": "calibration intercept"}
DASH = "—"


# ---------------------------------------------------------------- predictions CSV

def write_predictions_csv(path: str | os.PathLike, items: Sequence[Mapping],
                          y_true: Sequence[int | None] | np.ndarray, probs: np.ndarray,
                          pred: Sequence[int] | np.ndarray, classes: Sequence[str]) -> Path:
    """Write one row per image of ``items`` (datalist entries, in the order of ``probs``); returns ``path``.

    ``y_true (N,)`` holds class indices, or -1/None for an image without a label (then ``label``,
    ``label_name`` and ``correct`` are empty); ``probs (N, K)`` the class probabilities; ``pred (N,)`` the
    predicted indices. ``correct`` is 1 or 0.
    """
    classes = [str(c) for c in classes]
    probs = np.asarray(probs, np.float64)
    y = [-1 if v is None else int(v) for v in y_true]
    pred = [int(v) for v in np.asarray(pred).ravel()]
    n, k = len(items), len(classes)
    if probs.ndim != 2 or probs.shape != (n, k):
        raise ValueError(f"probs must be (N, K) = ({n}, {k}) for {n} items and {k} classes, got {probs.shape}")
    if len(y) != n or len(pred) != n:
        raise ValueError(f"{n} items but {len(y)} labels and {len(pred)} predictions")
    if any(not -1 <= v < k for v in y) or any(not 0 <= v < k for v in pred):
        raise ValueError(f"labels (or -1) and predictions must be class indices in [0, {k})")
    with_patient = any("patient_id" in it for it in items)
    header = ["image", *(["patient_id"] if with_patient else []), "source", "label", "label_name",
              *(f"prob_{c}" for c in classes), "pred", "pred_name", "correct"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for item, label, row_probs, p in zip(items, y, probs, pred, strict=True):
        known = label >= 0
        patient = item.get("patient_id")
        writer.writerow([
            str(item["image"]), *([("" if patient is None else str(patient))] if with_patient else []),
            str(item.get("source") or ""), label if known else "", classes[label] if known else "",
            *(repr(float(v)) for v in row_probs), p, classes[p], int(label == p) if known else "",
        ])
    return atomic_write_text(path, buffer.getvalue())


def _int_cell(text: str, path: Path, where: str, column: str, k: int, allow_empty: bool) -> int:
    if text == "" and allow_empty:
        return -1
    try:
        value = int(text)
    except ValueError:
        raise InputError(path, f"{where}: {column} {text!r} is not a class index") from None
    if not 0 <= value < k:
        raise InputError(path, f"{where}: {column} {value} is not a class index 0..{k - 1}")
    return value


def read_patient_ids(path: str | os.PathLike) -> list[str | None] | None:
    """The ``patient_id`` column of a predictions file (None for an empty cell), or None without that column."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if "patient_id" not in (reader.fieldnames or []):
                return None
            return [row["patient_id"] or None for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise InputError(path, f"cannot read the predictions file ({e})") from None


def read_predictions_csv(path: str | os.PathLike) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray,
                                                           list[str]]:
    """``(images, y_true (N,), probs (N, K), pred (N,), classes)`` of a file of :func:`write_predictions_csv`.

    ``y_true`` is -1 where the label cell is empty. Raises :class:`InputError` naming ``path`` for a missing,
    unreadable or malformed file (row numbers count the header as row 1).
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except FileNotFoundError:
        raise InputError(path, "predictions file not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise InputError(path, f"cannot read the predictions file ({e})") from None
    if not rows or not rows[0]:
        raise InputError(path, "empty predictions file: no header")
    header = rows[0]
    missing = [c for c in ("image", "label", "pred") if c not in header]
    if missing:
        raise InputError(path, f"not a predictions file: missing column(s) {', '.join(missing)}")
    prob_cols = [i for i, c in enumerate(header) if c.startswith("prob_")]
    classes = [header[i][len("prob_"):] for i in prob_cols]
    if len(classes) < 2:
        raise InputError(path, "not a predictions file: needs prob_<class> columns for at least 2 classes")
    if len(rows) < 2:
        raise InputError(path, "no predictions: the file has a header only")
    col = {c: i for i, c in enumerate(header)}
    k, images, y, probs, pred = len(classes), [], [], [], []
    for row_no, row in enumerate(rows[1:], start=2):
        where = f"row {row_no}"
        if len(row) != len(header):
            raise InputError(path, f"{where}: {len(row)} fields, the header has {len(header)}")
        label = _int_cell(row[col["label"]], path, where, "label", k, allow_empty=True)
        p = _int_cell(row[col["pred"]], path, where, "pred", k, allow_empty=False)
        try:
            values = [float(row[i]) for i in prob_cols]
        except ValueError:
            raise InputError(path, f"{where}: a prob_<class> cell is not a number") from None
        if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in values):
            raise InputError(path, f"{where}: probabilities must be numbers in [0, 1]")
        for column, index in (("label_name", label), ("pred_name", p)):
            if column in col and index >= 0 and row[col[column]] != classes[index]:
                raise InputError(path, f"{where}: {column} {row[col[column]]!r} does not match class {index} "
                                       f"({classes[index]!r})")
        if not row[col["image"]]:
            raise InputError(path, f"{where}: empty image path")
        images.append(row[col["image"]])
        y.append(label)
        probs.append(values)
        pred.append(p)
    return images, np.asarray(y, np.int64), np.asarray(probs, np.float64), np.asarray(pred, np.int64), classes


# ---------------------------------------------------------------- metrics JSON

def _plain(obj: object) -> object:
    """JSON-safe copy: numpy to Python, non-finite floats to None, tuples to lists, paths to strings."""
    if isinstance(obj, Mapping):
        return {str(key): _plain(value) for key, value in obj.items()}
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj


def write_metrics_json(path: str | os.PathLike, report: Mapping, extra: Mapping | None = None) -> Path:
    """Write ``report`` with the top-level keys of ``extra`` added (indent 2, plain JSON); returns ``path``.

    ``extra`` may not override a report key (ValueError).
    """
    clash = sorted(set(extra or {}) & set(report))
    if clash:
        raise ValueError(f"extra keys {clash} would overwrite keys of the report")
    payload = _plain({**report, **(extra or {})})
    return atomic_write_json(path, payload, indent=2, allow_nan=False)


# ---------------------------------------------------------------- Markdown

def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _row(cells: Iterable[object]) -> str:
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _table(header: Sequence[str], rows: Iterable[Sequence[object]], align: Sequence[str] | None = None) -> str:
    align = align or ["---"] * len(header)
    return "\n".join([_row(header), "|" + "|".join(align) + "|", *(_row(r) for r in rows)])


def _num(value: float | None, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return DASH
    if abs(value) < 0.0005:  # what rounds to zero is shown as zero, never "-0.000"
        value = 0.0
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _ci(entry: Mapping | None, signed: bool = False) -> str:
    if not entry or entry.get("ci_low") is None or entry.get("ci_high") is None:
        return ""
    return f"[{_num(entry['ci_low'], signed)}, {_num(entry['ci_high'], signed)}]"


def _p(value: float | None) -> str:
    return DASH if value is None else ("p < 0.001" if value < 0.001 else f"p = {value:.3f}")


def _p_bare(value: float | None) -> str:
    if value is None:
        return DASH
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def _value_ci(entry: Mapping | None) -> str:
    """``0.812 [0.700, 0.900]``, the PR-AUC with its chance level, or ``—``."""
    if not entry or entry.get("value") is None:
        return DASH
    text = " ".join(t for t in (_num(entry["value"]), _ci(entry)) if t)
    if entry.get("baseline") is not None:
        text += f" (chance {_num(entry['baseline'])})"
    return text


def _delta(entry: Mapping | None) -> str:
    """``+0.060 [-0.020, +0.140], p = 0.150`` of a paired comparison, or ``—``."""
    if not entry or entry.get("difference") is None:
        return DASH
    text = " ".join(t for t in (_num(entry["difference"], signed=True), _ci(entry, signed=True)) if t)
    return f"{text}, {_p(entry.get('p_value'))}"


def _metric_name(key: str) -> str:
    if "/" in key:
        metric, cls = key.split("/", 1)
        return f"{metric} ({cls})"
    if key.startswith("sensitivity_at_specificity_"):
        return f"sensitivity at specificity {key.rsplit('_', 1)[1]}"
    return _NAMES.get(key, key.replace("_", " "))


def _headline_entry(report: Mapping, key: str) -> Mapping | None:
    metrics, positive = report.get("metrics", {}), report.get("positive_class")
    if key in ("minority_recall", "specificity"):
        name = "recall" if key == "minority_recall" else "specificity"
        return metrics.get(f"{name}/{positive}") if positive is not None else None
    return metrics.get(key)


def _threshold_line(report: Mapping) -> str:
    threshold, positive = report.get("threshold"), report.get("positive_class")
    if threshold is None:
        return "Decision: the class with the highest probability (argmax), no threshold."
    return f"Decision threshold {threshold:.4g} on P({positive}), chosen on validation."


def metrics_table(report: Mapping) -> str:
    """Markdown of one report: the metrics (value, 95 % CI, n, method), the confusion matrix, the decision rule."""
    classes = list(report["classes"])
    lines = []
    prevalence = report.get("prevalence") or {}
    if prevalence:
        shown = ", ".join(f"{c} {_num(prevalence.get(c))}" for c in classes)
        patients = report.get("n_patients")
        of = f" from {patients} patients" if patients is not None else ""
        lines += [f"Test images: n = {report['n']}{of}; prevalence {shown}.", ""]
    multiclass = len(classes) > 2
    rows = []
    for key, entry in report["metrics"].items():
        method = entry.get("method", "")
        if entry.get("baseline") is not None:
            method = f"{method}; chance level (prevalence) {_num(entry['baseline'])}"
        name = _metric_name(key)
        if multiclass and key in ("roc_auc", "pr_auc"):
            name += ", macro one-vs-rest"
        rows.append([name, _num(entry.get("value")), _ci(entry) or DASH, entry.get("n", ""), method])
    lines.append(_table(["metric", "value", "95 % CI", "n", "method"], rows,
                        ["---", "---:", "---", "---:", "---"]))
    cm = report.get("confusion_matrix")
    if cm is not None:
        body = ([c, *map(int, counts)] for c, counts in zip(classes, cm, strict=True))
        lines += ["", "Confusion matrix (rows: true class, columns: predicted class):", "",
                  _table(["true \\ predicted", *classes], body, ["---", *["---:"] * len(classes)])]
    lines += ["", _threshold_line(report)]
    return "\n".join(lines)


def _absolute_cells(report: Mapping) -> list[str]:
    return [_value_ci(_headline_entry(report, key)) for key, _ in HEADLINE]


def _absolute_header(rows: Sequence[tuple[str, Mapping]]) -> list[str]:
    positives = sorted({str(r.get("positive_class")) for _, r in rows if r.get("positive_class") is not None})
    minority = f" ({', '.join(positives)})" if positives else ""
    names = {"minority_recall": f"minority recall{minority}", "specificity": "specificity",
             "pr_auc": "PR-AUC (chance)"}
    return [f"{names.get(key, header)} [95 % CI]" for key, header in HEADLINE]


def headline_table(rows: Sequence[tuple[str, Mapping]]) -> str:
    """Markdown of the headline metrics of several reports: ``rows`` are ``(name, report)``.

    Columns: balanced accuracy, minority recall (recall of the positive class), specificity, ROC-AUC and PR-AUC
    (with its chance level, the prevalence), each ``value [95 % CI]``.
    """
    return _table(["arm", *_absolute_header(rows)], ([name, *_absolute_cells(report)] for name, report in rows))


def comparison_table(rows: Sequence[tuple[str, Mapping, Mapping | None]], baseline: str = "real") -> str:
    """Markdown of arms against ``baseline``: ``rows`` are ``(arm, report, comparison or None for the baseline)``.

    The headline columns of :func:`headline_table`, then the paired differences arm − baseline on the same test
    images: Δ balanced accuracy and Δ minority recall ``[95 % CI], p`` (sign-flip p, the interval its inversion),
    Δ ROC-AUC (DeLong's or Obuchowski's clustered test when binary, a bootstrap otherwise) and McNemar's p (exact,
    or Durkalski's clustered version); a note below names the methods used.
    """
    header = ["arm", *_absolute_header([(n, r) for n, r, _ in rows]),
              f"Δ balanced accuracy vs {baseline} [95 % CI], p", f"Δ minority recall vs {baseline} [95 % CI], p",
              f"Δ ROC-AUC vs {baseline} [95 % CI], p", "McNemar p"]
    body: list[list[object]] = []
    methods: dict[str, str | None] = {}
    for name, report, comparison in rows:
        if comparison is None:
            deltas = [DASH] * 4
        else:
            mcnemar = comparison.get("mcnemar") or {}
            deltas = [_delta(comparison.get("balanced_accuracy")), _delta(comparison.get("minority_recall")),
                      _delta(comparison.get("roc_auc")), _p_bare(mcnemar.get("p_value"))]
            for key in ("balanced_accuracy", "roc_auc", "pr_auc"):
                entry = comparison.get(key) or {}
                methods.setdefault(key, entry.get("interval") or entry.get("method"))
            methods.setdefault("test", (comparison.get("balanced_accuracy") or {}).get("test"))
            methods.setdefault("mcnemar", mcnemar.get("method"))
        body.append([name, *_absolute_cells(report), *deltas])
    note = (f"Δ = arm − {baseline}, paired on the same test images. Balanced accuracy and minority recall: "
            f"{methods.get('balanced_accuracy') or 'bootstrap'} interval, p by {methods.get('test') or 'bootstrap'}; "
            f"ROC-AUC: {methods.get('roc_auc') or 'paired test'}; McNemar: {methods.get('mcnemar') or 'exact'}. "
            "Secondary endpoints, not corrected for multiplicity.")
    return _table(header, body) + "\n\n" + note


def cohort_line(report: Mapping) -> str:
    """``Test split: 127 images from 91 patients; malignant 15 images (15 patients).`` from a report with
    ``n``, ``n_patients``, ``positive_class`` and ``positive_patients`` (when known)."""
    n, patients = report.get("n"), report.get("n_patients", report.get("n"))
    text = f"Test split: {n} images from {patients} patients"
    positive = report.get("positive_class")
    if positive is not None and report.get("positive_images") is not None:
        text += (f"; {positive} (the minority class): {report['positive_images']} images from "
                 f"{report.get('positive_patients')} patients")
    return text + "."


def primary_table(results: Mapping[str, Mapping], holm: Mapping[str, Mapping], endpoint_name: str,
                  baseline: str = "real", alpha: float = 0.05) -> str:
    """Markdown of the pre-specified primary endpoint: one row per arm of :func:`~medsynth.stats.comparison.
    pooled_comparison` results, with its Holm-adjusted p (``holm``: :func:`~medsynth.stats.comparison.holm_adjust`)."""
    k = max((h.get("k", 0) for h in holm.values()), default=0)
    header = ["arm", "seeds", f"Δ {endpoint_name} vs {baseline}, mean over seeds [95 % CI]", "per seed (mean ± sd)",
              "p", f"p, Holm (k = {k})", f"significant at {alpha:g} (Holm)"]
    body, methods = [], None
    for name, result in results.items():
        per_seed = _num(result.get("mean"), signed=True)
        if result.get("sd") is not None:
            per_seed += f" ± {_num(result['sd'])}"
        adjusted = holm.get(name, {})
        significant = adjusted.get("significant")
        body.append([name, result.get("n_seeds", ""), " ".join(t for t in (_num(result.get("difference"), True),
                                                                        _ci(result, signed=True)) if t),
                     per_seed, _p_bare(result.get("p_value")), _p_bare(adjusted.get("p_holm")),
                     DASH if significant is None else ("yes" if significant else "no")])
        methods = methods or (result.get("interval"), result.get("test"))
    interval, test = methods or (None, None)
    how = ("each resample re-scoring every seed" if interval and "bootstrap" in interval
           else "a patient's arms swapped together in every seed")
    note = (f"Primary endpoint, fixed before the run (``primary_endpoint``). Δ = arm − {baseline} on the same test "
            f"images, averaged over the seeds both arms ran (seed s against seed s). Interval: {interval or '—'} "
            f"over test patients, {how}; p: {test or '—'}; Holm's step-down correction across the {k} arm(s) "
            "compared.")
    return _table(header, body) + "\n\n" + note


def power_line(power: Mapping | None, arm: str, endpoint: str = "minority recall") -> str:
    """One sentence: the smallest Δ minority recall this test set detects with 80 % power (or ``""``).

    ``arm`` ``"design"``: the statement of the test set (ψ from independent errors at the baseline's recall);
    another name: with the discordance observed between that arm and the baseline."""
    if not power or power.get("mdd_images") is None:
        return ""
    psi = _num(power.get("discordance"))
    what = (f"ψ = {psi}, {power.get('discordance_from')}" if arm == "design" else
            f"ψ = {psi}, the share of minority images on which {arm} and the baseline disagree; optimistic when "
            "few disagree")
    who = "Power of the design" if arm == "design" else f"Power ({arm})"
    return (f"{who}: with {power['positive_images']} minority test images from {power['positive_patients']} "
            f"patients ({what}), the smallest Δ {endpoint} detectable with {power['power']:.0%} power at two-sided "
            f"α = {power['alpha']:g} (McNemar, Connor 1987) is ±{_num(power['mdd_images'])} "
            f"(±{_num(power.get('mdd_patients'))} if a patient's images count once).")


CALIBRATION = (("brier", "Brier score"), ("calibration_slope", "calibration slope"),
               ("calibration_intercept", "calibration intercept"))


def calibration_table(rows: Sequence[tuple[str, Mapping]]) -> str:
    """Markdown of calibration and the fixed-specificity operating point of several binary reports
    (``rows``: ``(name, report)``): Brier score, calibration slope and intercept, sensitivity at the fixed
    specificity, each ``value [95 % CI]``."""
    keys = list(CALIBRATION)
    fixed = sorted({k for _, r in rows for k in r.get("metrics", {}) if k.startswith("sensitivity_at_specificity_")})
    keys += [(k, f"sensitivity at specificity {k.rsplit('_', 1)[1]}") for k in fixed]
    body = [[name, *(_value_ci(report.get("metrics", {}).get(key)) for key, _ in keys)] for name, report in rows]
    note = ("Brier score: mean squared error of P(positive) (lower is better); calibration slope 1 and intercept 0 "
            "are perfect calibration (slope < 1: over-confident); sensitivity read off the test ROC curve at that "
            "specificity. Intervals by (cluster) bootstrap.")
    return _table(["arm", *(f"{header} [95 % CI]" for _, header in keys)], body) + "\n\n" + note


def compute_line(steps: Mapping[str, Mapping]) -> str:
    """``Training compute: ...`` from ``{arm: {"steps_per_epoch", "optimizer_steps", "training_images"}}``;
    says plainly when the arms' per-epoch budgets differ."""
    known = {arm: s for arm, s in steps.items() if s.get("steps_per_epoch") is not None}
    if not known:
        return "Training compute: not recorded (runs older than the compute-matched schedule)."
    per_epoch = {int(s["steps_per_epoch"]) for s in known.values()}
    shown = "; ".join(f"{arm} {s['steps_per_epoch']} steps/epoch, {s.get('optimizer_steps', DASH)} steps run"
                      for arm, s in known.items())
    if len(per_epoch) == 1:
        return (f"Training compute: every arm {per_epoch.pop()} optimiser steps per epoch (compute-matched; early "
                f"stopping may end arms at different steps): {shown}.")
    return f"Training compute DIFFERS between arms (steps per epoch not matched): {shown}."


def _mean_sd(entry: Mapping | None, n_seeds: int) -> str:
    if not entry or entry.get("mean") is None:
        return DASH
    text = _num(entry["mean"])
    if entry.get("sd") is not None:
        text += f" ± {_num(entry['sd'])}"
    if entry.get("n_seeds") != n_seeds:
        text += f" (n = {entry.get('n_seeds')})"
    return text


def seeds_table(aggregates: Mapping[str, Mapping], positive_class: str | None = None) -> str:
    """Markdown of mean ± sd over seeds: ``aggregates`` maps an arm to its ``aggregate_seeds`` output.

    With ``positive_class`` the columns are the headline metrics (minority recall and specificity of that
    class). An aggregate does not say which class is the minority, so without it the recall of every class is
    shown instead of minority recall and specificity (in a binary task the specificity of one class is the
    recall of the other). ``n_seeds`` is that of balanced accuracy; a cell over fewer seeds says so.
    """
    if positive_class is not None:
        keys = [("balanced_accuracy", "balanced accuracy"), (f"recall/{positive_class}",
                f"minority recall ({positive_class})"), (f"specificity/{positive_class}", "specificity"),
                ("roc_auc", "ROC-AUC"), ("pr_auc", "PR-AUC")]
    else:
        recalls = list(dict.fromkeys(k for agg in aggregates.values() for k in agg if k.startswith("recall/")))
        keys = [("balanced_accuracy", "balanced accuracy"), *((k, _metric_name(k)) for k in recalls),
                ("roc_auc", "ROC-AUC"), ("pr_auc", "PR-AUC")]
    body = []
    for arm, agg in aggregates.items():
        n_seeds = int((agg.get("balanced_accuracy") or {}).get("n_seeds") or
                      max((e.get("n_seeds", 0) for e in agg.values()), default=0))
        body.append([arm, *(_mean_sd(agg.get(key), n_seeds) for key, _ in keys), n_seeds])
    return _table(["arm", *(f"{header} (mean ± sd)" for _, header in keys), "n_seeds"], body)






# ---------------------------------------------------------------- TensorBoard

def write_tensorboard(summary_writer, report: Mapping, prefix: str, step: int = 0) -> int:
    """``add_scalar(f"{prefix}/{metric}", value, step)`` for every metric whose value is defined; returns how
    many were written. A None writer (not the main rank) writes nothing."""
    if summary_writer is None:
        return 0
    written = 0
    for name, entry in report.get("metrics", {}).items():
        value = entry.get("value") if isinstance(entry, Mapping) else None
        if value is not None and math.isfinite(value):
            summary_writer.add_scalar(f"{prefix}/{name}", float(value), step)
            written += 1
    return written
