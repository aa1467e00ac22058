"""Small, general DICOM writers (pydicom 3): a CT series in HU and a single-frame radiograph.

Files carry no source patient data and are marked derived/secondary; every UID derives from a caller's
``uid_seed`` (same seed, same bytes), dates are fixed, and nothing depends on the clock. They use Explicit
VR Little Endian with a full file meta header and pass ``dciodvfy`` without errors.

Geometry follows DICOM: patient coordinates are LPS (+x patient left, +y posterior, +z superior), a volume
is ``(Z, Y, X)`` = (slice, row, column), and ``spacing``/``origin`` are ``(x, y, z)`` mm as in ITK, so
``ImagePositionPatient`` of slice ``k`` is ``origin + k * (0, 0, spacing_z)`` with rows along +x and
columns along +y (``ImageOrientationPatient = 1\\0\\0\\0\\1\\0``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_ROOT_UID,
    UID,
    ComputedRadiographyImageStorage,
    CTImageStorage,
    ExplicitVRLittleEndian,
    generate_uid,
)

SYNTHETIC_DESCRIPTION = "medsynth demo phantom (synthetic)"
FIXED_DATE, FIXED_TIME = "20000101", "000000"


def deterministic_uid(*parts: object, prefix: str = PYDICOM_ROOT_UID) -> UID:
    """UID from ``prefix`` and a SHA-512 of ``parts``: the same parts always give the same UID."""
    return generate_uid(prefix=prefix, entropy_srcs=["\x1f".join(str(p) for p in parts)])


def _ds(x: float) -> str:
    """A DS value string (at most 16 characters) that round-trips ``x`` to 1e-6."""
    text = f"{x:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def base_dataset(
    sop_class: str, sop_instance: str, patient_id: str, study_uid: str, series_uid: str, modality: str
) -> Dataset:
    """Dataset with file meta, SOP Common, Patient, General Study/Series/Equipment and synthetic markers."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(sop_class)
    ds.file_meta.MediaStorageSOPInstanceUID = UID(sop_instance)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_instance
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = FIXED_DATE
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = FIXED_TIME
    ds.AccessionNumber, ds.Modality, ds.Manufacturer = "", modality, "medsynth"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = ds.SeriesDescription = SYNTHETIC_DESCRIPTION
    ds.PatientName, ds.PatientID = f"DEMO^{patient_id}", patient_id
    ds.PatientBirthDate, ds.PatientSex = "", "O"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.StudyID, ds.SeriesNumber = "1", 1
    ds.BurnedInAnnotation = "NO"
    ds.DerivationDescription = "Procedurally generated phantom; no patient data"
    return ds


def _set_pixels(ds: Dataset, pixels: np.ndarray, bits_stored: int, signed: bool, photometric: str) -> None:
    """Image Pixel module for a 2D ``(rows, columns)`` 16-bit array."""
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits_stored, bits_stored - 1
    ds.PixelRepresentation = int(signed)
    ds.PixelData = np.ascontiguousarray(pixels.astype("<i2" if signed else "<u2")).tobytes()


def ct_storage(volume_hu: np.ndarray) -> tuple[np.ndarray, int, bool, int]:
    """Stored values, BitsStored, signedness and RescaleIntercept for an integer HU volume.

    HU in ``[-1024, 3071]`` are stored as 12-bit unsigned ``HU + 1024`` (intercept -1024, the usual CT
    form); anything outside as signed 16-bit with intercept 0. Slope is 1 either way, so
    ``apply_modality_lut`` returns the HU exactly.
    """
    volume_hu = np.asarray(volume_hu)
    if not np.issubdtype(volume_hu.dtype, np.integer):
        raise ValueError(f"volume_hu must hold integers (HU), got {volume_hu.dtype}")
    if volume_hu.min() >= -1024 and volume_hu.max() <= 3071:
        return (volume_hu.astype(np.int32) + 1024).astype(np.uint16), 12, False, -1024
    if volume_hu.min() < -32768 or volume_hu.max() > 32767:
        raise ValueError("volume_hu does not fit in 16 bits")
    return volume_hu.astype(np.int16), 16, True, 0


