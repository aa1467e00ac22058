"""Small test-data writers shared by test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid


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


def random_predictions(n: int = 7, k: int = 2, seed: int = 0) -> tuple[list[dict], np.ndarray, np.ndarray, np.ndarray]:
    """``(items, y (n,), probs (n, k), pred (n,))`` of a random classifier, for report and plot writers."""
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(k), size=n)
    y = rng.integers(0, k, n)
    items = [{"image": f"/data/img,{i}.png", "label": int(y[i]), "patient_id": f"p{i // 2}", "source": "real"}
             for i in range(n)]
    return items, y, probs, probs.argmax(1)


class FakeTTY(io.StringIO):
    """A stream that says it is a terminal, so tqdm draws its bars into it (``getvalue()`` reads them)."""

    def isatty(self) -> bool:
        return True


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``logits (N, K)``."""
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def tied_scores(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(y (n,), probs (n, k))``: labels with every class present and integer-logit softmax scores (many ties),
    mildly informative."""
    rng = np.random.default_rng(seed)
    y = np.r_[np.arange(k), rng.choice(k, n - k, p=np.r_[0.2, np.full(k - 1, 0.8 / (k - 1))])]
    logits = rng.integers(0, 4, (n, k)).astype(float)
    logits[np.arange(n), y] += rng.integers(0, 3, n)
    return y, softmax(logits)
