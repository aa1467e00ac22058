"""Each GAN bundle trains, checkpoints, exports models/model.pt and generates a synthetic set, at tiny sizes.

The model-zoo pattern (ConfigWorkflow: initialize, check_properties, run, finalize) on small demo sets written
to a temporary folder; everything a run writes goes to ``tmp_path``.
"""

from __future__ import annotations

import csv
import json

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from medsynth.data.datalist import load_datalist, write_datalist
from medsynth.data.training import gan_transform
from medsynth.errors import InputError
from medsynth.networks.dcgan import Generator
from tests.bundles.conftest import GENERATOR_KEYS, TINY, bundle_workflow, root_cause, run_workflow

# bundle -> (demo set, extra overrides): DCGAN trains one class of the grey X-ray set (its minority has ~9
# training images, so batches of 4), the others the RGB skin set
CASES = {
    "dcgan": ("xray", {"batch_size": 4}),
    "cdcgan": ("skin", {}),
    "acgan": ("skin", {}),
    "wgan_gp": ("skin", {"n_critic": 2}),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bundle_trains_and_generates(name, tiny_sets, tmp_path):
    task, extra = CASES[name]
    datalist = tiny_sets[task]
    run_workflow(bundle_workflow(name, "train", tmp_path, datalist=str(datalist), **{**TINY, **extra}))

    out = tmp_path / "train"
    checkpoints = sorted(p.name for p in (out / "checkpoints").glob("*.pt"))
    assert any(n.startswith("checkpoint_final") for n in checkpoints), checkpoints
    assert any(n.startswith("checkpoint_key_metric") for n in checkpoints), checkpoints  # best by FID
    assert (out / "samples" / "samples_latest.png").is_file()
    with open(out / "fid.csv") as f:
        assert len(list(csv.DictReader(f))) == TINY["max_epochs"]
    events = EventAccumulator(str(out / "tensorboard")).Reload()
    assert {"g_loss", "d_loss", "d_real", "d_fake", "fid"} <= set(events.Tags()["scalars"])
    assert events.Tags()["images"], "the sample grid goes to TensorBoard too"

    model = tmp_path / "model.pt"
    state = torch.load(model, weights_only=True)
    assert not any("parametrizations" in k for k in state), "spectral norm is baked into plain weights"

    # no sizes and no datalist: inference reads both from model.pt.json
    run_workflow(bundle_workflow(name, "inference", tmp_path, num_per_class=3))
    synthetic = load_datalist(tmp_path / "synthetic" / "datalist.json")
    real = load_datalist(datalist)
    assert synthetic["source"] == "synthetic" and synthetic["classes"] == real["classes"]
    labels = [it["label"] for it in synthetic["training"]]
    if name == "dcgan":  # one class: the minority of the training split
        counts = [sum(it["label"] == k for it in real["training"]) for k in range(len(real["classes"]))]
        assert labels == [counts.index(min(counts))] * 3
    else:
        assert sorted(labels) == sorted(list(range(len(real["classes"]))) * 3)
    transform = gan_transform(real["modality"], TINY["image_size"], real.get("window"))
    image = transform({"image": synthetic["training"][0]["image"]})["image"]
    assert tuple(image.shape) == (real.get("channels", 1), TINY["image_size"], TINY["image_size"])
    assert (tmp_path / "synthetic" / "grid.png").is_file()
    with open(tmp_path / "synthetic" / "manifest.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(labels) and {r["bundle"] for r in rows} == {name}


def test_ckpt_export_of_model_pt(tiny_sets, tmp_path):
    """``python -m monai.bundle ckpt_export`` turns models/model.pt into TorchScript with the same outputs."""
    from monai.bundle import ckpt_export

    run_workflow(bundle_workflow("cdcgan", "train", tmp_path, datalist=str(tiny_sets["skin"]),
                                 **{**TINY, "max_epochs": 1, "g_spectral_norm": True}))
    configs = bundle_workflow("cdcgan", "inference", tmp_path).config_root_path
    sizes = {k: TINY[k] for k in GENERATOR_KEYS}
    ckpt_export(net_id="network_def", filepath=str(tmp_path / "model.ts"), ckpt_file=str(tmp_path / "model.pt"),
                meta_file=str(configs / "metadata.json"), config_file=str(configs / "inference.yaml"),
                model_path=str(tmp_path / "model.pt"))  # the architecture comes from model.pt.json
    scripted = torch.jit.load(str(tmp_path / "model.ts"))
    eager = Generator(channels=3, num_classes=2, **sizes)
    eager.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))
    z, y = torch.randn(4, TINY["latent_size"]), torch.tensor([0, 1, 0, 1])
    with torch.no_grad():
        torch.testing.assert_close(scripted.eval()(z, y), eager.eval()(z, y))


