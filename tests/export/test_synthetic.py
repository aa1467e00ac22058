"""Synthetic sets: counts, latents, file round trips through the training chain, provenance, atomic publication."""

from __future__ import annotations

import csv
import hashlib
import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import torch
from ignite.engine import Events
from monai.engines import SupervisedEvaluator
from monai.inferers import SimpleInferer
from PIL import Image
from torch.utils.data import DataLoader

from medsynth.data.datalist import load_datalist, write_datalist
from medsynth.data.training import gan_transform
from medsynth.errors import InputError
from medsynth.export import (
    MANIFEST_COLUMNS,
    LatentDataset,
    SyntheticSetWriter,
    latent_vector,
    prepare_latent_batch,
    reading_preset,
    synthetic_counts,
)
from medsynth.networks.dcgan import Generator

CLASSES = ["benign", "malignant"]
H, W = 8, 12  # not square: a transposed file would not even have the right shape


def skin_datalist(benign: int, malignant: int) -> dict:
    """A datalist dict with ``benign``/``malignant`` training items and a few validation items."""
    labels = [0] * benign + [1] * malignant
    training = [{"image": f"t{k}.png", "label": y, "patient_id": f"p{k}"} for k, y in enumerate(labels)]
    validation = [{"image": f"v{k}.png", "label": 1, "patient_id": f"v{k}"} for k in range(40)]
    return {"task": "skin", "modality": "dermoscopy", "classes": CLASSES, "training": training,
            "validation": validation, "test": []}


def fake_checkpoint(tmp_path: Path, network: torch.nn.Module | None = None) -> Path:
    path = tmp_path / "bundle" / "models" / "model.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save((network or torch.nn.Linear(2, 2)).state_dict(), path)
    return path


def make_writer(tmp_path: Path, out: Path, modality: str = "dermoscopy", channels: int | None = None,
                **kwargs) -> SyntheticSetWriter:
    args = {"bundle_name": "cdcgan", "bundle_version": "0.1.0", "checkpoint": fake_checkpoint(tmp_path),
            "seed": 7, "classes": CLASSES, "modality": modality, "channels": channels, **kwargs}
    return SyntheticSetWriter(out, **args)


def random_images(n: int, channels: int, seed: int = 0) -> torch.Tensor:
    """``(n, channels, H, W)`` in [-1, 1] with a bright top-left 2x3 corner on a dark rest."""
    images = torch.rand(n, channels, H, W, generator=torch.Generator().manual_seed(seed)) - 1.0
    images[:, :, :2, :3] = 1.0
    return images


