"""The datalist JSON: round trip, MONAI compatibility, and refusal of inconsistent files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from monai.data import load_decathlon_datalist

from medsynth.data.datalist import build_datalist, class_counts, load_datalist, write_datalist
from medsynth.data.splits import SPLIT_VERSION
from medsynth.errors import InputError


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def header(**extra) -> dict:
    return {"task": "t", "modality": "other", "classes": ["a", "b"], **extra}


def write_json(path: Path, content: dict) -> Path:
    path.write_text(json.dumps(content))
    return path


@pytest.fixture
def round_trip(tmp_path):
    """A datalist in ``tmp_path/out`` with 4 images under it and 2 outside it (one per patient)."""
    inside = [touch(tmp_path / "out" / "images" / f"i{k}.png") for k in range(4)]
    outside = [touch(tmp_path / "elsewhere" / f"o{k}.png") for k in range(2)]
    items = [{"image": str(p), "label": k % 2, "patient_id": f"p{k}"} for k, p in enumerate(inside + outside)]
    datalist = build_datalist(items, ["a", "b"], task="t", modality="other", fractions=(0.5, 0.25, 0.25))
    return write_datalist(datalist, tmp_path / "out" / "datalist.json"), items


def test_write_stores_relative_paths_inside_and_absolute_outside(round_trip):
    path, items = round_trip
    written = json.loads(path.read_text())
    stored = {it["image"] for split in ("training", "validation", "test") for it in written[split]}
    assert stored == {f"images/i{k}.png" for k in range(4)} | {items[4]["image"], items[5]["image"]}


def test_load_resolves_every_path_back(round_trip):
    path, items = round_trip
    loaded = load_datalist(path)
    found = {(it["image"], it["label"], it["patient_id"], it["source"])
             for split in ("training", "validation", "test") for it in loaded[split]}
    expected = {(str(Path(it["image"]).resolve()), it["label"], it["patient_id"], "real") for it in items}
    assert found == expected
    assert sum(class_counts(loaded, s)["a"] for s in ("training", "validation", "test")) == 3


def test_build_records_the_split_algorithm_and_its_summary():
    # 8 images of 4 patients: p0 (3 images of a), p1 (1 of a), p2 (2 of b), p3 (1 of a, 1 of b)
    labels = {"p0": [0, 0, 0], "p1": [0], "p2": [1, 1], "p3": [0, 1]}
    items = [{"image": f"{pid}_{k}.png", "label": label, "patient_id": pid}
             for pid, patient in labels.items() for k, label in enumerate(patient)]
    datalist = build_datalist(items, ["a", "b"], task="t", modality="other", fractions=(1.0, 0.0, 0.0), seed=4)
    split = datalist["split"]
    assert {k: split[k] for k in ("fractions", "seed", "grouped_by", "version")} == {
        "fractions": [1.0, 0.0, 0.0], "seed": 4, "grouped_by": "patient_id", "version": SPLIT_VERSION}
    assert split["summary"]["training"] == {"images": 8, "patients": 4, "images_per_patient": 2.0,
                                            "multi_image_patients": 3, "images_of_multi_image_patients": 7,
                                            "classes": {"a": 5, "b": 3}}
    assert split["summary"]["test"]["images"] == split["summary"]["validation"]["patients"] == 0


def test_monai_reads_it(round_trip):
    path, _ = round_trip
    loaded = load_datalist(path)
    for split in ("training", "validation", "test"):
        monai_items = load_decathlon_datalist(str(path), data_list_key=split)
        assert [it["image"] for it in monai_items] == [it["image"] for it in loaded[split]]


def test_patient_shared_across_splits_is_refused(tmp_path):
    image = touch(tmp_path / "a.png")
    path = write_json(tmp_path / "d.json", header(
        training=[{"image": str(image), "label": 0, "patient_id": "pat-7"}],
        test=[{"image": str(image), "label": 1, "patient_id": "pat-7"}]))
    with pytest.raises(InputError, match="pat-7 in training and test"):
        load_datalist(path)


def test_label_not_in_classes_is_refused(tmp_path):
    image = str(touch(tmp_path / "a.png"))
    path = write_json(tmp_path / "d.json", header(training=[{"image": image, "label": 2}]))
    with pytest.raises(InputError, match=r"label 2 is not a class index 0\.\.1"):
        load_datalist(path)


def test_missing_image_is_named(tmp_path):
    path = write_json(tmp_path / "d.json", header(training=[{"image": "gone/missing_7.png", "label": 0}]))
    with pytest.raises(InputError, match="missing_7.png") as info:
        load_datalist(path)
    assert "does not exist" in str(info.value)
    unchecked = load_datalist(path, check_files=False)
    assert unchecked["training"][0]["image"] == str(tmp_path / "gone/missing_7.png")


def test_invalid_json_is_refused(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('{"classes": ["a", "b"], "training": [')
    with pytest.raises(InputError, match="not a valid JSON datalist"):
        load_datalist(path)


def test_duplicate_class_names_are_refused(tmp_path):
    image = str(touch(tmp_path / "a.png"))
    content = {"classes": ["a", "a"], "training": [{"image": image, "label": 0}]}
    path = write_json(tmp_path / "d.json", content)
    with pytest.raises(InputError, match="duplicate names"):
        load_datalist(path)


def test_missing_datalist_file_is_named(tmp_path):
    with pytest.raises(InputError, match="nope.json: datalist file not found"):
        load_datalist(tmp_path / "nope.json")


def test_load_datalist_folder_path_is_input_error(tmp_path):
    with pytest.raises(InputError, match="is a folder"):
        load_datalist(tmp_path)


def test_load_datalist_split_not_a_list(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"classes": ["a", "b"], "training": 5}))
    with pytest.raises(InputError, match="'training' must be a list") as e:
        load_datalist(path)
    assert str(path) in str(e.value)
