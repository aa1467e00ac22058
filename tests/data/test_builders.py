"""Datalists from class folders and CSV manifests: good sets, every bad input, --skip-bad, no writes."""

from __future__ import annotations

import csv
import hashlib
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from medsynth.data.builders import datalist_from_csv, datalist_from_folders
from medsynth.data.datalist import load_datalist
from medsynth.data.splits import SPLITS
from medsynth.errors import InputError

# png_tree (conftest): benign = p1..p3 x 2 images, malignant = p4, p5 x 2 images, 8x12 gray PNGs


def tree_hash(root: Path) -> str:
    """Hash of every path and file content below ``root``, hidden ones included."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def all_items(datalist: dict) -> list[dict]:
    return [it for split in SPLITS for it in datalist[split]]


def by_name(datalist: dict) -> dict[str, dict]:
    return {Path(it["image"]).name: it for it in all_items(datalist)}


def skipped_files(out: Path) -> set[str]:
    with open(out / "skipped.csv", newline="") as f:
        return {row["file"] for row in csv.DictReader(f)}


def png(path: Path, channels: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((8, 12, 3) if channels == 3 else (8, 12), np.uint8)).save(path)
    return path


# ---------------------------------------------------------------------------------------- folders


def test_folders_default_order_labels_and_own_patient_ids(png_tree, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="medsynth.data.builders"):
        path = datalist_from_folders(png_tree, tmp_path / "out", task="skin", modality="dermoscopy")
    datalist = load_datalist(path)
    assert path == tmp_path / "out" / "datalist.json" and not (tmp_path / "out" / "skipped.csv").exists()
    assert datalist["classes"] == ["benign", "malignant"] and datalist["channels"] == 1
    items = by_name(datalist)
    assert len(items) == 10 and items["p1_0.png"]["label"] == 0 and items["p5_1.png"]["label"] == 1
    assert items["p4_0.png"]["patient_id"] == "malignant/p4_0"
    assert "each is treated as its own patient" in caplog.text


def test_folders_class_order_is_respected(png_tree, tmp_path):
    path = datalist_from_folders(png_tree, tmp_path / "out", classes=["malignant", "benign"])
    datalist = load_datalist(path)
    items = by_name(datalist)
    assert datalist["classes"] == ["malignant", "benign"]
    assert items["p4_0.png"]["label"] == 0 and items["p1_0.png"]["label"] == 1


def test_folders_patient_regex_groups_patients(png_tree, tmp_path):
    datalist = load_datalist(datalist_from_folders(png_tree, tmp_path / "out", patient_regex=r"^(p\d+)_"))
    split_of = {}
    for split in SPLITS:
        for it in datalist[split]:
            split_of.setdefault(it["patient_id"], set()).add(split)
    assert sorted(split_of) == ["p1", "p2", "p3", "p4", "p5"] and all(len(s) == 1 for s in split_of.values())


def test_folders_regex_mismatch_is_a_file_error(png_tree, tmp_path):
    png(png_tree / "benign" / "scan9.png")
    with pytest.raises(InputError, match=r"scan9\.png: file name does not match patient_regex"):
        datalist_from_folders(png_tree, tmp_path / "out", patient_regex=r"^(p\d+)_")


def test_folders_patient_ids_from_dicom(tmp_path, dicom_writer):
    root = tmp_path / "xray"
    for label, cls in enumerate(["normal", "fracture"]):
        (root / cls).mkdir(parents=True)
        for patient in range(3):
            for k in range(2):
                pixels = np.full((8, 12), 10 * patient + k, np.uint16)
                dicom_writer(root / cls / f"img{patient}{k}.dcm", pixels, patient_id=f"PAT{label}{patient}")
    datalist = load_datalist(datalist_from_folders(root, tmp_path / "out", classes=["normal", "fracture"]))
    items = by_name(datalist)
    assert items["img21.dcm"]["patient_id"] == "PAT12" and items["img21.dcm"]["label"] == 1
    expected = {f"PAT{c}{p}" for c in (0, 1) for p in range(3)}
    assert {it["patient_id"] for it in all_items(datalist)} == expected


def test_folders_hidden_files_are_ignored(png_tree, tmp_path):
    (png_tree / "benign" / ".DS_Store").write_bytes(b"\0junk")
    (png_tree / "benign" / "._p1_0.png").write_bytes(b"AppleDouble")
    (png_tree / "malignant" / "Thumbs.db").write_bytes(b"junk")
    png(png_tree / "malignant" / ".cache" / "p9_0.png")
    (png_tree / ".git").mkdir()
    datalist = load_datalist(datalist_from_folders(png_tree, tmp_path / "out"))
    assert len(all_items(datalist)) == 10 and datalist["classes"] == ["benign", "malignant"]


def truncated_png(path: Path) -> None:
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (8, 12), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:-60])  # cut inside the pixel data


# one bad file of each kind: (path below the data folder, writer, expected reason)
BAD_FILES = [
    ("benign/notes.txt", lambda p: p.write_text("not an image"),
     "not an image: unsupported file type '.txt'"),
    ("benign/cut.png", truncated_png, "corrupt or unreadable image (OSError: image file is truncated"),
    ("malignant/empty.png", lambda p: p.touch(), "file is empty (0 bytes)"),
    ("malignant/vol.nii.gz", lambda p: nib.save(nib.Nifti1Image(np.zeros((8, 12, 3), np.int16), np.eye(4)),
                                                p), "is 3D (8×12×3, 3 slices)"),
    ("malignant/colour.png", lambda p: png(p, channels=3),  # 1 RGB among 10 gray
     "has 3 channel(s) but p1_0.png and 9 other image(s) in the same set have 1"),
]


@pytest.mark.parametrize(("name", "write", "reason"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_folders_each_bad_file_stops_the_build(png_tree, tmp_path, name, write, reason):
    write(png_tree / name)
    with pytest.raises(InputError) as info:
        datalist_from_folders(png_tree, tmp_path / "out")
    assert info.value.path == str(png_tree / name) and reason in str(info.value)
    assert not (tmp_path / "out").exists()


def test_folders_skip_bad_lists_exactly_the_bad_files_and_keeps_inputs(png_tree, tmp_path):
    for name, write, _ in BAD_FILES:
        write(png_tree / name)
    before = tree_hash(png_tree)
    path = datalist_from_folders(png_tree, tmp_path / "out", skip_bad=True)
    assert skipped_files(tmp_path / "out") == {str(png_tree / name) for name, _, _ in BAD_FILES}
    assert {it["image"] for it in all_items(load_datalist(path))} == {
        str(p) for p in png_tree.rglob("p*_*.png")}
    assert tree_hash(png_tree) == before


def test_folders_stale_skipped_list_is_removed(png_tree, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "skipped.csv").write_text("file,reason\nold.png,old\n")
    datalist_from_folders(png_tree, tmp_path / "out")
    assert not (tmp_path / "out" / "skipped.csv").exists()


@pytest.mark.parametrize("inside", [".", "benign/out", "new/deeper"])
def test_folders_output_inside_the_data_is_refused(png_tree, inside):
    before = tree_hash(png_tree)
    with pytest.raises(InputError, match="output path lies inside the input folder"):
        datalist_from_folders(png_tree, png_tree / inside)
    assert tree_hash(png_tree) == before


def test_folders_structure_errors(tmp_path, png_tree):
    cases = [
        (tmp_path / "missing", None, "missing: data folder not found"),
        (png(tmp_path / "file.png"), None, "is not a folder"),
        (tmp_path / "flat", None, "no class folders found"),
        (png_tree, ["benign", "unknown"], "unknown: class 'unknown' from classes has no folder"),
        (png_tree, ["benign"], "found only the class 'benign'; a classifier needs at least 2 classes"),
        (png_tree, ["benign", "benign"], "classes has duplicate names"),
    ]
    png(tmp_path / "flat" / "a.png")
    for root, classes, message in cases:
        with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
            datalist_from_folders(root, tmp_path / "out", classes=classes)
    assert not (tmp_path / "out").exists()


def test_folders_empty_class_folder_is_named(png_tree, tmp_path):
    (png_tree / "unsure").mkdir()
    (png_tree / "unsure" / ".DS_Store").write_bytes(b"x")  # hidden files do not count
    with pytest.raises(InputError, match=r"unsure: class folder is empty \(no image files\)"):
        datalist_from_folders(png_tree, tmp_path / "out")


def test_folders_class_with_every_file_skipped_is_an_error(png_tree, tmp_path):
    (png_tree / "unsure").mkdir()
    (png_tree / "unsure" / "a.txt").write_text("x")
    with pytest.raises(InputError, match="no readable images of class 'unsure'"):
        datalist_from_folders(png_tree, tmp_path / "out", skip_bad=True)


# -------------------------------------------------------------------------------------------- CSV


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


@pytest.fixture
def isic(tmp_path) -> tuple[Path, Path]:
    """ISIC layout: ``isic/train/ISIC_000000k.jpg`` (k < 8) and ``isic/train.csv`` with bare ids.

    Patients IP_k//2 (two images each); target 1 for k >= 4.
    """
    root = tmp_path / "isic" / "train"
    for k in range(8):
        png(root / f"ISIC_{k:07d}.jpg")
    rows = [["image_name", "patient_id", "sex", "target"]]
    rows += [[f"ISIC_{k:07d}", f"IP_{k // 2}", "male", str(int(k >= 4))] for k in range(8)]
    return write_csv(tmp_path / "isic" / "train.csv", rows), root


def isic_datalist(isic, out, **kwargs) -> Path:
    options = dict(image_col="image_name", label_col="target", patient_col="patient_id",
                   classes=["benign", "malignant"])
    return datalist_from_csv(*isic, out, **{**options, **kwargs})


def test_csv_isic_bare_ids_integer_targets_and_patients(isic, tmp_path):
    before = tree_hash(tmp_path / "isic")
    datalist = load_datalist(isic_datalist(isic, tmp_path / "out"))
    items = by_name(datalist)
    assert datalist["classes"] == ["benign", "malignant"] and len(items) == 8
    assert items["ISIC_0000005.jpg"]["label"] == 1 and items["ISIC_0000005.jpg"]["patient_id"] == "IP_2"
    assert items["ISIC_0000001.jpg"]["label"] == 0
    assert items["ISIC_0000001.jpg"]["image"] == str(isic[1] / "ISIC_0000001.jpg")
    assert tree_hash(tmp_path / "isic") == before and not (tmp_path / "out" / "skipped.csv").exists()


def test_csv_integer_labels_need_class_names(isic, tmp_path):
    message = r"train\.csv: labels in column 'target' are integers \(0, 1\).*--classes"
    with pytest.raises(InputError, match=message):
        isic_datalist(isic, tmp_path / "out", classes=None)


def test_csv_name_labels_paths_and_class_order(tmp_path, dicom_writer):
    root = tmp_path / "images"
    png(root / "a" / "x1.png")
    png(root / "b" / "x2.png")
    dicom_writer(root / "x3.dcm", np.zeros((8, 12), np.uint8), patient_id="DCM-PAT")
    outside = png(tmp_path / "elsewhere" / "x4.png")
    rows = [["image", "label"], ["a/x1.png", "normal"], ["b/x2.png", "fracture"], ["x3.dcm", "fracture"],
            [str(outside), "normal"]]
    manifest = write_csv(tmp_path / "labels" / "m.csv", rows)
    datalist = load_datalist(datalist_from_csv(manifest, root, tmp_path / "out"))
    items = by_name(datalist)
    assert datalist["classes"] == ["fracture", "normal"]  # sorted when not given
    assert [items[n]["label"] for n in ("x1.png", "x2.png", "x3.dcm", "x4.png")] == [1, 0, 0, 1]
    assert items["x3.dcm"]["patient_id"] == "DCM-PAT" and items["x1.png"]["patient_id"] == "a/x1"
    ordered = load_datalist(datalist_from_csv(manifest, root, tmp_path / "out2", classes="normal,fracture"))
    assert by_name(ordered)["x1.png"]["label"] == 0


def test_csv_file_errors(tmp_path):
    root, folder = tmp_path / "img", tmp_path / "labels"
    root.mkdir()
    folder.mkdir()
    (folder / "empty.csv").touch()
    write_csv(folder / "header.csv", [["image", "label"]])
    (folder / "binary.csv").write_bytes(bytes(range(128, 256)) * 4)
    cases = [("missing.csv", "missing.csv: CSV file not found"),
             ("empty.csv", r"empty.csv: CSV file is empty \(no header row\)"),
             ("header.csv", "header.csv: CSV file has a header but no rows"),
             ("binary.csv", r"binary.csv: cannot be read as a CSV file \(UnicodeDecodeError")]
    for name, message in cases:
        with pytest.raises(InputError, match=message):
            datalist_from_csv(folder / name, root, tmp_path / "out")
    with pytest.raises(InputError, match="nowhere: image folder not found"):
        datalist_from_csv(folder / "header.csv", tmp_path / "nowhere", tmp_path / "out")


def test_csv_missing_column_lists_the_header(isic, tmp_path):
    with pytest.raises(InputError, match="column 'label' is not in the header; the columns are: "
                                         "image_name, patient_id, sex, target"):
        isic_datalist(isic, tmp_path / "out", label_col="label")


# (row to append to the ISIC manifest, file named by the error, fragment of the message)
BAD_ROWS = [
    (["ISIC_0000003", "IP_1", "male", "0"], "train.csv",
     "row 10: image ISIC_0000003.jpg is already listed in row 5"),
    (["ISIC_0000001", "IP_0", "male", "7"], "train.csv", "row 10: label 7 is not a class index 0..1"),
    (["gone.jpg", "IP_9", "male", "1"], "gone.jpg", "named in {csv} row 10 but the file does not exist"),
    (["ISIC_9999999", "IP_9", "male", "1"], "ISIC_9999999",
     "named in {csv} row 10, but there is no file ISIC_9999999 with any of the extensions .png, .jpg"),
    (["ISIC_0000100", "", "male", "1"], "train.csv", "row 10: empty 'patient_id' cell"),
]


@pytest.mark.parametrize(("row", "named", "fragment"), BAD_ROWS, ids=[b[2][:24] for b in BAD_ROWS])
def test_csv_bad_rows_name_the_file_and_row(isic, tmp_path, row, named, fragment):
    manifest, root = isic
    png(root / "ISIC_0000100.jpg")  # a good image that no other row names
    with open(manifest, "a", newline="") as f:
        csv.writer(f).writerow(row)
    with pytest.raises(InputError) as info:
        isic_datalist(isic, tmp_path / "out")
    assert Path(info.value.path).name == named and fragment.format(csv=manifest) in info.value.reason
    assert not (tmp_path / "out").exists()


def test_csv_label_not_in_named_classes(tmp_path):
    png(tmp_path / "img" / "a.png")
    rows = [["image", "label"], ["a.png", "benign"], ["a.png", "unknown"]]
    manifest = write_csv(tmp_path / "labels" / "m.csv", rows)
    with pytest.raises(InputError, match=r"m.csv: row 3: label 'unknown' is not one of the classes \['be"):
        datalist_from_csv(manifest, tmp_path / "img", tmp_path / "out", classes=["benign", "malignant"])


def test_csv_skip_bad_lists_exactly_the_bad_rows(isic, tmp_path):
    manifest, root = isic
    (root / "ISIC_0000008.jpg").write_text("not a jpeg")
    with open(manifest, "a", newline="") as f:
        csv.writer(f).writerows([["ISIC_0000008", "IP_4", "male", "0"], ["ISIC_0000009", "IP_4", "male", "1"],
                                 ["ISIC_0000000", "IP_0", "male", "0"]])
    path = isic_datalist(isic, tmp_path / "out", skip_bad=True)
    assert skipped_files(tmp_path / "out") == {str(root / "ISIC_0000008.jpg"), str(root / "ISIC_0000009"),
                                               str(manifest)}
    assert sorted(by_name(load_datalist(path))) == [f"ISIC_{k:07d}.jpg" for k in range(8)]


def test_csv_output_inside_the_image_folder_is_refused(isic):
    manifest, root = isic
    with pytest.raises(InputError, match="output path lies inside the input folder"):
        isic_datalist(isic, root / "out")
    assert not (root / "out").exists()


def test_unknown_modality_fails_before_any_image_is_read(png_tree, tmp_path):
    (png_tree / "benign" / "notes.txt").write_text("would fail the image check")
    with pytest.raises(ValueError, match="unknown modality 'mri'"):
        datalist_from_folders(png_tree, tmp_path / "out", modality="mri")


def test_relative_paths_work_from_the_working_folder(png_tree, isic, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folders = load_datalist(datalist_from_folders("data", "out"))
    assert by_name(folders)["p1_0.png"]["image"] == str(png_tree / "benign" / "p1_0.png")
    from_csv = load_datalist(isic_datalist((Path("isic/train.csv"), Path("isic/train")), "out2"))
    assert by_name(from_csv)["ISIC_0000001.jpg"]["image"] == str(isic[1] / "ISIC_0000001.jpg")
