"""Provenance guards of the classifier experiment: refused before anything is trained, never merely warned about.

Synthetic images in validation or test; a synthetic set whose generator trained on a validation or test patient
(its ``provenance.source_datalist``); a set built from another datalist (or recording none) without
``allow_foreign_synthetic``; and, with the override, the reports saying where the set came from.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest

from medsynth.classify.arms import OWN_SOURCE
from medsynth.classify.engine import optimizer_factory
from medsynth.classify.experiment import ClassifierExperiment
from medsynth.classify.spec import ExperimentSpec
from medsynth.data.datalist import load_datalist, write_datalist
from medsynth.data.embedded import demo_datalist
from medsynth.data.training import TrainingData
from medsynth.errors import InputError
from medsynth.networks.classifiers import classifier

NETWORK = partial(classifier, "fracture_cnn", in_channels=3, num_classes=2, image_size=32)
TINY = {"image_size": 32, "batch_size": 16, "max_epochs": 1, "patience": 1, "n_resamples": 20, "log_interval": 1}


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> Path:
    """The classifier's datalist: 120 demo skin images (validation and test hold both classes)."""
    return demo_datalist("skin", n=120, root=tmp_path_factory.mktemp("prov-real") / "skin")


@pytest.fixture(scope="module")
def other(tmp_path_factory, real) -> Path:
    """Another real datalist (other seed, other patients): a foreign generator's training data."""
    path = demo_datalist("skin", n=60, seed=1, root=tmp_path_factory.mktemp("prov-other") / "skin")
    ours = {it["patient_id"] for s in ("training", "validation", "test") for it in load_datalist(real)[s]}
    assert not ours & {it["patient_id"] for it in load_datalist(path)["training"]}
    return path


def _synthetic_set(folder: Path, images_from: Path, source_datalist: str | Path | None) -> Path:
    """A synthetic set's datalist as SyntheticSetWriter writes it, recording ``source_datalist`` (None: none).

    Its images are malignant training images of ``images_from`` (real files of the right kind).
    """
    items = [{"image": it["image"], "label": 1, "source": "synthetic", "patient_id": f"synthetic-gan-{k:06d}"}
             for k, it in enumerate(it for it in load_datalist(images_from)["training"] if it["label"] == 1)]
    provenance: dict = {"bundle": "cdcgan", "seed": 0}
    if source_datalist is not None:
        provenance["source_datalist"] = str(source_datalist)
    datalist = {"task": "skin", "modality": "dermoscopy", "classes": ["benign", "malignant"], "channels": 3,
                "source": "synthetic", "provenance": provenance, "training": items, "validation": [], "test": []}
    return write_datalist(datalist, folder / "synthetic" / "datalist.json")


def _experiment(datalist: Path, out: Path, **spec) -> ClassifierExperiment:
    spec = {"output_dir": out / "runs", "model_path": None, **TINY, **spec}
    return ClassifierExperiment(TrainingData(datalist=datalist), NETWORK, optimizer_factory("adam"),
                                ExperimentSpec(**spec))


@pytest.mark.parametrize("split", ["validation", "test"])
def test_a_synthetic_image_in_validation_or_test_is_refused(real, tmp_path, split):
    datalist = load_datalist(real)
    for item in datalist[split][:2]:
        item["source"] = "synthetic"
    marked = [it["image"] for it in datalist[split][:2]]
    path = write_datalist(datalist, tmp_path / "augmented" / "datalist.json")
    with pytest.raises(InputError) as error:
        _experiment(path, tmp_path)
    assert error.value.path == str(path)
    assert f"the {split} split holds 2 synthetic image(s)" in error.value.reason
    assert marked[0] in error.value.reason


def test_synthetic_images_in_training_remain_allowed(real, tmp_path):
    datalist = load_datalist(real)
    for item in datalist["training"][:3]:
        item["source"] = "synthetic"
    _experiment(write_datalist(datalist, tmp_path / "augmented" / "datalist.json"), tmp_path)


