"""Controls that isolate the effect of synthetic images: the ``oversample_matched`` arm (the synthetic arm's class
counts from repeated real images) and the compute-matched schedule (``steps_per_epoch``)."""

from __future__ import annotations

import json
import math
from collections import Counter
from functools import partial
from pathlib import Path

import pytest

from medsynth.classify.arms import ARMS, NEEDS_SYNTHETIC, arm_stages, repeat_to_match, select_synthetic
from medsynth.classify.engine import optimizer_factory, steps_per_epoch
from medsynth.classify.experiment import ClassifierExperiment
from medsynth.classify.spec import ExperimentSpec
from medsynth.data.datalist import load_datalist, write_datalist
from medsynth.data.embedded import demo_datalist
from medsynth.data.training import TrainingData
from medsynth.networks.classifiers import classifier

CLASSES = ["benign", "malignant"]
NETWORK = partial(classifier, "fracture_cnn", in_channels=3, num_classes=2, image_size=32)
TINY = {"image_size": 32, "batch_size": 16, "max_epochs": 1, "patience": 1, "n_resamples": 20, "log_interval": 1,
        "model_path": None}
STEP_KEYS = ("steps_per_epoch", "optimizer_steps", "training_images")


def _items(n_benign: int, n_malignant: int, source: str = "real", prefix: str = "r") -> list[dict]:
    return ([{"image": f"/d/{prefix}b{i}.png", "label": 0, "source": source} for i in range(n_benign)]
            + [{"image": f"/d/{prefix}m{i}.png", "label": 1, "source": source} for i in range(n_malignant)])


# -- the oversample_matched arm ----------------------------------------------------------------------------------
def test_oversample_matched_is_an_arm_that_needs_the_synthetic_set():
    assert "oversample_matched" in ARMS and "oversample_matched" in NEEDS_SYNTHETIC
    with pytest.raises(ValueError, match="needs a synthetic datalist"):
        arm_stages("oversample_matched", _items(5, 5), None, CLASSES)


@pytest.mark.parametrize("selection", [{"target_ratio": "1:1"}, {"count": 93}, {}])
@pytest.mark.parametrize("seed", [0, 3])
def test_oversample_matched_trains_on_the_synthetic_arms_counts(selection, seed):
    """The demo's 525:70 with 455 synthetic malignant images (1:1), a count split over both classes, or all."""
    real, syn = _items(525, 70), _items(10, 455, "synthetic", "s")
    chosen = select_synthetic(real, syn, CLASSES, seed=seed, **selection)
    (synthetic,) = arm_stages("synthetic", real, chosen, CLASSES, seed=seed)
    (matched,) = arm_stages("oversample_matched", real, chosen, CLASSES, seed=seed)
    assert matched.counts == synthetic.counts and len(matched.training) == len(synthetic.training)
    assert matched.scored and matched.rebalance is None and not matched.augment
    # real images only: the originals once, and copies marked with their repeat number
    assert all(it["source"] == "real" and it["image"].startswith("/d/r") for it in matched.training)
    assert [it for it in matched.training if "repeat" not in it] == real
    assert all(it["repeat"] >= 1 for it in matched.training[len(real):])


def test_repeats_are_as_even_as_possible():
    real = _items(525, 70)
    chosen = _items(2, 455, "synthetic", "s")
    (stage,) = arm_stages("oversample_matched", real, chosen, CLASSES, seed=0)
    uses = Counter(it["image"] for it in stage.training)
    malignant = [uses[it["image"]] for it in real if it["label"] == 1]
    # 455 = 6 x 70 + 35: every malignant image 7 times, 35 of them an 8th time
    assert sorted(Counter(malignant).items()) == [(7, 35), (8, 35)]
    benign = [uses[it["image"]] for it in real if it["label"] == 0]
    assert sorted(Counter(benign).items()) == [(1, 523), (2, 2)]
    # whole copies first (repeat 1..6 of every image), then the remainder (repeat 7)
    copies = stage.training[len(real):]
    assert Counter(it["repeat"] for it in copies if it["label"] == 1) == {**{k: 70 for k in range(1, 7)}, 7: 35}


def test_repeats_are_seeded():
    real, chosen = _items(50, 7), _items(0, 20, "synthetic", "s")

    def picked(seed: int) -> list[str]:
        return [it["image"] for it in repeat_to_match(real, chosen, CLASSES, seed=seed) if it["repeat"] == 3]

    assert len(picked(0)) == 20 - 2 * 7 and picked(0) == picked(0)
    assert picked(0) != picked(1)
    assert repeat_to_match(real, chosen, CLASSES, seed=5) == repeat_to_match(real, chosen, CLASSES, seed=5)


def test_a_synthetic_class_without_real_images_cannot_be_matched():
    with pytest.raises(ValueError, match="cannot repeat real 'malignant' images to match the 3 synthetic ones"):
        arm_stages("oversample_matched", _items(5, 0), _items(0, 3, "synthetic", "s"), CLASSES)


