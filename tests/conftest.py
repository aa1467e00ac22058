"""Shared small fixtures: tiny images in ``tmp_path`` (never in the repository)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

# class -> patient -> number of 8x12 gray PNGs, named "<patient>_<i>.png"
PNG_TREE = {"benign": {"p1": 2, "p2": 2, "p3": 2}, "malignant": {"p4": 2, "p5": 2}}


def _pixels(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (8, 12), dtype=np.uint8)


@pytest.fixture
def png_tree(tmp_path: Path) -> Path:
    """``tmp_path/data/<class>/<patient>_<i>.png`` laid out as ``PNG_TREE`` (10 images, 5 patients)."""
    root, seed = tmp_path / "data", 0
    for cls, patients in PNG_TREE.items():
        (root / cls).mkdir(parents=True)
        for patient, n in patients.items():
            for i in range(n):
                Image.fromarray(_pixels(seed)).save(root / cls / f"{patient}_{i}.png")
                seed += 1
    return root


def write_dicom(
    path: Path,
    pixels: np.ndarray | None,
    *,
    patient_id: str = "P1",
    modality: str = "OT",
    photometric: str = "MONOCHROME2",
    rescale: tuple[float, float] | None = None,
    bits_stored: int | None = None,
) -> Path:
    """Write a minimal Secondary Capture DICOM; ``pixels`` is (R, C), (F, R, C) or (R, C, 3) with RGB.

    ``pixels`` are stored as they are (a MONOCHROME1 caller passes already-inverted values);
    ``bits_stored`` defaults to the full width of the dtype.
    """
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.PatientID, ds.Modality = patient_id, modality
    if pixels is not None:
        ds.set_pixel_data(pixels, photometric, bits_stored or 8 * pixels.itemsize)
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture
def dicom_writer():
    """The :func:`write_dicom` helper, for tests in any folder."""
    return write_dicom