@pytest.mark.parametrize("allow", [False, True])
def test_a_generator_trained_on_a_test_patient_is_refused_even_with_the_override(real, other, tmp_path, allow):
    ours = load_datalist(real)
    leaked = ours["test"][0]
    # the generator trained on another datalist that also holds one patient of our test split
    source = load_datalist(other)
    source["training"].append(dict(leaked))
    source_path = write_datalist(source, tmp_path / "gan-data" / "datalist.json")
    synthetic = _synthetic_set(tmp_path, other, source_path)
    with pytest.raises(InputError) as error:
        _experiment(real, tmp_path, arm="real,synthetic", synthetic_datalist=synthetic,
                    allow_foreign_synthetic=allow)
    assert error.value.path == str(synthetic)
    assert str(source_path.resolve()) in error.value.reason and leaked["patient_id"] in error.value.reason
    assert "1 patient(s)" in error.value.reason


def test_overlap_without_patient_ids_is_found_by_image_path(real, other, tmp_path):
    validation = load_datalist(real)["validation"]
    source = load_datalist(other)
    source["training"] += [{k: v for k, v in it.items() if k != "patient_id"} for it in validation[:3]]
    source_path = write_datalist(source, tmp_path / "gan-data" / "datalist.json")
    synthetic = _synthetic_set(tmp_path, other, source_path)
    with pytest.raises(InputError, match="3 patient") as error:
        _experiment(real, tmp_path, arm="synthetic", synthetic_datalist=synthetic, allow_foreign_synthetic=True)
    # the classifier's items have patient ids: those are named
    assert validation[0]["patient_id"] in error.value.reason


def test_a_set_from_this_datalist_is_accepted(real, tmp_path):
    synthetic = _synthetic_set(tmp_path, real, real)
    experiment = _experiment(real, tmp_path, arm="synthetic", synthetic_datalist=synthetic)
    assert experiment.synthetic_provenance == OWN_SOURCE == "source_datalist is this experiment's datalist"


@pytest.mark.parametrize("source", ["other", "missing", "unreadable"])
def test_a_foreign_set_is_refused_without_the_override(real, other, tmp_path, source):
    recorded = {"other": other, "missing": None, "unreadable": tmp_path / "gone" / "datalist.json"}[source]
    synthetic = _synthetic_set(tmp_path, other, recorded)
    with pytest.raises(InputError) as error:
        _experiment(real, tmp_path, arm="synthetic", synthetic_datalist=synthetic)
    reason = error.value.reason
    assert error.value.path == str(synthetic) and "allow_foreign_synthetic" in reason
    expected = {"other": f"source_datalist {Path(other).resolve()}, which is not this experiment's datalist",
                "missing": "records no source_datalist", "unreadable": "cannot be read"}[source]
    assert expected in reason


def test_a_foreign_set_with_the_override_runs_and_the_reports_say_so(real, other, tmp_path):
    synthetic = _synthetic_set(tmp_path, other, other)
    experiment = _experiment(real, tmp_path, arm="real,synthetic", synthetic_datalist=synthetic,
                             allow_foreign_synthetic=True)
    experiment.run()
    line = f"source_datalist {Path(other).resolve()} is not this experiment's datalist (allowed by " \
           "allow_foreign_synthetic)"
    runs = tmp_path / "runs"
    syn = json.loads((runs / "synthetic" / "seed_0" / "train" / "metrics.json").read_text())
    assert syn["synthetic_provenance"].startswith(line)
    assert json.loads((runs / "real" / "seed_0" / "train" / "metrics.json").read_text())["synthetic_provenance"] \
        is None
    assert line in (runs / "comparison.md").read_text()
    assert json.loads((runs / "comparison.json").read_text())["synthetic_provenance"]["synthetic"].startswith(line)


def test_a_missing_source_with_the_override_is_accepted_and_said(real, other, tmp_path):
    synthetic = _synthetic_set(tmp_path, other, None)
    experiment = _experiment(real, tmp_path, arm="synthetic", synthetic_datalist=synthetic,
                             allow_foreign_synthetic=True)
    assert "records no source_datalist" in experiment.synthetic_provenance
    assert "allowed by allow_foreign_synthetic" in experiment.synthetic_provenance


def test_allow_foreign_synthetic_reads_config_words(tmp_path):
    assert ExperimentSpec(output_dir=tmp_path).allow_foreign_synthetic is False
    assert ExperimentSpec(output_dir=tmp_path, allow_foreign_synthetic="true").allow_foreign_synthetic is True
    assert ExperimentSpec(output_dir=tmp_path, allow_foreign_synthetic="false").allow_foreign_synthetic is False
    with pytest.raises(ValueError, match="allow_foreign_synthetic must be true or false"):
        ExperimentSpec(output_dir=tmp_path, allow_foreign_synthetic="maybe")
