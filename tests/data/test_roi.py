"""CT volume reading, lesion ROI extraction and the ROI datalist (medsynth.data.roi)."""

from __future__ import annotations

import csv
import json
import logging
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from medsynth.data.roi import DEFAULT_WINDOW, datalist_from_volumes, extract_rois, read_volume
from medsynth.errors import InputError

# Phantom: (X, Y, Z) in LPS order, background 100 HU ("liver"), a 10 HU sphere of radius 8 mm.
# Air (-1000 HU) fills the two most posterior rows, far from the lesion.
SHAPE, SPACING, ORIGIN_LPS = (64, 40, 16), (1.0, 1.25, 2.5), (-20.0, -30.0, 40.0)
CENTRE_VOXEL, RADIUS_MM = (30, 16, 9), 8.0
CENTRE_LPS = tuple(o + c * s for o, c, s in zip(ORIGIN_LPS, CENTRE_VOXEL, SPACING, strict=True))  # 10,-10,62
CENTROID_HEADER = ["volume", "label", "patient_id", "centroid_x_mm", "centroid_y_mm", "centroid_z_mm",
                   "diameter_mm"]


def _phantom() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(hu (X, Y, Z) int16 in LPS order, its RAS affine, lesion mask of value 1)``."""
    grids = np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij")
    r = np.sqrt(sum(((g - c) * s) ** 2 for g, c, s in zip(grids, CENTRE_VOXEL, SPACING, strict=True)))
    hu = np.full(SHAPE, 100, dtype=np.int16)
    hu[r <= RADIUS_MM] = 10
    hu[:, -2:, :] = -1000
    affine = np.diag([-SPACING[0], -SPACING[1], SPACING[2], 1.0])  # LPS order -> RAS mm
    affine[:3, 3] = (-ORIGIN_LPS[0], -ORIGIN_LPS[1], ORIGIN_LPS[2])
    return hu, affine, (r <= RADIUS_MM).astype(np.uint8)


def _save_canonical(array: np.ndarray, affine: np.ndarray, path: Path) -> Path:
    """Save as NIfTI in RAS+ voxel order (x and y flipped w.r.t. the LPS array): readers must undo it."""
    nib.save(nib.as_closest_canonical(nib.Nifti1Image(array, affine)), path)
    return path


def _write_series(folder: Path, hu: np.ndarray, *, modality: str = "CT", series_uid: str | None = None,
                  ) -> Path:
    """Write LPS-ordered ``hu (X, Y, Z)`` as a DICOM series stored like explicit_VR-UN.dcm: column direction
    anterior (IOP 1\\0\\0\\0\\-1\\0), instance numbers descending with z, 12-bit HU+1024, intercept -1024."""
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    nx, ny, nz = hu.shape
    for k in range(nz):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, generate_uid()
        ds.Modality, ds.PatientID, ds.StudyInstanceUID = modality, "P1", "1.2.3"
        ds.SeriesInstanceUID = series_uid
        ds.InstanceNumber = nz - k
        ds.ImageOrientationPatient = [1, 0, 0, 0, -1, 0]
        ds.ImagePositionPatient = [ORIGIN_LPS[0], ORIGIN_LPS[1] + (ny - 1) * SPACING[1],
                                   ORIGIN_LPS[2] + k * SPACING[2]]
        ds.PixelSpacing, ds.SliceThickness = [SPACING[1], SPACING[0]], SPACING[2]
        plane = hu[:, ::-1, k].T.astype(np.int32) + 1024  # rows run anterior -> posterior
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = plane.shape
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.PixelData = plane.astype("<u2").tobytes()
        ds.save_as(folder / f"IM_{k:04d}_{series_uid[-6:]}.dcm", enforce_file_format=True)
    return folder


def _write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    return path


@pytest.fixture
def phantom_files(tmp_path: Path) -> dict[str, Path]:
    """NIfTI volume and mask (RAS+ stored) and a manifest in ``tmp_path/data``."""
    hu, affine, mask = _phantom()
    data = tmp_path / "data"
    data.mkdir()
    files = {"volume": _save_canonical(hu, affine, data / "p1_ct.nii.gz"),
             "mask": _save_canonical(mask, affine, data / "p1_mask.nii.gz")}
    files["csv"] = _write_csv(data / "lesions.csv", ["volume", "mask", "label", "patient_id", "mask_value"],
                              [["p1_ct.nii.gz", "p1_mask.nii.gz", "cyst", "p1", 1]])
    return files


def test_read_volume_undoes_storage_orientation(phantom_files):
    hu, affine, _ = _phantom()
    volume, lps_affine, meta = read_volume(phantom_files["volume"])
    assert volume.dtype == np.float32 and np.array_equal(volume, hu)
    np.testing.assert_allclose(lps_affine, affine)
    assert meta["spacing"] == pytest.approx(SPACING) and meta["source_shape"] == SHAPE
    assert meta["source_affine"][0, 0] > 0  # it was stored RAS+, flipped w.r.t. the returned LPS order


def test_dicom_series_and_nifti_give_the_same_volume(tmp_path, phantom_files):
    hu, affine, _ = _phantom()
    volume, lps_affine, meta = read_volume(_write_series(tmp_path / "series", hu))
    assert meta["format"] == "dicom" and meta["n_files"] == SHAPE[2]
    assert np.array_equal(volume, hu)  # rescale applied: HU, not stored values
    np.testing.assert_allclose(lps_affine, affine, atol=1e-6)


def test_mask_roi_is_centred_on_the_lesion_and_keeps_hu(phantom_files):
    volume, affine, _ = read_volume(phantom_files["volume"])
    mask = read_volume(phantom_files["mask"], check_hu=False)[0]
    (roi,) = extract_rois(volume, mask, affine, roi_mm=40, out_size=40, mask_value=1)  # 1 mm pixels
    assert roi.image.shape == (40, 40) and roi.window == DEFAULT_WINDOW
    assert roi.slice_index == CENTRE_VOXEL[2] and roi.centre_lps == pytest.approx(CENTRE_LPS)
    lesion = np.argwhere(roi.image < 55)  # halfway between 10 and 100 HU
    assert lesion.mean(axis=0) == pytest.approx((19.5, 19.5), abs=0.3)
    assert len(lesion) == pytest.approx(np.pi * RADIUS_MM**2, rel=0.1)  # 1 mm^2 pixels
    assert roi.image[19, 19] == pytest.approx(10, abs=0.5) and roi.image[0, 0] == pytest.approx(100, abs=0.5)
    np.testing.assert_allclose(np.abs(np.diag(roi.affine)[:2]), [1.0, 1.0])


def test_centroid_roi_matches_mask_roi_and_adaptive_size(phantom_files):
    volume, affine, _ = read_volume(phantom_files["volume"])
    mask = read_volume(phantom_files["mask"], check_hu=False)[0]
    (by_mask,) = extract_rois(volume, mask, affine, mask_value=1)
    (by_centroid,) = extract_rois(volume, [(*CENTRE_LPS, 2 * RADIUS_MM)], affine)
    assert 2 * 2 * RADIUS_MM - 3 <= by_mask.side_mm <= 2 * 2 * RADIUS_MM + 4  # ~2 x diameter
    assert by_centroid.side_mm == 2 * 2 * RADIUS_MM
    (same_side,) = extract_rois(volume, [(*CENTRE_LPS, by_mask.side_mm / 2)], affine)
    np.testing.assert_allclose(same_side.image, by_mask.image, atol=1e-3)


def test_roi_outside_the_image_is_air(phantom_files):
    volume, affine, _ = read_volume(phantom_files["volume"])
    edge = (ORIGIN_LPS[0] + 1 * SPACING[0], CENTRE_LPS[1], CENTRE_LPS[2])  # x voxel 1: patient's right edge
    (roi,) = extract_rois(volume, [edge], affine, roi_mm=40, out_size=40)
    # ROI pixel u samples voxel x = 1 + (u - 19.5): outside the image (x < -0.5) for u <= 17
    assert np.all(roi.image[:18] == -1024) and np.all(roi.image[19:] == 100)  # low X = patient right


def test_datalist_from_volumes_writes_int16_hu_rois_and_window(tmp_path, phantom_files):
    path = datalist_from_volumes(phantom_files["csv"], tmp_path / "out", roi_mm=40, out_size=40)
    datalist = json.loads(path.read_text())
    assert datalist["modality"] == "ct" and datalist["window"] == list(DEFAULT_WINDOW)
    assert datalist["roi"]["out_size"] == 40 and datalist["classes"] == ["cyst"]
    (item,) = [it for split in ("training", "validation", "test") for it in datalist[split]]
    assert item["image"] == "rois/p1_1.nii.gz" and item["lesion"] == 1 and item["label"] == 0
    assert item["slice_index"] == CENTRE_VOXEL[2] and item["patient_id"] == "p1" and item["roi_side_mm"] == 40
    img = nib.load(tmp_path / "out" / item["image"])
    assert img.get_data_dtype() == np.int16 and img.shape == (40, 40)
    assert img.get_fdata()[19, 19] == 10 and img.get_fdata()[0, 0] == 100


def test_each_connected_component_is_a_lesion_without_mask_value(tmp_path, phantom_files):
    hu, affine, mask = _phantom()
    mask[5:9, 30:34, 2:4] = 1  # a second, separate lesion near the volume's first corner
    _save_canonical(mask, affine, phantom_files["mask"])
    manifest = _write_csv(tmp_path / "m" / "lesions.csv", ["volume", "mask", "label", "patient_id"],
                          [[phantom_files["volume"], phantom_files["mask"], "cyst", "p1"]])
    datalist = json.loads(datalist_from_volumes(manifest, tmp_path / "out").read_text())
    items = sorted((it for s in ("training", "validation", "test") for it in datalist[s]),
                   key=lambda it: it["lesion"])
    assert [(it["lesion"], it["image"], it["slice_index"]) for it in items] == [
        (1, "rois/p1_1.nii.gz", 2), (2, "rois/p1_2.nii.gz", CENTRE_VOXEL[2])]  # numbered from patient right


def test_rerun_reuses_cached_rois_and_new_settings_rewrite(tmp_path, phantom_files):
    out = tmp_path / "out"
    datalist_from_volumes(phantom_files["csv"], out, roi_mm=40)
    roi = out / "rois" / "p1_1.nii.gz"
    first = roi.stat().st_mtime_ns
    roi_json = (out / "datalist.json").read_text()
    datalist_from_volumes(phantom_files["csv"], out, roi_mm=40)
    assert roi.stat().st_mtime_ns == first and (out / "datalist.json").read_text() == roi_json
    datalist_from_volumes(phantom_files["csv"], out, roi_mm=20)
    assert roi.stat().st_mtime_ns != first


def test_mask_geometry_mismatch_names_both_files(tmp_path, phantom_files):
    hu, affine, mask = _phantom()
    _save_canonical(mask[:, :, :12], affine, phantom_files["mask"])
    with pytest.raises(InputError, match=r"mask shape \(64,40,12\) != volume shape \(64,40,16\)") as err:
        datalist_from_volumes(phantom_files["csv"], tmp_path / "out")
    assert err.value.path == str(phantom_files["mask"]) and "p1_ct.nii.gz" in err.value.reason
    shifted = affine.copy()
    shifted[0, 3] += 5
    _save_canonical(mask, shifted, phantom_files["mask"])
    with pytest.raises(InputError, match="mask origin"):
        datalist_from_volumes(phantom_files["csv"], tmp_path / "out")


def test_bad_volumes_raise_or_go_to_skipped_csv(tmp_path, phantom_files):
    data = phantom_files["csv"].parent
    (data / "broken.nii.gz").write_bytes(b"this is not a NIfTI file")
    nib.save(nib.Nifti1Image(np.zeros((8, 8), np.int16), np.eye(4)), data / "flat.nii.gz")
    rows = [["p1_ct.nii.gz", "cyst", "p1", *CENTRE_LPS, ""], ["missing.nii.gz", "cyst", "p2", 0, 0, 0, ""],
            ["broken.nii.gz", "cyst", "p3", 0, 0, 0, ""], ["flat.nii.gz", "cyst", "p4", 0, 0, 0, ""]]
    manifest = _write_csv(tmp_path / "manifest" / "m.csv", CENTROID_HEADER,
                          [[str(data / r[0]), *r[1:]] for r in rows])
    for bad, reason in [(1, "not found"), (2, "unreadable nifti"), (3, "not a volume")]:
        one = _write_csv(tmp_path / "manifest" / f"bad{bad}.csv", CENTROID_HEADER, [[str(data / rows[bad][0]),
                                                                                     *rows[bad][1:]]])
        with pytest.raises(InputError, match=reason) as err:
            datalist_from_volumes(one, tmp_path / f"out{bad}")
        assert err.value.path == str(data / rows[bad][0])
    path = datalist_from_volumes(manifest, tmp_path / "out", skip_bad=True)
    datalist = json.loads(path.read_text())
    assert sum(len(datalist[s]) for s in ("training", "validation", "test")) == 1
    with open(tmp_path / "out" / "skipped.csv") as f:
        skipped = list(csv.DictReader(f))
    assert [Path(r["file"]).name for r in skipped] == ["missing.nii.gz", "broken.nii.gz", "flat.nii.gz"]


def test_output_inside_input_folder_is_refused(phantom_files):
    with pytest.raises(InputError, match="inside the input folder"):
        datalist_from_volumes(phantom_files["csv"], phantom_files["csv"].parent / "out")
    assert not (phantom_files["csv"].parent / "out").exists()


def test_dicom_folder_with_two_series_names_them_and_accepts_a_choice(tmp_path, caplog):
    hu, _, _ = _phantom()
    folder = tmp_path / "series"
    _write_series(folder, hu, series_uid="1.2.826.0.1.1")
    _write_series(folder, hu[:, :, :8], series_uid="1.2.826.0.1.2", modality="MR")
    with pytest.raises(InputError, match=r"2 DICOM series.*1\.2\.826\.0\.1\.1.*1\.2\.826\.0\.1\.2"):
        read_volume(folder)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no DICOM series"):
        read_volume(tmp_path / "empty")
    with caplog.at_level(logging.WARNING, logger="medsynth.data.roi"):
        volume, _, meta = read_volume(folder, series_uid="1.2.826.0.1.2")
    assert volume.shape == (*SHAPE[:2], 8) and meta["modality"] == "MR"
    assert "Modality is MR, not CT" in caplog.text


def test_real_ct_liver_roi_and_orientation(tmp_path):
    from medsynth.data.sample_data import CT_ABDOMEN, pydicom_file

    try:
        source = pydicom_file(CT_ABDOMEN)
    except FileNotFoundError as e:
        pytest.skip(str(e))
    series = tmp_path / "ct"
    series.mkdir()
    shutil.copy(source, series)  # one J2K-compressed slice: a 1-slice series (decoded by ITK's GDCM)
    volume, affine, _ = read_volume(series)
    stored = pydicom.dcmread(source).pixel_array  # pydicom decodes the J2K with Pillow (no pylibjpeg/gdcm)
    assert np.array_equal(volume[:, ::-1, 0].T, stored)  # same HU; rows flipped to run anterior -> posterior
    # IPP (0, 0, -121), IOP 1\0\0\0\-1\0, 0.859375 mm: pixel (row, col) lies at LPS (0.86 col, -0.86 row).
    liver = (171.5 * 0.859375, -259.5 * 0.859375, -121.0)  # centre of rows 228:292, cols 140:204: pure liver
    centre = (255.5 * 0.859375, -255.5 * 0.859375, -121.0)
    roi, overview = extract_rois(volume, [liver, centre], affine, roi_mm=40), extract_rois(
        volume, [centre], affine, roi_mm=400)[0]
    assert 85 < roi[0].image.mean() < 112 and roi[0].image.std() < 30  # liver ~98 HU, sd 16
    bone = np.argwhere(overview.image > 400)  # (X, Y): X to patient left, Y to posterior
    assert bone[:, 1].mean() > 36  # the spine is posterior, although stored at the top of the image
    liver_px = np.argwhere((overview.image > 80) & (overview.image < 120))
    assert np.median(liver_px[:, 0]) < 32  # the liver (and the bulk of this soft tissue) is on the right


def test_demo_ct_set_mask_and_dicom_centroid_routes_agree(tmp_path):
    from medsynth.demo.writer import write_demo_dataset

    demo = write_demo_dataset("ct", tmp_path / "demo", n=6, seed=3)
    with open(demo.root / "lesions.csv") as f:
        lesions = list(csv.DictReader(f))
    manifest = _write_csv(tmp_path / "manifests" / "dicom.csv", CENTROID_HEADER, [
        [str(demo.root / r["dicom_series"]), r["label"], r["patient_id"], r["centroid_x_mm"],
         r["centroid_y_mm"], r["centroid_z_mm"], r["diameter_mm"]] for r in lesions])
    by_mask = json.loads(datalist_from_volumes(demo.root / "lesions.csv", tmp_path / "mask").read_text())
    by_dicom = json.loads(datalist_from_volumes(manifest, tmp_path / "dicom").read_text())
    assert by_mask["classes"] == sorted({r["label"] for r in lesions}) == by_dicom["classes"]

    def rois(datalist: dict, root: Path) -> dict:
        items = [it for s in ("training", "validation", "test") for it in datalist[s]]
        return {(it["patient_id"], it["slice_index"], it["label"]): nib.load(root / it["image"]).get_fdata()
                for it in items}

    a, b = rois(by_mask, tmp_path / "mask"), rois(by_dicom, tmp_path / "dicom")
    assert len(a) == len(lesions) and a.keys() == b.keys()  # same slices and labels lesion by lesion
    for key in a:
        assert np.corrcoef(a[key].ravel(), b[key].ravel())[0, 1] > 0.95 and np.abs(a[key] - b[key]).mean() < 5
