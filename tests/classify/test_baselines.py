"""Classic scikit-learn baselines on a small demo skin set: sklearn-equal metrics, validation-only threshold,
determinism, files written by run_baselines."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    matthews_corrcoef,
    precision_score,
    recall_score,
    roc_auc_score,
)

from medsynth.classify import baselines as bl
from medsynth.data.builders import datalist_from_csv
from medsynth.data.datalist import load_datalist
from medsynth.demo.writer import write_demo_dataset
from medsynth.errors import InputError
from medsynth.stats.tables import read_predictions_csv

SIZE = 16
N_RESAMPLES = 100


@pytest.fixture(scope="module", autouse=True)
def fast():
    """One torch and one BLAS thread (on a busy 2-core machine their thread pools make each tiny resize or
    PCA 10-50x slower) and 50 trees a forest instead of 200."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch, threadpool_limits(1):
        patch.setattr(bl, "N_TREES", 50)
        yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def skin(tmp_path_factory):
    """A demo skin set of 120 images as a datalist, split 50/25/25 by patient.

    The demo's 7.5:1 benign:malignant ratio leaves a 60-image set with a single malignant test image (70/15/15);
    120 images split 50/25/25 give 7 malignant training, 3 validation and 4 test images.
    """
    root = tmp_path_factory.mktemp("skin")
    demo = write_demo_dataset("skin", root / "files", n=120, seed=0)
    path = datalist_from_csv(demo.root / "metadata.csv", demo.root / "images", root / "datalist",
                             image_col="image_name", label_col="target", patient_col="patient_id",
                             classes=["benign", "malignant"], task="skin", modality="dermoscopy",
                             fractions=(0.5, 0.25, 0.25), seed=0)
    return path, load_datalist(path)


@pytest.fixture(scope="module")
def run(skin):
    """``run(name, features)``: run_baseline on the skin set (seed 0), computed once per module."""
    cache = {}

    def get(name: str, features: str) -> dict:
        if (name, features) not in cache:
            cache[name, features] = bl.run_baseline(name, skin[1], features=features, image_size=SIZE,
                                                    n_resamples=N_RESAMPLES)
        return cache[name, features]
    return get


def _labels(datalist, split):
    return np.array([it["label"] for it in datalist[split]])


def test_pixel_features(skin):
    _, datalist = skin
    x, y = bl.pixel_features(datalist, "validation", image_size=SIZE)
    assert x.shape == (len(datalist["validation"]), 3 * SIZE * SIZE) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.std() > 0
    np.testing.assert_array_equal(y, _labels(datalist, "validation"))
    with pytest.raises(InputError, match="has 3 channel.*have 1"):  # RGB images in a datalist that says grey
        bl.pixel_features({**datalist, "channels": 1}, "validation", image_size=SIZE)


@pytest.mark.parametrize("features", bl.FEATURES)
@pytest.mark.parametrize("name", bl.BASELINES)
def test_report_equals_sklearn(skin, run, name, features):
    _, datalist = skin
    result = run(name, features)
    y, probs, pred, report = result["y_true"], result["probs"], result["pred"], result["report"]
    np.testing.assert_array_equal(y, _labels(datalist, "test"))
    assert result["positive"] == 1 and report["positive_class"] == "malignant"  # the training minority
    assert probs.shape == (len(y), 2) and np.allclose(probs.sum(1), 1.0)
    assert report["threshold"] == result["threshold"] is not None
    np.testing.assert_array_equal(pred, np.where(probs[:, 1] >= result["threshold"], 1, 0))
    if features == "pca":
        assert result["n_components"] == min(50, len(datalist["training"]) - 1)
    m = {k: v["value"] for k, v in report["metrics"].items()}
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert m["mcc"] == pytest.approx(matthews_corrcoef(y, pred), abs=1e-12)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, probs[:, 1]))
    assert m["pr_auc"] == pytest.approx(average_precision_score(y, probs[:, 1]))
    for c, cls in enumerate(("benign", "malignant")):
        assert m[f"recall/{cls}"] == pytest.approx(recall_score(y, pred, pos_label=c))
        if (pred == c).any():
            assert m[f"precision/{cls}"] == pytest.approx(precision_score(y, pred, pos_label=c))
    assert report["confusion_matrix"] == [[int(np.sum((y == i) & (pred == j))) for j in (0, 1)] for i in (0, 1)]


def test_threshold_is_chosen_on_validation(skin, monkeypatch):
    _, datalist = skin
    calls = []

    def recording(y_val, p_val, *args, **kwargs):
        calls.append((np.asarray(y_val).copy(), np.asarray(p_val).copy()))
        return 0.37

    monkeypatch.setattr(bl, "choose_threshold", recording)
    result = bl.run_baseline("logistic_regression", datalist, image_size=SIZE, n_resamples=N_RESAMPLES)
    ((y_seen, p_seen),) = calls
    np.testing.assert_array_equal(y_seen, (_labels(datalist, "validation") == 1).astype(int))
    np.testing.assert_array_equal(p_seen, result["validation"]["probs"][:, 1])
    # never the test split (which here holds as many images as validation, with other labels)
    assert len(y_seen) != len(result["y_true"]) or not np.array_equal(y_seen, result["y_true"])
    assert result["threshold"] == result["report"]["threshold"] == 0.37
    np.testing.assert_array_equal(result["pred"], (result["probs"][:, 1] >= 0.37).astype(int))


