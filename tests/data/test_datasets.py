"""Datasets over a datalist split: memory, disk and no cache (medsynth.data.datasets)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import CacheDataset, Dataset, PersistentDataset

from medsynth.data.datalist import build_datalist, load_datalist, write_datalist
from medsynth.data.datasets import dataset_from_datalist_file, make_dataset
from medsynth.data.transforms import RandTorchIO2Dd, load_preset
from medsynth.errors import InputError

HU = {"a": 50, "b": 50, "c": 150, "d": 150}  # constant HU per image; a, b: patient p1, class 0; c, d: p2, 1


@pytest.fixture
def ct_datalist(tmp_path: Path) -> Path:
    """Four 16x16 HU ROIs in ``tmp_path/data`` and a CT datalist (all in training) in ``tmp_path/out``."""
    data = tmp_path / "data"
    data.mkdir()
    items = []
    for i, (name, hu) in enumerate(HU.items()):
        nib.save(nib.Nifti1Image(np.full((16, 16), hu, dtype=np.int16), np.eye(4)), data / f"{name}.nii.gz")
        items.append({"image": str(data / f"{name}.nii.gz"), "label": i // 2, "patient_id": f"p{i // 2 + 1}"})
    datalist = build_datalist(items, ["cyst", "metastasis"], task="liver", modality="ct", fractions=(1, 0, 0),
                              extra={"window": [-100, 200]})
    return write_datalist(datalist, tmp_path / "out" / "datalist.json")


@pytest.mark.parametrize(("cache", "kind"), [("memory", CacheDataset), ("disk", PersistentDataset),
                                             ("none", Dataset)])
def test_make_dataset_gives_windowed_images_and_class_indices(tmp_path, ct_datalist, cache, kind):
    datalist = load_datalist(ct_datalist)
    ds = make_dataset(datalist, "training", load_preset("ct", spatial_size=(8, 8), window=(-100, 200)),
                      cache=cache, cache_dir=tmp_path / "cache")
    assert isinstance(ds, kind) and len(ds) == 4
    by_name = {Path(it["image"]).name: it for it in datalist["training"]}
    for i in range(len(ds)):
        item = ds[i]
        name = Path(datalist["training"][i]["image"]).name
        assert item["label"] == by_name[name]["label"] and isinstance(item["label"], int)
        assert item["image"].shape == (1, 8, 8)
        assert item["image"].mean().item() == pytest.approx((HU[name[0]] + 100) / 300)


def test_persistent_dataset_is_invalidated_by_a_changed_transform(tmp_path, ct_datalist):
    datalist, cache = load_datalist(ct_datalist), tmp_path / "cache"

    def first_image_mean(window: tuple[float, float]) -> float:
        preset = load_preset("ct", window=window)
        ds = make_dataset(datalist, "training", preset, cache="disk", cache_dir=cache)
        return ds[0]["image"].mean().item()

    assert first_image_mean((-100, 200)) == pytest.approx(0.5)  # 50 HU in the liver window
    assert len(list(cache.glob("*.pt"))) == 1
    assert first_image_mean((-1000, 1000)) == pytest.approx(0.525)  # not the stale cached 0.5
    assert len(list(cache.glob("*.pt"))) == 2
    assert first_image_mean((-100, 200)) == pytest.approx(0.5)  # an equal transform hashes equal: reused
    assert len(list(cache.glob("*.pt"))) == 2


def test_disk_cache_needs_a_folder_outside_the_data(tmp_path, ct_datalist):
    datalist, preset = load_datalist(ct_datalist), load_preset("ct")
    with pytest.raises(InputError, match="inside the input folder"):
        make_dataset(datalist, "training", preset, cache="disk", cache_dir=tmp_path / "data" / "cache")
    with pytest.raises(ValueError, match="cache_dir"):
        make_dataset(datalist, "training", preset, cache="disk")
    with pytest.raises(ValueError, match="unknown cache"):
        make_dataset(datalist, "training", preset, cache="ram")
    with pytest.raises(ValueError, match="empty"):
        make_dataset(datalist, "test", preset)


def test_dataset_from_datalist_file_uses_the_window_and_augments_after_the_cache(ct_datalist):
    plain = dataset_from_datalist_file(ct_datalist, "training", size=32)
    assert plain[2]["image"].shape == (1, 32, 32) and plain[2]["label"] == 1
    assert plain[2]["image"].mean().item() == pytest.approx((150 + 100) / 300)
    augmented = dataset_from_datalist_file(ct_datalist, "training", size=32, augment=True, seed=0)
    assert isinstance(augmented, CacheDataset)
    assert isinstance(augmented.transform.transforms[-1], RandTorchIO2Dd)
    assert augmented.transform.get_index_of_first(lambda t: isinstance(t, RandTorchIO2Dd)) == len(
        plain.transform.transforms)  # the cache holds the preset's output; augmentation runs per access
    draws = [augmented[0]["image"] for _ in range(4)]
    assert all(d.shape == (1, 32, 32) and d.dtype == torch.float32 for d in draws)
