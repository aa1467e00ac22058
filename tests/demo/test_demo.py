"""Demo sets: counts, layouts, byte-for-byte seeding, DICOM/NIfTI geometry, readers, no overwriting."""

from __future__ import annotations

import csv
import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.pixels import apply_modality_lut
from scipy import ndimage

from medsynth.demo import writer as demo
from medsynth.demo.dicom_write import write_ct_series, write_radiograph
from medsynth.demo.writer import DEMO_DEFAULTS, class_counts, write_demo_dataset
from medsynth.errors import InputError

SMALL_N = {"skin": 20, "ct": 6, "xray": 12}


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def sets(tmp_path_factory) -> dict[str, demo.DemoSet]:
    """One small set per task, seed 0, default difficulty."""
    base = tmp_path_factory.mktemp("demo")
    return {task: write_demo_dataset(task, base / task, n=n, seed=0) for task, n in SMALL_N.items()}


def test_default_counts_follow_the_published_ratios():
    assert class_counts("skin") == {"benign": 750, "malignant": 100}  # ISIC 2020: 7.5:1, n=850
    assert class_counts("ct") == {"cyst": 53, "metastasis": 64, "hemangioma": 65}  # Frid-Adar: 182 lesions
    assert class_counts("xray") == {"no_fracture": 400, "fracture": 200}  # 2:1, n=600


def test_small_counts_round_to_the_ratio():
    assert class_counts("skin", 20) == {"benign": 18, "malignant": 2}  # 17.6 / 2.4
    assert class_counts("ct", 6) == {"cyst": 2, "metastasis": 2, "hemangioma": 2}  # 1.75 / 2.11 / 2.14
    assert class_counts("xray", 12) == {"no_fracture": 8, "fracture": 4}
    assert class_counts("skin", 2) == {"benign": 1, "malignant": 1}  # every class keeps one


def test_bad_arguments_are_refused_with_the_valid_choices(tmp_path):
    with pytest.raises(InputError, match="ct, skin, xray"):
        write_demo_dataset("mri", tmp_path / "x")
    with pytest.raises(InputError, match="n must be"):
        write_demo_dataset("ct", tmp_path / "x", n=2)
    with pytest.raises(InputError, match="difficulty"):
        write_demo_dataset("skin", tmp_path / "x", n=4, difficulty=1.5)
    assert not (tmp_path / "x").exists()
    assert sorted(DEMO_DEFAULTS) == ["ct", "skin", "xray"]


def test_a_non_empty_output_folder_is_refused_and_left_alone(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="not empty") as info:
        write_demo_dataset("skin", out, n=4)
    assert str(out) in str(info.value)
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no staging folder left behind


def test_existing_demo_recognises_only_the_same_set(sets, tmp_path):
    root = sets["ct"].root
    found = demo.existing_demo("ct", root, n=6, seed=0)
    assert found is not None and found.root == root and found.counts == sets["ct"].counts
    assert list(found.counts) == ["cyst", "metastasis", "hemangioma"]
    assert found.n_patients == sets["ct"].n_patients
    assert found.manifests["lesions"] == root / "lesions.csv"
    assert demo.existing_demo("ct", root, n=6, seed=1) is None
    assert demo.existing_demo("ct", root, n=9, seed=0) is None
    assert demo.existing_demo("ct", root, n=6, seed=0, difficulty=0.9) is None
    assert demo.existing_demo("skin", root, n=6, seed=0) is None
    assert demo.existing_demo("ct", tmp_path / "nothing", n=6) is None