def test_stop_and_resume_matches_an_uninterrupted_run(tiny_sets, tmp_path):
    """2 epochs in one go == 1 epoch, then ``--resume_from`` its final checkpoint for the 2nd (same weights)."""
    common = {**TINY, "datalist": str(tiny_sets["skin"]), "fid_interval": 1}
    run_workflow(bundle_workflow("cdcgan", "train", tmp_path / "a", **common))
    run_workflow(bundle_workflow("cdcgan", "train", tmp_path / "b", **{**common, "max_epochs": 1}))
    first = next((tmp_path / "b" / "train" / "checkpoints").glob("checkpoint_final*.pt"))
    run_workflow(bundle_workflow("cdcgan", "train", tmp_path / "b", **common, resume_from=str(first),
                                 output_dir=str(tmp_path / "b" / "resumed")))

    def final(folder):
        return torch.load(next(folder.glob("checkpoint_final*.pt")), weights_only=True)

    a, b = final(tmp_path / "a" / "train" / "checkpoints"), final(tmp_path / "b" / "resumed" / "checkpoints")
    assert a["trainer"]["iteration"] == b["trainer"]["iteration"] > 0
    for key in ("g_network", "d_network", "g_ema"):
        for k, v in a[key].items():
            torch.testing.assert_close(b[key][k], v, rtol=0, atol=0, msg=f"{key}.{k}")


# -- bad configuration: clear messages --------------------------------------------------------------------------


def _fails(tmp_path, **override) -> BaseException:
    workflow = bundle_workflow("cdcgan", "train", tmp_path, **{**TINY, **override})
    with pytest.raises(Exception) as info:
        run_workflow(workflow)
    return root_cause(info.value)


def test_unknown_loss_name_lists_the_valid_ones(tiny_sets, tmp_path):
    error = _fails(tmp_path, datalist=str(tiny_sets["skin"]), loss="hingee")
    assert isinstance(error, ValueError) and "hingee" in str(error)
    assert all(name in str(error) for name in ("hinge", "wasserstein", "bce", "mse"))


def test_image_size_the_network_cannot_produce(tiny_sets, tmp_path):
    error = _fails(tmp_path, datalist=str(tiny_sets["skin"]), image_size=50)
    assert isinstance(error, ValueError) and "50" in str(error)


def test_conditional_model_on_a_single_class_datalist(tiny_sets, tmp_path):
    real = load_datalist(tiny_sets["skin"])
    one = {**real, **{s: [it for it in real[s] if it["label"] == 0] for s in ("training", "validation", "test")}}
    path = write_datalist(one, tmp_path / "one-class" / "datalist.json")
    error = _fails(tmp_path, datalist=str(path))
    assert isinstance(error, InputError) and str(path) in str(error)
    assert "at least 2 classes" in str(error) and "dcgan" in str(error)


def test_conditional_model_without_labels(tiny_sets, tmp_path):
    raw = json.loads(tiny_sets["skin"].read_text())
    for item in raw["training"]:
        item.pop("label")
    path = tmp_path / "unlabelled" / "datalist.json"
    path.parent.mkdir()
    base = tiny_sets["skin"].parent
    for split in ("training", "validation", "test"):
        for item in raw[split]:
            item["image"] = str(base / item["image"])
    path.write_text(json.dumps(raw))
    error = _fails(tmp_path, datalist=str(path))
    assert isinstance(error, InputError) and str(path) in str(error) and "label" in str(error)


def test_missing_fid_weights_stop_the_run_before_anything_is_written(tiny_sets, tmp_path, monkeypatch):
    """--fid_features inception without a weights file fails at initialize, naming the file, with no output."""
    from medsynth.errors import MissingWeightsError

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.delenv("MEDSYNTH_FID_WEIGHTS", raising=False)
    workflow = bundle_workflow("cdcgan", "train", tmp_path, datalist=str(tiny_sets["skin"]), fid_features="inception",
                               **TINY)
    with pytest.raises(Exception) as info:
        workflow.initialize()
    error = root_cause(info.value)
    assert isinstance(error, MissingWeightsError) and "pt_inception" in str(error)
    assert not (tmp_path / "train").exists()
