"""TrainingData: which datalist a bundle trains on, the facts its networks need, and rows-first GAN tensors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from medsynth.data.datalist import write_datalist
from medsynth.data.training import TrainingData, gan_transform, resolve_datalist
from medsynth.errors import InputError


def _datalist(tmp_path, labels, classes=("benign", "malignant"), name="datalist.json", channels=None):
    """A datalist of 8x12 grey PNGs (one per label) in tmp_path/images; returns its path."""
    images = tmp_path / "images"
    images.mkdir(exist_ok=True)
    items = []
    for i, label in enumerate(labels):
        path = images / f"img{i}.png"
        Image.fromarray(np.full((8, 12), 10 * i, dtype=np.uint8)).save(path)
        items.append({"image": str(path), "label": label, "patient_id": f"p{i}", "source": "real"})
    datalist = {"task": "t", "modality": "other", "classes": list(classes), "training": items,
                "validation": [], "test": []}
    if channels:
        datalist["channels"] = channels
    return write_datalist(datalist, tmp_path / name)


def test_datalist_argument_wins(tmp_path, png_tree):
    path = _datalist(tmp_path, [0, 1])
    assert resolve_datalist(path, dataset_dir=png_tree, output_dir=tmp_path / "out") == path


def test_dataset_dir_with_a_datalist_file_uses_it(tmp_path):
    path = _datalist(tmp_path, [0, 1])
    assert resolve_datalist(None, dataset_dir=tmp_path) == tmp_path / "datalist.json" == path


def test_class_folders_get_a_datalist_in_output_dir_not_in_the_data(tmp_path, png_tree):
    before = sorted(p.relative_to(png_tree) for p in png_tree.rglob("*"))
    path = resolve_datalist(None, dataset_dir=png_tree, output_dir=tmp_path / "run")
    assert path == tmp_path / "run" / "datalist" / "datalist.json"
    assert sorted(p.relative_to(png_tree) for p in png_tree.rglob("*")) == before
    data = TrainingData(datalist=path)
    assert data.classes == ["benign", "malignant"] and data.channels == 1


def test_class_folders_refuse_an_output_inside_the_data(png_tree):
    with pytest.raises(InputError, match="inside the input folder"):
        resolve_datalist(None, dataset_dir=png_tree, output_dir=png_tree / "run")


def test_missing_dataset_dir_names_it(tmp_path):
    with pytest.raises(InputError, match="dataset_dir not found") as info:
        TrainingData(dataset_dir=tmp_path / "nowhere", output_dir=tmp_path / "out")
    assert "nowhere" in str(info.value)


def test_no_argument_means_the_cached_demo(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSYNTH_CACHE", str(tmp_path / "cache"))
    from medsynth.data import embedded

    calls = []
    monkeypatch.setattr(embedded, "demo_datalist", lambda task: calls.append(task) or "x.json")
    assert str(resolve_datalist(demo_task="xray")) == "x.json" and calls == ["xray"]


def test_counts_minority_and_conditional_classes(tmp_path):
    data = TrainingData(datalist=_datalist(tmp_path, [0, 0, 0, 1]))
    assert data.counts() == {"benign": 3, "malignant": 1}
    assert data.minority_class == 1 and data.num_classes == data.conditional_classes() == 2


def test_single_class_datalist_is_refused_for_a_conditional_model(tmp_path):
    path = _datalist(tmp_path, [0, 0, 0])
    with pytest.raises(InputError, match="at least 2 classes with training images") as info:
        TrainingData(datalist=path).conditional_classes()
    assert str(path) in str(info.value) and "'benign' (3 images)" in str(info.value)


def test_train_class_keeps_one_class_in_every_split(tmp_path):
    path = _datalist(tmp_path, [0, 0, 1, 1, 1])
    data = TrainingData(datalist=path, train_class="minority")
    assert data.train_class == 0 and {it["label"] for it in data.datalist["training"]} == {0}
    assert len(data.datalist["training"]) == 2
    assert TrainingData(datalist=path, train_class="malignant").train_class == 1
    assert TrainingData(datalist=path, train_class="majority").train_class == 1
    with pytest.raises(InputError, match="is not a class"):
        TrainingData(datalist=path, train_class="nevus")


def test_input_folders_cover_every_class_even_when_filtered(tmp_path):
    data = TrainingData(datalist=_datalist(tmp_path, [0, 1]), train_class=1)
    assert tmp_path.resolve() in data.input_folders and (tmp_path / "images").resolve() in data.input_folders


def test_other_modality_is_read_as_grey_or_rgb(tmp_path):
    assert TrainingData(datalist=_datalist(tmp_path, [0, 1])).preset == "xray"
    assert TrainingData(datalist=_datalist(tmp_path, [0, 1], name="rgb.json", channels=3)).preset == "dermoscopy"


def test_gan_tensors_are_rows_first_in_symmetric_range(tmp_path):
    """An 8x12 (rows x columns) image comes out (1, 8, 12) with its bright corner where it was."""
    pixels = np.zeros((8, 12), dtype=np.uint8)
    pixels[0, 0], pixels[7, 11] = 255, 127
    Image.fromarray(pixels).save(tmp_path / "a.png")
    x = gan_transform("xray", (8, 12))({"image": str(tmp_path / "a.png")})["image"]
    assert tuple(x.shape) == (1, 8, 12)
    assert x[0, 0, 0] == pytest.approx(1.0) and x[0, 1, 1] == pytest.approx(-1.0)
    assert x[0, 7, 11] == pytest.approx(127 / 255 * 2 - 1, abs=1e-6)


def test_augmented_chain_keeps_shape_and_range(tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    chain = gan_transform("dermoscopy", 16, augment=True, seed=0)
    x = chain({"image": str(tmp_path / "a.png")})["image"]
    assert tuple(x.shape) == (3, 16, 16) and torch.all(x >= -1.0001) and torch.all(x <= 1.0001)


def test_dataset_of_an_empty_split_names_the_datalist(tmp_path):
    data = TrainingData(datalist=_datalist(tmp_path, [0, 1]))
    with pytest.raises(InputError, match="split 'validation' of the datalist is empty") as info:
        data.dataset("validation", data.transform(8))
    assert "datalist.json" in str(info.value)


def test_loaded_datalist_is_the_validated_one(tmp_path):
    path = _datalist(tmp_path, [0, 1])
    raw = json.loads(path.read_text())
    raw["training"][0]["label"] = 5
    path.write_text(json.dumps(raw))
    with pytest.raises(InputError, match="not a class index"):
        TrainingData(datalist=path)