def write_ct_series(
    volume_hu: np.ndarray,
    spacing: Sequence[float],
    origin: Sequence[float],
    out_dir: str | os.PathLike,
    patient_id: str,
    uid_seed: object,
    window: tuple[float, float] = (40.0, 400.0),
    series_description: str = SYNTHETIC_DESCRIPTION,
    body_part: str = "ABDOMEN",
) -> list[Path]:
    """Write ``volume_hu (Z, Y, X)`` (integer HU) as CT Image Storage files ``IM_0001.dcm``... in ``out_dir``.

    ``spacing`` and ``origin`` are ``(x, y, z)`` mm in LPS; ``origin`` is the centre of voxel ``[0, 0, 0]``
    and slice ``k`` lies at ``z = origin_z + k * spacing_z`` (slice 1 is the most inferior when
    ``spacing_z > 0``). ``window`` is (centre, width) in HU. Study, series, frame-of-reference and instance
    UIDs derive from ``(uid_seed, patient_id)``, so give each series its own ``uid_seed``. Returns the
    written paths in slice order.
    """
    volume_hu = np.asarray(volume_hu)
    if volume_hu.ndim != 3:
        raise ValueError(f"volume_hu must be (Z, Y, X), got shape {volume_hu.shape}")
    stored, bits, signed, intercept = ct_storage(volume_hu)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    study, series = (
        deterministic_uid(uid_seed, patient_id, "study"),
        deterministic_uid(uid_seed, patient_id, "series"),
    )
    ds = base_dataset(CTImageStorage, "", patient_id, study, series, "CT")
    ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
    ds.SeriesDescription, ds.BodyPartExamined = series_description, body_part
    ds.AcquisitionNumber, ds.KVP = 1, ""
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = intercept, 1, "HU"
    ds.WindowCenter, ds.WindowWidth = _ds(window[0]), _ds(window[1])
    frame, paths = deterministic_uid(uid_seed, patient_id, "frame"), []
    for k in range(volume_hu.shape[0]):  # one dataset, re-stamped per slice: far faster than rebuilding it
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = deterministic_uid(
            uid_seed, patient_id, "ct", k
        )
        ds.InstanceNumber = k + 1
        _set_ct_geometry(ds, spacing, origin, k, frame)
        _set_pixels(ds, stored[k], bits, signed, "MONOCHROME2")
        paths.append(out_dir / f"IM_{k + 1:04d}.dcm")
        ds.save_as(paths[-1], enforce_file_format=True)
    return paths


def _set_ct_geometry(
    ds: Dataset, spacing: Sequence[float], origin: Sequence[float], k: int, frame: str
) -> None:
    """Frame of Reference and Image Plane attributes of slice ``k`` (axial, LPS)."""
    dx, dy, dz = (float(s) for s in spacing)
    z = float(origin[2]) + k * dz
    ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = frame, ""
    ds.PatientPosition = "HFS"
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.ImagePositionPatient = [_ds(origin[0]), _ds(origin[1]), _ds(z)]
    ds.PixelSpacing = [_ds(dy), _ds(dx)]  # row spacing (between rows, along y), then column spacing
    ds.SliceThickness, ds.SpacingBetweenSlices, ds.SliceLocation = _ds(abs(dz)), _ds(abs(dz)), _ds(z)


def write_radiograph(
    image: np.ndarray,
    path: str | os.PathLike,
    photometric: str,
    patient_id: str,
    uid_seed: object,
    pixel_spacing: tuple[float, float] = (0.2, 0.2),
    bits_stored: int = 12,
    body_part: str = "LEG",
    laterality: str = "",
    series_description: str = SYNTHETIC_DESCRIPTION,
) -> Path:
    """Write a radiograph ``image (H, W)`` as a CR Image Storage file and return ``path``.

    ``image`` holds unsigned integers in ``[0, 2**bits_stored - 1]`` in display sense (high = bright).
    ``photometric="MONOCHROME1"`` stores ``2**bits_stored - 1 - image`` (high = dark), ``"MONOCHROME2"``
    stores ``image`` as is, so both files show the same picture in a conforming viewer. ``laterality``
    (R or L) is left empty by default, which ``dciodvfy`` accepts with a warning for a paired body part.
    """
    image = np.asarray(image)
    top = 2**bits_stored - 1
    if image.ndim != 2 or not np.issubdtype(image.dtype, np.integer) or image.min() < 0 or image.max() > top:
        raise ValueError(f"image must be a 2D integer array in [0, {top}], got {image.dtype} {image.shape}")
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ValueError(f"photometric must be MONOCHROME1 or MONOCHROME2, got {photometric!r}")
    stored = top - image if photometric == "MONOCHROME1" else image
    sop = deterministic_uid(uid_seed, patient_id, "cr", Path(path).name)
    study = deterministic_uid(uid_seed, patient_id, "study")
    ds = base_dataset(
        ComputedRadiographyImageStorage, sop, patient_id, study, deterministic_uid(sop, "series"), "CR"
    )
    ds.SeriesDescription = series_description
    ds.BodyPartExamined, ds.Laterality = body_part, laterality  # empty laterality: unknown (a warning)
    ds.ViewPosition, ds.PatientOrientation = "", ""
    ds.InstanceNumber = 1
    ds.PixelSpacing = ds.ImagerPixelSpacing = [_ds(pixel_spacing[0]), _ds(pixel_spacing[1])]
    ds.WindowCenter, ds.WindowWidth = _ds((top + 1) / 2), _ds(top + 1)
    _set_pixels(ds, stored, bits_stored, False, photometric)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return Path(path)