def test_an_empty_folder_is_used_and_a_crash_leaves_nothing(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert write_demo_dataset("skin", empty, n=4).counts == {"benign": 3, "malignant": 1}

    def crash(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(demo, "_save_png", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        write_demo_dataset("skin", tmp_path / "broken", n=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


@pytest.mark.parametrize("task", ["skin", "ct", "xray"])
def test_same_seed_same_bytes_other_seed_other_images(sets, task, tmp_path):
    again = write_demo_dataset(task, tmp_path / "again", n=SMALL_N[task], seed=0)
    first = _digests(sets[task].root)
    assert first == _digests(again.root)
    other = _digests(write_demo_dataset(task, tmp_path / "other", n=SMALL_N[task], seed=1).root)
    images = [k for k in first if k.endswith((".png", ".dcm", ".nii.gz"))]
    assert images and not set(first[k] for k in images) & set(other.values())


def test_skin_set_is_isic_style(sets):
    skin = sets["skin"]
    assert skin.counts == {"benign": 18, "malignant": 2} and skin.manifests["metadata"].name == "metadata.csv"
    header = skin.manifests["metadata"].read_text().splitlines()[0]
    assert header == "image_name,patient_id,target,benign_malignant"
    rows = _rows(skin.manifests["metadata"])
    assert sorted(r["target"] for r in rows) == ["0"] * 18 + ["1"] * 2
    assert all({"0": "benign", "1": "malignant"}[r["target"]] == r["benign_malignant"] for r in rows)
    assert all(
        re.fullmatch(r"ISIC_\d{7}", r["image_name"]) and re.fullmatch(r"IP_\d{7}", r["patient_id"])
        for r in rows
    )
    per_patient = np.unique([r["patient_id"] for r in rows], return_counts=True)[1]
    assert per_patient.max() <= 4 and len(per_patient) == skin.n_patients < 20
    image = np.asarray(Image.open(skin.root / "images" / f"{rows[0]['image_name']}.png"))
    assert image.shape == (128, 128, 3) and image.dtype == np.uint8


@pytest.mark.filterwarnings("ignore:PydicomReader.*ImageOrientationPatient")  # a radiograph has no IOP/IPP
def test_files_load_through_monai_readers(sets):
    from monai.transforms import LoadImage

    png = next((sets["skin"].root / "images").glob("*.png"))
    assert tuple(LoadImage(image_only=True)(str(png)).shape) == (128, 128, 3)
    ct = sets["ct"].root
    nifti = LoadImage(image_only=True, reader="NibabelReader")(str(ct / "nifti" / "CT_P0000_ct.nii.gz"))
    series = LoadImage(image_only=True, reader="ITKReader")(str(ct / "dicom" / "CT_P0000"))
    assert tuple(nifti.shape) == (128, 128, 24) == tuple(series.shape)
    assert np.array_equal(np.asarray(nifti), np.asarray(series))  # same HU, same voxel order
    assert np.allclose(np.asarray(nifti.affine), np.asarray(series.affine))  # same RAS geometry
    row = next(r for r in _rows(sets["xray"].root / "metadata.csv") if r["photometric"] == "MONOCHROME2")
    single = LoadImage(image_only=True, reader="PydicomReader")(str(sets["xray"].root / row["dicom"]))
    stored = pydicom.dcmread(sets["xray"].root / row["dicom"]).pixel_array
    assert np.array_equal(np.squeeze(np.asarray(single)), stored.T)  # MONAI gives (W, H)


def test_ct_dicom_series_has_hu_geometry_and_synthetic_markers(sets):
    root = sets["ct"].root
    volume = np.asarray(nib.load(root / "nifti" / "CT_P0000_ct.nii.gz").dataobj)  # (X, Y, Z)
    files = sorted((root / "dicom" / "CT_P0000").glob("IM_*.dcm"))
    slices = [pydicom.dcmread(f) for f in files]
    assert len(slices) == volume.shape[2] == 24
    for k, ds in enumerate(slices):
        assert np.array_equal(apply_modality_lut(ds.pixel_array, ds), volume[:, :, k].T)  # (rows=Y, cols=X)
        assert ds.InstanceNumber == k + 1
    assert [float(ds.ImagePositionPatient[2]) for ds in slices] == pytest.approx(-57.5 + 5.0 * np.arange(24))
    first = slices[0]
    assert [float(v) for v in first.PixelSpacing] == [2.5, 2.5] and float(first.SliceThickness) == 5.0
    assert [float(v) for v in first.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
    assert first.Modality == "CT" and first.SOPClassUID == pydicom.uid.CTImageStorage
    assert first.PatientID == "CT_P0000" and str(first.PatientName) == "DEMO^CT_P0000"
    assert list(first.ImageType)[:2] == ["DERIVED", "SECONDARY"] and "synthetic" in first.SeriesDescription
    assert (
        first.BurnedInAnnotation == "NO"
        and first.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    )
    for key in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
        assert len({ds[key].value for ds in slices}) == 1
    assert len({ds.SOPInstanceUID for ds in slices}) == 24
    affine = nib.load(root / "nifti" / "CT_P0000_ct.nii.gz").affine
    lps_origin = [-affine[0, 3], -affine[1, 3], affine[2, 3]]  # RAS -> LPS
    assert [float(v) for v in first.ImagePositionPatient] == pytest.approx(lps_origin)


def test_ct_series_reads_the_same_in_itk(sets):
    itk = pytest.importorskip("itk")
    root = sets["ct"].root
    image = itk.imread(str(root / "dicom" / "CT_P0000"))
    volume = np.asarray(nib.load(root / "nifti" / "CT_P0000_ct.nii.gz").dataobj)
    assert np.array_equal(itk.array_from_image(image), volume.transpose(2, 1, 0))  # ITK arrays are (Z, Y, X)
    assert tuple(image.GetSpacing()) == pytest.approx((2.5, 2.5, 5.0))
    assert tuple(image.GetOrigin()) == pytest.approx((-158.75, -158.75, -57.5))


def test_lesions_csv_matches_masks_and_densities(sets):
    root = sets["ct"].root
    rows = _rows(sets["ct"].manifests["lesions"])
    assert list(rows[0]) == [
        "patient_id",
        "volume",
        "mask",
        "mask_value",
        "label",
        "dicom_series",
        "centroid_x_mm",
        "centroid_y_mm",
        "centroid_z_mm",
        "diameter_mm",
    ]
    assert sorted(r["label"] for r in rows) == ["cyst"] * 2 + ["hemangioma"] * 2 + ["metastasis"] * 2
    for r in rows:
        mask_img = nib.load(root / r["mask"])
        mask = np.asarray(mask_img.dataobj) == int(r["mask_value"])
        ct = np.asarray(nib.load(root / r["volume"]).dataobj)
        assert (root / r["dicom_series"] / "IM_0001.dcm").is_file()
        lps = np.array([float(r[f"centroid_{a}_mm"]) for a in "xyz"])
        ijk = np.linalg.solve(mask_img.affine, np.r_[lps * [-1, -1, 1], 1.0])[:3]  # LPS -> RAS -> voxel
        assert np.allclose(ijk, np.argwhere(mask).mean(axis=0), atol=0.01)
        assert 8 < float(r["diameter_mm"]) < 70
        core = ndimage.binary_erosion(mask, structure=np.ones((3, 3, 1), bool))
        if r["label"] == "cyst":
            assert -10 < ct[core].mean() < 30  # water density (0-10 HU) plus a little partial volume


def test_xray_dicom_and_png_show_the_same_picture(sets):
    root = sets["xray"].root
    rows = _rows(sets["xray"].manifests["metadata"])
    assert list(rows[0]) == ["image_id", "patient_id", "label", "photometric", "dicom", "png"]
    assert sorted(r["label"] for r in rows) == ["fracture"] * 4 + ["no_fracture"] * 8
    assert {r["photometric"] for r in rows} == {"MONOCHROME1", "MONOCHROME2"}
    for r in rows:
        ds = pydicom.dcmread(root / r["dicom"])
        png = np.asarray(Image.open(root / r["png"]))
        assert r["dicom"].startswith(f"dicom/{r['label']}/") and r["png"].startswith(f"png/{r['label']}/")
        assert ds.PhotometricInterpretation == r["photometric"] and ds.PatientID == r["patient_id"]
        assert ds.BitsStored == 12 and ds.pixel_array.dtype == np.uint16 and ds.pixel_array.max() <= 4095
        stored = ds.pixel_array.astype(float)
        display = 4095 - stored if r["photometric"] == "MONOCHROME1" else stored
        assert np.array_equal(np.round(display / 4095 * 255), png)
        correlation = np.corrcoef(stored.ravel(), png.ravel())[0, 1]
        assert correlation < -0.99 if r["photometric"] == "MONOCHROME1" else correlation > 0.99


def test_radiograph_writer_inverts_monochrome1(tmp_path):
    image = np.arange(12 * 16, dtype=np.uint16).reshape(12, 16) * 20
    one = write_radiograph(image, tmp_path / "m1.dcm", "MONOCHROME1", "P1", uid_seed="t")
    two = write_radiograph(image, tmp_path / "m2.dcm", "MONOCHROME2", "P1", uid_seed="t")
    assert np.array_equal(pydicom.dcmread(one).pixel_array, 4095 - image)
    assert np.array_equal(pydicom.dcmread(two).pixel_array, image)
    with pytest.raises(ValueError, match="0, 4095"):
        write_radiograph(image + 4000, tmp_path / "bad.dcm", "MONOCHROME2", "P1", uid_seed="t")


def test_ct_writer_keeps_hu_outside_12_bits_exactly(tmp_path):
    volume = np.array([[[-2000, 0], [40, 5000]]] * 2, dtype=np.int16)  # (Z=2, Y=2, X=2), beyond 12 bits
    paths = write_ct_series(volume, (1.0, 1.0, 2.0), (0.0, 0.0, 0.0), tmp_path, "P9", uid_seed="t")
    ds = pydicom.dcmread(paths[1])
    assert ds.PixelRepresentation == 1 and np.array_equal(apply_modality_lut(ds.pixel_array, ds), volume[1])
    assert float(ds.ImagePositionPatient[2]) == 2.0


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (dicom3tools) not installed")
def test_dicom_files_pass_dciodvfy(sets):
    ct_file = sets["ct"].root / "dicom" / "CT_P0000" / "IM_0001.dcm"
    cr_file = next((sets["xray"].root / "dicom").rglob("*.dcm"))
    for path in (ct_file, cr_file):
        result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
        errors = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]
        assert not errors, f"{path.name}: {errors}"
