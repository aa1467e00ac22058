"""The classifier bundle end to end on tiny phantom sets: every arm, the threshold rule, inference, export."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medsynth.data.datalist import load_datalist
from medsynth.data.embedded import demo_datalist
from medsynth.demo.phantoms import skin_lesion
from medsynth.errors import InputError
from tests.bundles.conftest import REPO, TINY_CLS, bundle_workflow, root_cause, run_workflow

ARMS_WITHOUT = ("real", "classic_aug", "rebalance")
ARMS_WITH = ("oversample_matched", "synthetic", "warm_start", "synthetic_only", "phases")


@pytest.fixture(scope="module")
def skin(tmp_path_factory) -> str:
    """120 demo skin images, 7.5:1 (validation and test hold both classes)."""
    return demo_datalist("skin", n=120, root=tmp_path_factory.mktemp("cls-demo") / "skin")


@pytest.fixture(scope="module")
def synthetic_set(tmp_path_factory, skin) -> str:
    """A synthetic set's datalist: 24 malignant phantoms marked "source": "synthetic", generated (as its
    provenance records, like a GAN bundle's inference writes it) from the classifier's own datalist ``skin``."""
    root = tmp_path_factory.mktemp("cls-synthetic")
    rng = np.random.default_rng(7)
    items = []
    for k in range(24):
        image, _ = skin_lesion(rng, malignant=True, size=64)
        Image.fromarray(image).save(root / f"syn_{k:03d}.png")
        items.append({"image": f"syn_{k:03d}.png", "label": 1, "source": "synthetic"})
    datalist = {"task": "skin", "modality": "dermoscopy", "classes": ["benign", "malignant"], "channels": 3,
                "source": "synthetic", "provenance": {"bundle": "cdcgan", "source_datalist": str(skin)},
                "training": items, "validation": [], "test": []}
    (root / "datalist.json").write_text(json.dumps(datalist))
    return str(root / "datalist.json")


def _train(tmp_path: Path, skin: str, **override):
    return bundle_workflow("classifier", "train", tmp_path, **{**TINY_CLS, "datalist": skin, **override})


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("arm", ARMS_WITHOUT + ARMS_WITH)
def test_every_arm_trains_and_scores_the_real_test_split(arm, skin, synthetic_set, tmp_path):
    extra = {"synthetic_datalist": synthetic_set} if arm in ARMS_WITH else {}
    run_workflow(_train(tmp_path, skin, arm=arm, **extra))
    out = tmp_path / "train" / arm / "seed_0"
    stages = {"warm_start": ["finetune"], "phases": ["phase_1", "phase_2"]}.get(arm, ["train"])
    assert sorted(p.name for p in out.iterdir()) == sorted(stages + (["pretrain"] if arm == "warm_start" else []))
    test = load_datalist(skin)["test"]
    for stage in stages:
        folder = out / stage
        report = json.loads((folder / "metrics.json").read_text())
        assert report["n"] == len(test) and report["threshold_chosen_on"] == "validation"
        for name in ("accuracy", "balanced_accuracy", "roc_auc", "pr_auc", "recall/malignant"):
            m = report["metrics"][name]
            assert m["ci_low"] <= m["value"] <= m["ci_high"], name
        rows = _rows(folder / "predictions.csv")
        assert [r["image"] for r in rows] == [it["image"] for it in test]
        assert all((folder / f).stat().st_size > 0 for f in ("roc.png", "pr.png", "confusion.png", "model.pt"))
    # what each stage trained on
    counts = {s: json.loads((out / s / "metrics.json").read_text())["training_counts"] for s in stages}
    real = {"benign": 74, "malignant": 10}  # the demo's training split; + 24 synthetic, in 2 phases of 12
    expected = {"synthetic": {"train": {"benign": 74, "malignant": 34}},
                "oversample_matched": {"train": {"benign": 74, "malignant": 34}},  # 10 real malignant, 24 repeats
                "synthetic_only": {"train": {"benign": 74, "malignant": 24}},
                "warm_start": {"finetune": real},
                "phases": {"phase_1": {"benign": 74, "malignant": 22}, "phase_2": {"benign": 74, "malignant": 34}}}
    assert counts == expected.get(arm, {"train": real})
    # compute-matched: with the synthetic set given, every stage makes the synthetic arm's steps per epoch (74 + 34
    # images); without, the real arm's (74 + 10)
    steps = {json.loads((out / s / "metrics.json").read_text())["steps_per_epoch"] for s in stages}
    assert steps == {math.ceil((108 if arm in ARMS_WITH else 84) / TINY_CLS["batch_size"])}
    assert (tmp_path / "model.pt").is_file() and (tmp_path / "model.pt.json").is_file()
    assert not (Path(skin).parent / "runs").exists()


def test_threshold_is_chosen_on_validation_never_on_test(skin, tmp_path, monkeypatch):
    import medsynth.stats.classification as cls

    calls = []
    real_choose = cls.choose_threshold

    def spy(y, p, *args, **kwargs):
        calls.append(np.asarray(y).copy())
        return real_choose(y, p, *args, **kwargs)

    monkeypatch.setattr(cls, "choose_threshold", spy)
    run_workflow(_train(tmp_path, skin))
    datalist = load_datalist(skin)
    validation = [it["label"] for it in datalist["validation"]]
    assert len(calls) == 1 and calls[0].tolist() == validation
    assert len(datalist["test"]) != len(validation) or calls[0].tolist() != [it["label"] for it in datalist["test"]]
    report = json.loads((tmp_path / "train" / "real" / "seed_0" / "train" / "metrics.json").read_text())
    # the validation predictions on disk give back the threshold that was used on test
    rows = _rows(tmp_path / "train" / "real" / "seed_0" / "train" / "validation_predictions.csv")
    p_val = np.array([float(r["prob_malignant"]) for r in rows])
    assert report["threshold"] == pytest.approx(real_choose(np.array(validation), p_val))


def test_arms_run_apart_are_compared_on_the_same_test_images(skin, synthetic_set, tmp_path):
    run_workflow(_train(tmp_path, skin, arm="real"))
    run_workflow(_train(tmp_path, skin, arm="synthetic", synthetic_datalist=synthetic_set, seeds=1))
    comparison = json.loads((tmp_path / "train" / "comparison.json").read_text())
    tests = comparison["seeds"]["0"]["synthetic"]
    assert set(tests) >= {"mcnemar", "roc_auc", "balanced_accuracy", "minority_recall"}
    assert 0.0 <= tests["mcnemar"]["p_value"] <= 1.0
    table = (tmp_path / "train" / "comparison.md").read_text()
    assert "synthetic" in table and "real" in table
    # the set was generated from this datalist (its provenance says so), and the reports say it
    assert "synthetic_provenance (synthetic): source_datalist is this experiment's datalist" in table


def test_seeds_repeat_an_arm_and_report_mean_and_sd(skin, tmp_path):
    run_workflow(_train(tmp_path, skin, seeds=2, seed=3))
    summary = json.loads((tmp_path / "train" / "real" / "metrics.json").read_text())
    assert sorted(summary["seeds"]) == ["3", "4"]
    values = [summary["seeds"][s]["train"]["metrics"]["balanced_accuracy"]["value"] for s in ("3", "4")]
    agg = summary["aggregate"]["train"]["balanced_accuracy"]
    assert agg["mean"] == pytest.approx(np.mean(values)) and agg["sd"] == pytest.approx(np.std(values, ddof=1))


def test_inference_predicts_a_split_and_a_folder_with_the_trained_threshold(skin, tmp_path):
    run_workflow(_train(tmp_path, skin))
    info = json.loads((tmp_path / "model.pt.json").read_text())
    trained = _rows(tmp_path / "train" / "real" / "seed_0" / "train" / "predictions.csv")
    assert info["architecture"] == "fracture_cnn"  # inference builds what training built, unasked
    wf = bundle_workflow("classifier", "inference", tmp_path, datalist=skin, output_dir=str(tmp_path / "inf"))
    run_workflow(wf)
    rows = _rows(tmp_path / "inf" / "predictions.csv")
    # the exported network and threshold give the training run's test predictions back
    assert [r["pred"] for r in rows] == [r["pred"] for r in trained]
    assert np.allclose([float(r["prob_malignant"]) for r in rows], [float(r["prob_malignant"]) for r in trained],
                       atol=1e-5)
    assert json.loads((tmp_path / "inf" / "metrics.json").read_text())["threshold"] == info["threshold"]
    folder = Path(load_datalist(skin)["test"][0]["image"]).parent
    wf = bundle_workflow("classifier", "inference", tmp_path, datalist=skin, input_dir=str(folder),
                         output_dir=str(tmp_path / "folder"))
    run_workflow(wf)
    assert len(_rows(tmp_path / "folder" / "predictions.csv")) == len(list(folder.glob("*.png")))
    assert not (tmp_path / "folder" / "metrics.json").exists()


@pytest.mark.parametrize("override, message", [
    ({"arm": "synthetic"}, "needs synthetic_datalist"),
    ({"arm": "real,gan"}, "unknown arm"),
    ({"rebalance": "smote", "arm": "rebalance"}, "unknown rebalance"),
])
def test_bad_configuration_is_refused_with_a_clear_message(skin, tmp_path, override, message):
    with pytest.raises(Exception) as error:
        run_workflow(_train(tmp_path, skin, **override))
    assert message in str(root_cause(error.value))


def test_a_synthetic_image_in_the_test_split_is_refused_before_training(skin, tmp_path):
    datalist = load_datalist(skin)
    datalist["test"][0]["source"] = "synthetic"
    marked = tmp_path / "marked" / "datalist.json"
    marked.parent.mkdir()
    marked.write_text(json.dumps(datalist))
    with pytest.raises(Exception) as error:
        run_workflow(_train(tmp_path, str(marked)))
    cause = root_cause(error.value)
    assert isinstance(cause, InputError) and cause.path == str(marked)
    assert "the test split holds 1 synthetic image(s)" in cause.reason
    assert not (tmp_path / "train").exists()


def test_output_inside_the_data_is_refused(skin, tmp_path):
    inside = Path(skin).parent / "runs"
    with pytest.raises(Exception) as error:
        run_workflow(_train(tmp_path, skin, output_dir=str(inside)))
    cause = root_cause(error.value)
    assert isinstance(cause, InputError) and "inside the input folder" in str(cause)
    assert not inside.exists()


def test_metadata_describes_the_network_train_yaml_builds():
    """MONAI's verify_net_in_out feeds the metadata's input shape to network_def and checks the output channels."""
    from monai.bundle import verify_net_in_out

    configs = REPO / "bundles" / "classifier" / "configs"
    verify_net_in_out(net_id="network_def", meta_file=str(configs / "metadata.json"),
                      config_file=str(configs / "train.yaml"), n=2)
    meta = json.loads((configs / "metadata.json").read_text())["network_data_format"]
    assert meta["outputs"]["pred"]["num_channels"] == 2
    assert meta["inputs"]["image"]["spatial_shape"] == [64, 64]


def test_ckpt_export_of_model_pt(skin, tmp_path):
    """``ckpt_export`` turns models/model.pt into TorchScript that predicts what the trained network predicts."""
    import torch
    from monai.bundle import ckpt_export

    from medsynth.networks.classifiers import classifier

    run_workflow(_train(tmp_path, skin, max_epochs=1))
    configs = REPO / "bundles" / "classifier" / "configs"
    ckpt_export(net_id="network_def", filepath=str(tmp_path / "model.ts"), ckpt_file=str(tmp_path / "model.pt"),
                meta_file=str(configs / "metadata.json"), config_file=str(configs / "train.yaml"), datalist=skin,
                architecture="fracture_cnn", image_size=32)
    scripted = torch.jit.load(str(tmp_path / "model.ts"))
    eager = classifier("fracture_cnn", in_channels=3, num_classes=2, image_size=32)
    eager.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(scripted.eval()(x), eager.eval()(x))


def test_three_class_ct_rois_with_the_liver_lesion_cnn(tmp_path):
    """Frid-Adar et al.'s setting on the CT phantoms: 1-channel HU ROIs, three classes, SGD with Nesterov momentum;
    no threshold (arg-max) and macro one-vs-rest ROC-AUC."""
    ct = demo_datalist("ct", n=60, root=tmp_path / "ct")
    run_workflow(_train(tmp_path, ct, architecture="liver_cnn", optimizer="sgd", lr=0.01, arm="real,classic_aug"))
    report = json.loads((tmp_path / "train" / "real" / "seed_0" / "train" / "metrics.json").read_text())
    assert report["classes"] == ["cyst", "metastasis", "hemangioma"]
    assert report["threshold"] is None and report["threshold_rule"] == "argmax"
    assert report["metrics"]["roc_auc"]["method"] != "delong"
    assert np.array(report["confusion_matrix"]).sum() == len(load_datalist(ct)["test"])
    comparison = json.loads((tmp_path / "train" / "comparison.json").read_text())
    assert "classic_aug" in comparison["seeds"]["0"]
