"""Classic machine-learning baselines (scikit-learn) on the same splits, threshold rule and metrics as the CNNs.

Each baseline is a pipeline fitted on the training images only::

    StandardScaler -> [PCA] -> estimator

- ``logistic_regression``: L2 :class:`~sklearn.linear_model.LogisticRegression` (C = 1, lbfgs).
- ``svm``: RBF :class:`~sklearn.svm.SVC` whose decision values are mapped to probabilities by Platt scaling in
  :class:`~sklearn.calibration.CalibratedClassifierCV` (``method="sigmoid"``, ``ensemble=False``: the sigmoid is
  fitted on out-of-fold decision values of a seeded stratified k-fold, k = min(5, smallest training class), and
  the SVM itself on all training images). ``SVC(probability=True)`` is deprecated since scikit-learn 1.9 and
  its internal cross-validation is libsvm's, so the calibrated form is used.
- ``random_forest``: :class:`~sklearn.ensemble.RandomForestClassifier`, 200 trees.

Every estimator uses ``class_weight="balanced"`` (weights N / (K n_c)): the same fair-rebalancing stance as the
classifier bundle's class-weighted loss (:func:`medsynth.classify.engine.class_weights`), so a baseline is
not handicapped by the imbalance that the GAN arms are meant to address.

Features (``features``): ``"pixels"``, every image read with medsynth's modality preset in [0, 1]
(:func:`~medsynth.data.transforms.load_preset`), resized to ``image_size`` x ``image_size`` and flattened to
C·H·W values; ``"pca"``, those pixels projected on ``min(pca_components, n_train - 1, C·H·W)`` principal
components fitted on the (standardised) training images.

Scoring matches the CNN experiment: with two classes the decision threshold on P(positive) is chosen on the
**validation** probabilities (:func:`~medsynth.stats.classification.choose_threshold`), never on the test
split; with more classes the prediction is the argmax. The ``test`` split is scored with
:func:`~medsynth.stats.classification.classification_report`. The positive class defaults to the training
split's minority class (fewest, but some, images; the lowest index on a tie).

:func:`run_baselines` is the entry point: it writes ``<out_dir>/<name>_<features>/{metrics.json, metrics.md,
predictions.csv}`` and ``<out_dir>/baselines.md``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medsynth.classify.scoring import patient_ids, write_scores
from medsynth.errors import InputError, refuse_output_inside
from medsynth.fileio import atomic_write_text
from medsynth.stats import tables as outputs
from medsynth.stats.classification import choose_threshold, classification_report, predict_labels

logger = logging.getLogger(__name__)

BASELINES = ("logistic_regression", "svm", "random_forest")
FEATURES = ("pixels", "pca")
N_TREES = 200


def _check_choice(value: str, valid: Sequence[str], what: str) -> None:
    if value not in valid:
        raise ValueError(f"unknown {what} {value!r}; valid values: {', '.join(valid)}")


def _load(datalist: dict | str | os.PathLike) -> tuple[dict, Path | None]:
    """The datalist dict and its file (None when given as a dict)."""
    if isinstance(datalist, dict):
        return datalist, None
    from medsynth.data.datalist import load_datalist

    return load_datalist(datalist), Path(datalist)


def _item_features(items: Sequence[dict], datalist: dict, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Flattened [0, 1] pixels ``(N, C*H*W)`` float32 and labels ``(N,)`` of ``items``."""
    from medsynth.data.training import datalist_channels, preset_for
    from medsynth.data.transforms import load_preset

    channels = datalist_channels(datalist)
    preset = preset_for(datalist.get("modality", "other"), channels)
    transform = load_preset(preset, spatial_size=(image_size, image_size), window=datalist.get("window"),
                            range="unit")
    rows = []
    for item in items:
        path = item["image"]
        try:
            image = transform({"image": path})["image"]
        except InputError:
            raise
        except Exception as e:  # any reader failure is a bad input file
            raise InputError(path, f"cannot read the image ({type(e).__name__}: {e})") from None
        if image.shape[0] != channels:
            raise InputError(path, f"has {image.shape[0]} channel(s); the datalist's images have {channels} "
                                   f"(modality {datalist.get('modality', 'other')!r})")
        rows.append(np.asarray(image, dtype=np.float32).reshape(-1))
    x = np.stack(rows) if rows else np.zeros((0, channels * image_size * image_size), np.float32)
    y = np.asarray([int(item["label"]) for item in items], dtype=np.int64)
    return x, y