def read_manifest(out: Path) -> list[dict]:
    with open(out / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


# -- latents and counts ------------------------------------------------------------------------------------------


def test_latent_vector_is_a_pure_function_of_seed_and_index():
    z = latent_vector(3, 7, 16)
    assert z.shape == (16,) and z.dtype == torch.float32
    assert torch.equal(z, latent_vector(3, 7, 16))
    expected = np.random.default_rng([3, 7]).standard_normal(16).astype(np.float32)  # the documented formula
    assert np.array_equal(z.numpy(), expected)
    others = [latent_vector(s, i, 16) for s, i in ((3, 8), (4, 7), (7, 3), (3 + 2**32, 7))]
    assert all(not torch.allclose(z, o) for o in others)  # incl. seeds equal in their low 32 bits
    with pytest.raises(ValueError, match=">= 0"):
        latent_vector(-1, 0, 4)


def test_latent_dataset_orders_classes_and_numbers_images_globally():
    dataset = LatentDataset({1: 2, 0: 3, 2: 0}, latent_size=5, seed=11)
    assert len(dataset) == 5
    items = [dataset[i] for i in range(5)]
    assert [int(it["label"]) for it in items] == [0, 0, 0, 1, 1] and [it["index"] for it in items] == list(range(5))
    assert items[3]["label"].dtype == torch.int64 and torch.equal(items[3]["z"], latent_vector(11, 3, 5))
    batch = next(iter(DataLoader(dataset, batch_size=4)))
    z, label, args, kwargs = prepare_latent_batch(batch, torch.device("cpu"))
    assert z.shape == (4, 5) and torch.equal(label, torch.tensor([0, 0, 0, 1])) and args[0] is label and kwargs == {}
    unconditional = next(iter(DataLoader(LatentDataset({1: 2}, 5, conditional=False), batch_size=2)))
    assert prepare_latent_batch(unconditional)[2] == (None,)


def test_target_ratio_fills_the_minority_up_to_the_ratio():
    datalist = skin_datalist(525, 70)
    # by hand: 525 / 2.39 = 219.67 -> 220 malignant wanted, 70 real -> 150 to generate; benign is the majority
    for ratio in ("2.39:1", "2.39", 2.39, "239:100"):
        assert synthetic_counts(datalist, target_ratio=ratio) == {0: 0, 1: 150}
    assert synthetic_counts(datalist, target_ratio="2.39:1", classes=["malignant"]) == {1: 150}
    assert synthetic_counts(datalist, target_ratio="7.5:1") == {0: 0, 1: 0}  # 525 / 7.5 = 70: already met
    # 300 / 1.5 is exactly 200 (a float division gives 200.00000000000003, whose ceiling would be 201)
    assert synthetic_counts(skin_datalist(300, 50), target_ratio=1.5) == {0: 0, 1: 150}
    assert synthetic_counts(datalist, target_ratio=1) == {0: 0, 1: 455}


def test_per_class_forms_and_errors():
    datalist = skin_datalist(10, 4)
    assert synthetic_counts(datalist, per_class=5) == {0: 5, 1: 5}
    assert synthetic_counts(datalist, per_class={"malignant": 6}) == {0: 0, 1: 6}
    assert synthetic_counts(datalist, per_class={1: 6}, classes=[1]) == {1: 6}
    assert synthetic_counts(datalist, per_class=3, classes=["benign"]) == {0: 3}
    for kwargs, message in [({}, "exactly one"), ({"per_class": 1, "target_ratio": 2}, "exactly one"),
                            ({"target_ratio": "0.5"}, "below 1"), ({"target_ratio": "1:2"}, "below 1"),
                            ({"target_ratio": "two"}, "not a ratio"), ({"per_class": {"naevus": 3}}, "naevus"),
                            ({"per_class": 2, "classes": ["melanoma"]}, "melanoma"), ({"per_class": -1}, ">= 0"),
                            ({"per_class": {"benign": 2}, "classes": [1]}, "outside")]:
        with pytest.raises(ValueError, match=message):
            synthetic_counts(datalist, **kwargs)


# -- files read back through the training chain ----------------------------------------------------------------------


@pytest.mark.parametrize(("modality", "channels", "window", "tolerance"), [
    ("dermoscopy", 3, None, 1 / 127.5),
    ("xray", 1, None, 2 / 65535),
    ("ct", 1, (-100.0, 200.0), 2 / 300),  # 1 HU of a 300 HU window
    ("other", 1, None, 2 / 65535),
    ("other", 3, None, 1 / 127.5),
])
def test_written_files_read_back_through_gan_transform(tmp_path, modality, channels, window, tolerance):
    images = random_images(4, channels)
    writer = make_writer(tmp_path, tmp_path / "synthetic", modality, channels, window=window)
    writer.add(images, torch.tensor([0, 1, 1, 0]), torch.arange(4))
    out = writer.finish()
    datalist = load_datalist(out / "datalist.json")
    assert datalist.get("window") == (list(window) if window else None)
    # "other" has no preset of its own: grey files read as X-ray, RGB ones as dermoscopy
    chain = gan_transform(reading_preset(modality, channels), (H, W), datalist.get("window"))
    suffix = ".nii.gz" if modality == "ct" else ".png"
    for item in datalist["training"]:
        assert item["image"].endswith(suffix)
        back = torch.as_tensor(chain({"image": item["image"]})["image"])
        assert back.shape == (channels, H, W)
        assert (back - images[item["latent_index"]]).abs().max() <= tolerance + 1e-6
        assert back[:, :2, :3].min() > 0.99 and back[:, -2:, -3:].max() <= 0.0  # the bright corner stays top-left


def test_ct_file_is_int16_hu_with_an_lps_ordered_affine(tmp_path):
    import nibabel as nib

    writer = make_writer(tmp_path, tmp_path / "synthetic", "ct", window=(-100, 200), spacing=(0.5, 0.75))
    writer.add(torch.full((1, 1, H, W), 0.0), [1], [0])  # the window's middle: 50 HU
    nifti = nib.load(next((writer.finish() / "images" / "malignant").iterdir()))
    assert nifti.get_data_dtype() == np.int16 and nifti.shape == (W, H)
    assert np.all(np.asanyarray(nifti.dataobj) == 50)
    assert np.allclose(nifti.affine, np.diag([-0.5, -0.75, 1.0, 1.0])) and nib.aff2axcodes(nifti.affine) == (
        "L", "P", "S")


# -- provenance --------------------------------------------------------------------------------------------------


def test_manifest_datalist_and_grid(tmp_path):
    source = tmp_path / "real" / "datalist.json"
    real_image = tmp_path / "real" / "images" / "r0.png"
    real_image.parent.mkdir(parents=True)
    Image.fromarray(np.zeros((H, W, 3), dtype=np.uint8)).save(real_image)
    real = {"task": "skin", "modality": "dermoscopy", "classes": CLASSES, "channels": 3,
            "training": [{"image": str(real_image), "label": 0, "patient_id": "r0", "source": "real"}]}
    write_datalist(real, source)
    writer = make_writer(tmp_path, tmp_path / "synthetic", classes=None, modality=None, source_datalist=source,
                         input_folders=[tmp_path / "real"], grid_per_class=3)
    writer.add(random_images(5, 3), [1, 1, 1, 1, 0], [0, 1, 2, 3, 4])
    out = writer.finish()

    rows, checkpoint = read_manifest(out), tmp_path / "bundle" / "models" / "model.pt"
    assert list(rows[0]) == list(MANIFEST_COLUMNS) and len(rows) == 5
    assert [r["latent_index"] for r in rows] == ["0", "1", "2", "3", "4"]
    assert rows[0]["file"] == "images/malignant/cdcgan_malignant_000000.png" and rows[4]["class"] == "benign"
    for row in rows:
        assert row["file_sha256"] == hashlib.sha256((out / row["file"]).read_bytes()).hexdigest()
        assert row["checkpoint_sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
        assert row["checkpoint"] == "model.pt" and row["seed"] == "7" and row["bundle_version"] == "0.1.0"
        assert datetime.fromisoformat(row["created"]).utcoffset().total_seconds() == 0

    synthetic = load_datalist(out / "datalist.json")
    assert synthetic["source"] == "synthetic" and synthetic["task"] == "skin" and synthetic["channels"] == 3
    assert synthetic["provenance"]["counts"] == {"benign": 1, "malignant": 4}
    assert synthetic["provenance"]["source_datalist"] == str(source.absolute())
    assert synthetic["provenance"]["checkpoint_sha256"] == rows[0]["checkpoint_sha256"]
    items = synthetic["training"]
    assert {it["source"] for it in items} == {"synthetic"} and synthetic["validation"] == synthetic["test"] == []
    assert len({it["patient_id"] for it in items}) == 5 and items[0]["patient_id"] == "synthetic-cdcgan-000000"
    merged = load_datalist(source)
    merged["training"] += items
    load_datalist(write_datalist(merged, tmp_path / "merged" / "datalist.json"))  # loads: no leak, files exist

    with Image.open(out / "grid.png") as grid:  # 2 rows (benign, malignant) of 3 tiles of 8x12 plus padding 2
        assert grid.mode == "RGB" and grid.height == 2 * (H + 2) + 2 and grid.width > 3 * (W + 2) + 2


# -- atomic publication ------------------------------------------------------------------------------------------


def test_nothing_is_published_before_finish_and_a_rerun_replaces_the_set(tmp_path):
    out = tmp_path / "synthetic"
    writer = make_writer(tmp_path, out)
    writer.add(random_images(3, 3), [0, 1, 1], [0, 1, 2])
    assert not out.exists()  # a crash here leaves only the hidden staging folder
    writer.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]

    first = make_writer(tmp_path, out)
    first.add(random_images(3, 3), [0, 1, 1], [0, 1, 2])
    first.finish()
    manifest = (out / "manifest.csv").read_bytes()
    second = make_writer(tmp_path, out, bundle_version="0.2.0")
    second.add(random_images(2, 3, seed=1), [1, 1], [0, 1])
    assert (out / "manifest.csv").read_bytes() == manifest  # unfinished: the previous set is untouched
    second.finish()
    rows = read_manifest(out)
    assert [r["bundle_version"] for r in rows] == ["0.2.0", "0.2.0"]
    assert sorted(p.relative_to(out).as_posix() for p in (out / "images").rglob("*.png")) == [
        "images/malignant/cdcgan_malignant_000000.png", "images/malignant/cdcgan_malignant_000001.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "synthetic"]  # no staging or old set left
    with pytest.raises(InputError, match="previous synthetic set"):
        make_writer(tmp_path, out, overwrite=False)


def test_refuses_foreign_folders_and_inputs(tmp_path):
    (tmp_path / "results" / "notes.txt").parent.mkdir()
    (tmp_path / "results" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not a synthetic set") as caught:
        make_writer(tmp_path, tmp_path / "results")
    assert caught.value.path == str(tmp_path / "results") and (tmp_path / "results" / "notes.txt").exists()
    data = tmp_path / "data"
    data.mkdir()
    with pytest.raises(InputError, match="inside the input folder"):
        make_writer(tmp_path, data / "synthetic", input_folders=[data])
    with pytest.raises(InputError, match="contains the input"):
        make_writer(tmp_path, tmp_path, input_folders=[data])
    with pytest.raises(InputError, match="checkpoint not found"):
        SyntheticSetWriter(tmp_path / "s", bundle_name="b", bundle_version="1", checkpoint=tmp_path / "no.pt",
                           classes=CLASSES, modality="xray")
    with pytest.raises(ValueError, match="channel"):
        make_writer(tmp_path, tmp_path / "s", "ct", channels=3)


def test_empty_or_incomplete_sets_are_not_published(tmp_path):
    out = tmp_path / "synthetic"
    with pytest.raises(ValueError, match="no images were generated"):
        make_writer(tmp_path, out).finish()
    writer = make_writer(tmp_path, out, counts={0: 1, 1: 2})
    writer.add(random_images(2, 3), [0, 1], [0, 1])
    with pytest.raises(ValueError, match="expected"):
        writer.finish()
    writer.add(random_images(1, 3), [0], [0])
    with pytest.raises(ValueError, match="written already"):
        writer.add(random_images(1, 3), [1], [0])
    with pytest.raises(ValueError, match="NaN"):
        writer.add(torch.full((1, 3, H, W), float("nan")), [1], [5])
    assert not out.exists()


# -- ignite: MONAI's SupervisedEvaluator drives the generator ---------------------------------------------------------


def evaluator(generator: torch.nn.Module, dataset: LatentDataset, writer: SyntheticSetWriter) -> SupervisedEvaluator:
    return SupervisedEvaluator(device=torch.device("cpu"), val_data_loader=DataLoader(dataset, batch_size=4),
                               network=generator, prepare_batch=prepare_latent_batch, inferer=SimpleInferer(),
                               decollate=False, val_handlers=[writer])


def test_supervised_evaluator_writes_a_set_that_regenerates_from_its_manifest(tmp_path):
    torch.manual_seed(0)
    generator = Generator(latent_size=8, image_size=16, channels=1, num_blocks=2, base_channels=4, num_classes=2)
    counts = {0: 3, 1: 6}
    out = tmp_path / "synthetic"
    writer = make_writer(tmp_path, out, "xray", checkpoint=fake_checkpoint(tmp_path, generator), seed=5,
                         counts=counts)
    evaluator(generator, LatentDataset(counts, latent_size=8, seed=5), writer).run()

    rows = read_manifest(out)
    assert [int(r["label"]) for r in rows] == [0] * 3 + [1] * 6 and len(load_datalist(out / "datalist.json")[
        "training"]) == 9
    row = rows[7]  # any single image: from its row alone
    generator.eval()
    with torch.no_grad():
        image = generator(latent_vector(int(row["seed"]), int(row["latent_index"]), 8)[None],
                          torch.tensor([int(row["label"])]))
    back = torch.as_tensor(gan_transform("xray", 16)({"image": str(out / row["file"])})["image"])
    assert (back - image[0]).abs().max() <= 2 / 65535 + 1e-4


def test_unconditional_run_and_failed_or_terminated_runs_publish_nothing(tmp_path):
    generator = Generator(latent_size=8, image_size=16, channels=3, num_blocks=2, base_channels=4)
    out = tmp_path / "synthetic"
    engine = evaluator(generator, LatentDataset({1: 5}, 8, conditional=False), make_writer(tmp_path, out))
    engine.run()
    assert sorted(p.name for p in (out / "images" / "malignant").iterdir())[-1] == "cdcgan_malignant_000004.png"
    manifest = (out / "manifest.csv").read_bytes()

    engine = evaluator(generator, LatentDataset({0: 9}, 8), make_writer(tmp_path, out))
    engine.add_event_handler(Events.ITERATION_COMPLETED(once=2), lambda e: e.terminate())
    engine.run()
    engine = evaluator(generator, LatentDataset({0: 9}, 8), make_writer(tmp_path, out))

    def fail(_):
        raise RuntimeError("out of memory")

    engine.add_event_handler(Events.ITERATION_COMPLETED(once=2), fail)
    with pytest.raises(RuntimeError, match="out of memory"):
        engine.run()
    assert (out / "manifest.csv").read_bytes() == manifest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "synthetic"]
    assert json.loads((out / "datalist.json").read_text())["provenance"]["counts"] == {"malignant": 5}