# -- steps per epoch -----------------------------------------------------------------------------------------------
def test_steps_per_epoch_rules():
    assert steps_per_epoch("own", 1050, 32) is None
    assert steps_per_epoch(40, 1050, 32) == 40
    assert steps_per_epoch("matched", 1050, 32) == 33 and steps_per_epoch("matched", 595, 32) == 19
    # distributed: each process reads ceil(N / world_size) images, as a DistributedSampler hands them out
    assert steps_per_epoch("matched", 1050, 32, world_size=2) == math.ceil(525 / 32) == 17
    assert steps_per_epoch("matched", 1051, 16, world_size=4) == math.ceil(263 / 16) == 17
    with pytest.raises(ValueError, match="steps_per_epoch must be 'matched', 'own' or an integer >= 1"):
        steps_per_epoch(0, 10, 2)


# -- the experiment ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real(tmp_path_factory) -> Path:
    """The classifier's datalist: 120 demo skin images (validation and test hold both classes)."""
    return demo_datalist("skin", n=120, root=tmp_path_factory.mktemp("controls-real") / "skin")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory, real) -> Path:
    """A synthetic set generated (as its provenance says) from ``real``: 24 "malignant" images (files of the right
    kind: images of ``real``'s training split, marked synthetic)."""
    training = load_datalist(real)["training"]
    items = [{"image": it["image"], "label": 1, "source": "synthetic", "patient_id": f"synthetic-gan-{k:06d}"}
             for k, it in enumerate(training[:24])]
    datalist = {"task": "skin", "modality": "dermoscopy", "classes": CLASSES, "channels": 3, "source": "synthetic",
                "provenance": {"bundle": "cdcgan", "source_datalist": str(real)}, "training": items,
                "validation": [], "test": []}
    return write_datalist(datalist, tmp_path_factory.mktemp("controls-syn") / "synthetic" / "datalist.json")


def _run(real: Path, out: Path, **spec) -> ClassifierExperiment:
    experiment = ClassifierExperiment(TrainingData(datalist=real), NETWORK, optimizer_factory("adam"),
                                      ExperimentSpec(output_dir=out, **{**TINY, **spec}))
    experiment.run()
    return experiment


def _report(out: Path, arm: str, stage: str = "train") -> dict:
    name = "stage.json" if stage == "pretrain" else "metrics.json"
    return json.loads((out / arm / "seed_0" / stage / name).read_text())


def test_matched_steps_count_the_synthetic_arm_even_when_only_real_runs(real, synthetic, tmp_path):
    """Arms run in separate commands into one output_dir train the same number of steps per epoch."""
    n_real, n_syn = len(load_datalist(real)["training"]), 24
    matched = math.ceil((n_real + n_syn) / TINY["batch_size"])
    out = tmp_path / "runs"
    _run(real, out, arm="real", synthetic_datalist=synthetic)
    _run(real, out, arm="oversample_matched,synthetic", synthetic_datalist=synthetic)
    reports = {arm: _report(out, arm) for arm in ("real", "oversample_matched", "synthetic")}
    for arm, report in reports.items():
        assert report["steps_per_epoch"] == matched and report["steps_per_epoch_rule"] == "matched", arm
        assert report["optimizer_steps"] == matched * report["epochs_run"], arm
    assert reports["real"]["training_images"] == n_real
    assert reports["synthetic"]["training_images"] == reports["oversample_matched"]["training_images"] == n_real + 24
    assert reports["oversample_matched"]["training_counts"] == reports["synthetic"]["training_counts"]


def test_own_steps_are_one_pass_and_an_integer_is_that_many(real, synthetic, tmp_path):
    n_real = len(load_datalist(real)["training"])
    _run(real, tmp_path / "own", steps_per_epoch="own")
    own = _report(tmp_path / "own", "real")
    assert own["steps_per_epoch"] == n_real // TINY["batch_size"]  # the loader's whole batches
    assert own["optimizer_steps"] == own["steps_per_epoch"] * own["epochs_run"]
    assert own["training_images"] == n_real and own["steps_per_epoch_rule"] == "own"
    # a warm start: the pre-training's stage.json records its steps too
    _run(real, tmp_path / "fixed", arm="warm_start", synthetic_datalist=synthetic, steps_per_epoch="3",
         max_epochs=2, patience=5)
    pretrain, finetune = _report(tmp_path / "fixed", "warm_start", "pretrain"), _report(tmp_path / "fixed",
                                                                                          "warm_start", "finetune")
    assert all(key in pretrain for key in STEP_KEYS)
    assert pretrain["training_images"] == 24 + sum(it["label"] == 0 for it in load_datalist(real)["training"])
    assert finetune["training_images"] == n_real
    assert pretrain["epochs"] == finetune["epochs_run"] == 2  # patience 5: no early stop
    for report in (pretrain, finetune):
        assert report["steps_per_epoch"] == 3 and report["optimizer_steps"] == 3 * 2