def test_deterministic_for_a_seed(skin, run):
    _, datalist = skin
    for name, features in (("svm", "pca"), ("random_forest", "pixels")):
        again = bl.run_baseline(name, datalist, features=features, image_size=SIZE, n_resamples=N_RESAMPLES)
        np.testing.assert_array_equal(again["probs"], run(name, features)["probs"])
        assert again["report"] == run(name, features)["report"]
    other = bl.run_baseline("random_forest", datalist, image_size=SIZE, n_resamples=N_RESAMPLES, seed=1)
    assert not np.array_equal(other["probs"], run("random_forest", "pixels")["probs"])  # the seed reaches it


def test_logistic_regression_beats_chance(run):
    # The phantom classes differ in lesion statistics (a malignant phantom is larger, more irregular and more
    # varied in colour), so even a linear model on 16 x 16 pixels ranks malignant above benign test lesions.
    # Balanced accuracy > 0.5 alone would be a weak check on four malignant test images; the ranking is not.
    assert run("logistic_regression", "pixels")["report"]["metrics"]["roc_auc"]["value"] > 0.6


def test_train_items_and_positive(skin):
    _, datalist = skin
    benign = [it for it in datalist["training"] if it["label"] == 0][:5]
    malignant = [it for it in datalist["training"] if it["label"] == 1]
    result = bl.run_baseline("logistic_regression", datalist, image_size=SIZE, n_resamples=N_RESAMPLES,
                             train_items=benign + malignant)
    assert result["positive"] == 0  # now benign is the training minority
    assert result["report"]["positive_class"] == "benign"
    explicit = bl.run_baseline("logistic_regression", datalist, image_size=SIZE, n_resamples=N_RESAMPLES,
                               positive=1)
    assert explicit["report"]["positive_class"] == "malignant"


def test_multiclass_uses_argmax(skin, monkeypatch):
    _, datalist = skin
    relabelled = {"classes": ["a", "b", "c"], "modality": "dermoscopy"}
    for split in ("training", "validation", "test"):
        relabelled[split] = [{**it, "label": i % 3} for i, it in enumerate(datalist[split])]

    def forbidden(*args, **kwargs):
        raise AssertionError("no threshold with more than two classes")
    monkeypatch.setattr(bl, "choose_threshold", forbidden)
    result = bl.run_baseline("logistic_regression", relabelled, features="pca", image_size=SIZE,
                             n_resamples=N_RESAMPLES)
    assert result["threshold"] is None and result["report"]["threshold"] is None
    assert result["probs"].shape == (len(datalist["test"]), 3)
    np.testing.assert_array_equal(result["pred"], result["probs"].argmax(1))


def test_unknown_name_or_features(skin, tmp_path):
    _, datalist = skin
    with pytest.raises(ValueError, match="logistic_regression, svm, random_forest"):
        bl.run_baseline("knn", datalist)
    with pytest.raises(ValueError, match="pixels, pca"):
        bl.run_baseline("svm", datalist, features="hog")
    with pytest.raises(ValueError, match="valid values"):
        bl.run_baselines(datalist, tmp_path / "out", features=("pixels", "raw"))
    assert not (tmp_path / "out").exists()


def test_run_baselines_writes_files(skin, run, tmp_path):
    path, datalist = skin
    out = tmp_path / "baselines"
    results = bl.run_baselines(str(path), out, names=("logistic_regression", "svm"), features="pca",
                               image_size=SIZE, n_resamples=N_RESAMPLES)
    tags = ["logistic_regression_pca", "svm_pca"]
    assert list(results) == tags
    table = (out / "baselines.md").read_text()
    for tag in tags:
        folder = out / tag
        assert sorted(p.name for p in folder.iterdir()) == ["metrics.json", "metrics.md", "predictions.csv"]
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["metrics"] == results[tag]["report"]["metrics"]
        assert metrics["threshold_chosen_on"] == "validation" and metrics["datalist"] == str(path)
        assert (metrics["baseline"], metrics["features"]) == tuple(tag.rsplit("_", 1))
        images, y, probs, pred, classes = read_predictions_csv(folder / "predictions.csv")
        assert images == [it["image"] for it in datalist["test"]] and classes == ["benign", "malignant"]
        np.testing.assert_array_equal(probs, results[tag]["probs"])
        np.testing.assert_array_equal(pred, results[tag]["pred"])
        np.testing.assert_array_equal(probs, run(*tag.rsplit("_", 1))["probs"])  # = run_baseline's
        assert "chosen on validation" in (folder / "metrics.md").read_text()
        assert f"| {tag} | " in table
    assert "minority recall (malignant) [95 % CI]" in table


def test_run_baselines_refuses_out_dir_in_image_folder(skin):
    _, datalist = skin
    images = datalist["training"][0]["image"].rsplit("/", 1)[0]
    with pytest.raises(InputError, match="inside the input folder") as info:
        bl.run_baselines(datalist, f"{images}/baselines", names=("logistic_regression",), image_size=SIZE)
    assert info.value.path == f"{images}/baselines"