def pixel_features(datalist: dict, split: str, image_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """``(X (N, C*H*W) float32, y (N,))`` of a datalist split: each image through the modality preset in [0, 1]
    at ``image_size`` x ``image_size`` (a ``(C, W, H)`` tensor), flattened."""
    return _item_features(datalist.get(split, []), datalist, image_size)


def _estimator(name: str, seed: int, y_train: np.ndarray):
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.svm import SVC

    if name == "logistic_regression":
        return LogisticRegression(C=1.0, class_weight="balanced", max_iter=5000, random_state=seed)
    if name == "random_forest":
        return RandomForestClassifier(n_estimators=N_TREES, class_weight="balanced", random_state=seed)
    smallest = int(np.bincount(y_train)[np.unique(y_train)].min())
    if smallest < 2:
        raise InputError(None, "the svm baseline calibrates on a stratified split of the training images and needs "
                               "at least 2 training images of every class")
    folds = StratifiedKFold(n_splits=min(5, smallest), shuffle=True, random_state=seed)
    return CalibratedClassifierCV(SVC(kernel="rbf", C=1.0, gamma="scale", class_weight="balanced"),
                                  method="sigmoid", cv=folds, ensemble=False)


def _pipeline(name: str, features: str, pca_components: int, seed: int, x_train: np.ndarray,
              y_train: np.ndarray):
    """The unfitted pipeline and the number of PCA components (None for pixels)."""
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    steps, n_components = [StandardScaler()], None
    if features == "pca":
        n_components = int(min(pca_components, len(x_train) - 1, x_train.shape[1]))
        if n_components < 1:
            raise InputError(None, f"PCA features need at least 2 training images, got {len(x_train)}")
        steps.append(PCA(n_components=n_components, random_state=seed))
    return make_pipeline(*steps, _estimator(name, seed, y_train)), n_components


def _probabilities(model, x: np.ndarray, k: int) -> np.ndarray:
    """``(N, K)`` probabilities; classes the model never saw in training get 0."""
    probs = np.zeros((len(x), k), np.float64)
    if len(x):
        probs[:, np.asarray(model.classes_, dtype=np.int64)] = model.predict_proba(x)
    return probs


def minority_class(y_train: np.ndarray, k: int) -> int:
    """The class with the fewest (but some) training images; the lowest index on a tie."""
    counts = np.bincount(y_train, minlength=k)
    present = [c for c in range(k) if counts[c]]
    return min(present, key=lambda c: (counts[c], c))


@dataclass
class _Splits:
    """Features of the training, validation and test images, read once for all baselines."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    test_items: list


def _read_splits(datalist: dict, image_size: int, train_items: Sequence[dict] | None) -> _Splits:
    train = list(datalist.get("training", []) if train_items is None else train_items)
    x_train, y_train = _item_features(train, datalist, image_size)
    x_val, y_val = pixel_features(datalist, "validation", image_size)
    x_test, y_test = pixel_features(datalist, "test", image_size)
    return _Splits(x_train, y_train, x_val, y_val, x_test, y_test, list(datalist.get("test", [])))


def _score(name: str, features: str, data: _Splits, classes: Sequence[str], *, pca_components: int, seed: int,
           positive: int | None, n_resamples: int) -> dict:
    """Fit on the training features, threshold on validation, report on test."""
    k = len(classes)
    if len(np.unique(data.y_train)) < 2:
        raise InputError(None, "a baseline needs training images of at least 2 classes")
    if len(data.y_test) == 0:
        raise InputError(None, "the test split is empty: nothing to score")
    if positive is None:
        positive = minority_class(data.y_train, k)
    elif not 0 <= int(positive) < k:
        raise ValueError(f"positive must be a class index 0..{k - 1}, got {positive}")
    positive = int(positive)
    model, n_components = _pipeline(name, features, pca_components, seed, data.x_train, data.y_train)
    model.fit(data.x_train, data.y_train)
    val_probs = _probabilities(model, data.x_val, k)
    threshold = None
    if k == 2:
        if len(data.y_val) == 0:
            raise InputError(None, "the validation split is empty: the decision threshold is chosen on it")
        threshold = choose_threshold((data.y_val == positive).astype(np.int64), val_probs[:, positive])
    test_probs = _probabilities(model, data.x_test, k)
    pred = predict_labels(test_probs, threshold, positive=positive if k == 2 else 1)
    report = classification_report(data.y_test, test_probs, list(classes), threshold=threshold, positive=positive,
                                   groups=patient_ids(data.test_items), n_resamples=n_resamples, seed=seed)
    return {"name": name, "features": features, "report": report, "probs": test_probs, "pred": pred,
            "y_true": data.y_test, "threshold": threshold, "positive": positive, "n_components": n_components,
            "validation": {"y_true": data.y_val, "probs": val_probs}, "model": model}


def run_baseline(name: str, datalist: dict | str | os.PathLike, *, features: str = "pixels", image_size: int = 32,
                 pca_components: int = 50, seed: int = 0, positive: int | None = None, n_resamples: int = 1000,
                 train_items: list | None = None) -> dict:
    """Fit baseline ``name`` on ``train_items`` (default the training split) and score the test split.

    Returns ``{"report", "probs" (test, (N, K)), "pred", "y_true", "threshold" (None when K > 2), "positive",
    "validation": {"y_true", "probs"}, "n_components", "model", "name", "features"}``. Raises ValueError for an
    unknown ``name`` or ``features``.
    """
    _check_choice(name, BASELINES, "baseline")
    _check_choice(features, FEATURES, "features")
    datalist, _ = _load(datalist)
    data = _read_splits(datalist, image_size, train_items)
    return _score(name, features, data, datalist["classes"], pca_components=pca_components, seed=seed,
                  positive=positive, n_resamples=n_resamples)


def _input_folders(datalist: dict, path: Path | None, train_items: Sequence[dict] | None) -> list[Path]:
    folders = set() if path is None else {path.parent}
    items = [it for split in ("training", "validation", "test") for it in datalist.get(split, [])]
    folders.update(Path(it["image"]).parent for it in [*items, *(train_items or [])])
    return sorted(folders)


def run_baselines(datalist: dict | str | os.PathLike, out_dir: str | os.PathLike, *,
                  names: Sequence[str] = BASELINES, features: Sequence[str] = FEATURES, image_size: int = 32,
                  pca_components: int = 50, seed: int = 0, positive: int | None = None, n_resamples: int = 1000,
                  train_items: list | None = None) -> dict[str, dict]:
    """Run every baseline in ``names`` on every kind of ``features``; write their files; return the results.

    Writes ``out_dir/<name>_<features>/{metrics.json, metrics.md, predictions.csv}`` and ``out_dir/baselines.md``
    (one table of the headline metrics of all). ``datalist`` is a loaded datalist or its JSON file. Refuses
    (InputError) an ``out_dir`` inside a folder of the datalist or its images. Returns ``{"<name>_<features>":
    run_baseline's result}``.
    """
    names = [names] if isinstance(names, str) else list(names)
    features = [features] if isinstance(features, str) else list(features)
    for name in names:
        _check_choice(name, BASELINES, "baseline")
    for kind in features:
        _check_choice(kind, FEATURES, "features")
    datalist, path = _load(datalist)
    out_dir = Path(out_dir)
    refuse_output_inside(out_dir, _input_folders(datalist, path, train_items))
    data = _read_splits(datalist, image_size, train_items)
    classes = list(datalist["classes"])
    counts = dict(zip(classes, np.bincount(data.y_train, minlength=len(classes)).tolist(), strict=True))
    results = {}
    for name in names:
        for kind in features:
            tag = f"{name}_{kind}"
            logger.info("baseline %s on %s features (%d training images)", name, kind, len(data.y_train))
            result = _score(name, kind, data, classes, pca_components=pca_components, seed=seed,
                            positive=positive, n_resamples=n_resamples)
            extra = {"baseline": name, "features": kind, "image_size": image_size,
                     "pca_components": result["n_components"], "seed": seed, "class_weight": "balanced",
                     "threshold_rule": "balanced_accuracy" if result["threshold"] is not None else "argmax",
                     "threshold_chosen_on": "validation", "training_counts": counts,
                     "datalist": None if path is None else str(path)}
            write_scores(out_dir / tag, data.test_items, result["y_true"], result["probs"], result["pred"], classes,
                         result["report"], extra=extra, title=f"Baseline {name}, {kind} features")
            results[tag] = result
    rows = [(tag, result["report"]) for tag, result in results.items()]
    n_test_patients = next(iter(results.values()))["report"]["n_patients"] if results else len(data.y_test)
    summary = (f"# Classic baselines\n\nTrained on {len(data.y_train)} images ({counts}), pixels at "
               f"{image_size} x {image_size}, PCA up to {pca_components} components, seed {seed}; threshold chosen "
               f"on validation, scored on the test split ({len(data.y_test)} images from {n_test_patients} "
               "patients; intervals with the patient as the unit).\n\n"
               f"{outputs.headline_table(rows)}\n")
    atomic_write_text(out_dir / "baselines.md", summary)
    return results
