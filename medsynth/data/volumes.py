"""Read CT volumes (NIfTI files, DICOM series folders) in HU, in one orientation, and compare grids.

* :func:`read_volume` returns ``(X, Y, Z)`` arrays in **LPS voxel order**: +X towards the patient's left
  (image right in radiological display), +Y posterior (image down), +Z superior, so ``vol[:, :, k]`` is an
  axial slice laid out ``(X, Y)``, the ``(W, H)`` layout MONAI's ``PILReader`` gives PNGs. Any input
  orientation is flipped/permuted to this one (nearest axes; oblique scans are not resampled).
* Affines map voxel indices to **RAS** mm, as NIfTI and MONAI ``MetaTensor.affine`` do.
* Readers: NIfTI through MONAI ``NibabelReader`` (nibabel applies ``scl_slope/scl_inter``); a DICOM series
  folder through MONAI ``ITKReader`` (GDCM sorts slices by position and applies RescaleSlope/Intercept, so
  values are HU; MONAI's ``PydicomReader`` sorts by InstanceNumber instead). Both readers' default
  ``affine_lps_to_ras=True`` yields RAS affines, so the same data read from NIfTI or DICOM gives the same
  array after the LPS reorientation.
"""

from __future__ import annotations

import functools
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from medsynth.errors import InputError

logger = logging.getLogger(__name__)


def to_lps(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flip/permute ``array (X, Y, Z)`` to LPS voxel order; returns it with its updated RAS affine."""
    start = nib.orientations.io_orientation(affine)
    xform = nib.orientations.ornt_transform(start, nib.orientations.axcodes2ornt(("L", "P", "S")))
    out = nib.orientations.apply_orientation(array, xform)
    return np.ascontiguousarray(out), affine @ nib.orientations.inv_ornt_aff(xform, array.shape)


def _dicom_series(folder: Path, series_uid: str | None) -> tuple[str, dict]:
    """Pick the ITK series id in ``folder`` whose SeriesInstanceUID is ``series_uid`` (or the only one)."""
    import itk
    import pydicom

    gen = itk.GDCMSeriesFileNames.New()  # the same settings as MONAI's ITKReader, so its ids match
    gen.SetUseSeriesDetails(True)
    gen.AddSeriesRestriction("0008|0021")
    gen.SetDirectory(str(folder))
    found: dict[str, list[tuple[str, dict]]] = {}
    for itk_id in gen.GetSeriesUIDs():
        files = list(gen.GetFileNames(itk_id))
        ds = pydicom.dcmread(files[0], stop_before_pixels=True)
        info: dict[str, Any]
        info = {"series_uid": str(ds.get("SeriesInstanceUID", "")), "modality": str(ds.get("Modality", "")),
                "description": str(ds.get("SeriesDescription", "")), "n_files": len(files)}
        found.setdefault(info["series_uid"], []).append((itk_id, info))
    if not found:
        raise InputError(folder, "no DICOM series found in this folder")
    if series_uid is None and len(found) > 1:
        listed = "; ".join(f"{uid} ({i['modality']} {i['description']!r}, {i['n_files']} files)"
                           for uid, ((_, i), *_) in found.items())
        raise InputError(folder, f"{len(found)} DICOM series here: {listed}; choose one by SeriesInstanceUID")
    uid = series_uid if series_uid is not None else next(iter(found))
    if uid not in found:
        raise InputError(folder, f"no series with SeriesInstanceUID {uid}; found {', '.join(found)}")
    if len(found[uid]) > 1:
        raise InputError(folder, f"series {uid} splits into {len(found[uid])} stacks (different orientation, "
                                 "size or date); separate them into their own folders")
    return found[uid][0]


@functools.cache
def _loader():
    """One MONAI ``LoadImage`` (building one registers every reader, and MONAI logs a warning each time)."""
    from monai.transforms import LoadImage

    return LoadImage(image_only=True)


def _load(path: Path, series_uid: str | None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Read with MONAI: ``(array (X, Y, Z) float32 as stored, RAS affine, info)``; raises InputError."""
    from monai.data import ImageReader, ITKReader, NibabelReader

    if not path.exists():
        raise InputError(path, "file or folder not found")
    name = path.name.lower()
    reader: ImageReader
    if path.is_dir():
        itk_id, info = _dicom_series(path, series_uid)
        reader, info = ITKReader(series_name=itk_id), {"format": "dicom", **info}
    elif name.endswith((".nii", ".nii.gz")):
        reader, info = NibabelReader(), {"format": "nifti"}
    elif name.endswith(".dcm"):
        reader, info = ITKReader(), {"format": "dicom"}
    else:
        raise InputError(path, "not a volume: expected a NIfTI file (.nii/.nii.gz) or a DICOM series folder")
    try:
        with warnings.catch_warnings():  # ITKReader warns of several series even when told which to read
            warnings.filterwarnings("ignore", message=r"the directory: .* contains more than one DICOM")
            img = _loader()(str(path), reader=reader)
    except Exception as e:  # readers raise anything from OSError to RuntimeError on corrupt input
        raise InputError(path, f"unreadable {info['format']} volume ({type(e).__name__}: {e})") from None
    array = img.numpy()
    if array.ndim == 4 and array.shape[3] == 1:
        array = array[..., 0]
    single_dicom = info["format"] == "dicom" and not path.is_dir() and array.ndim == 3 and array.shape[2] == 1
    if array.ndim != 3 or single_dicom:
        raise InputError(path, f"not a volume: image shape {tuple(img.shape)}; expected 3D (X, Y, Z) "
                               "(a DICOM series is a folder of slices)")
    return array, np.asarray(img.affine, dtype=float), info


def read_volume(path: str | os.PathLike, *, series_uid: str | None = None,
                check_hu: bool = True) -> tuple[np.ndarray, np.ndarray, dict]:
    """Read a CT volume: ``(volume (X, Y, Z) float32 HU in LPS order, RAS affine 4x4, meta)``.

    ``path`` is a NIfTI file or a folder holding one DICOM series (``series_uid`` picks one of several).
    ``meta`` has ``format``, ``spacing`` (mm, in the returned axis order), and ``source_shape`` /
    ``source_affine`` as stored (used to compare a mask's geometry). Logs a warning when the DICOM Modality is
    not CT, or a NIfTI holds nothing below -200 (no air: probably not HU).

    Raises:
        InputError: naming ``path`` when it is missing, unreadable, 2D, or an ambiguous DICOM folder.
    """
    path = Path(path)
    raw, affine, info = _load(path, series_uid)
    volume, lps_affine = to_lps(raw, affine)
    meta = {**info, "path": str(path), "source_shape": raw.shape, "source_affine": affine,
            "spacing": tuple(float(s) for s in np.linalg.norm(lps_affine[:3, :3], axis=0))}
    if check_hu and info.get("modality") not in (None, "CT"):
        logger.warning("%s: DICOM Modality is %s, not CT; values may not be HU", path, info["modality"])
    if check_hu and info["format"] == "nifti" and volume.min() > -200:
        logger.warning("%s: minimum %.0f; a CT in HU has air near -1000. Is it HU?", path, volume.min())
    return volume, lps_affine, meta


def check_same_geometry(volume_meta: dict, mask_meta: dict) -> None:
    """Raise InputError naming both files when the mask's grid differs from its volume's."""
    va, ma = volume_meta["source_affine"], mask_meta["source_affine"]
    vs, ms = np.linalg.norm(va[:3, :3], axis=0), np.linalg.norm(ma[:3, :3], axis=0)

    def fmt(v: Sequence[float]) -> str:
        return "(" + ",".join(f"{x:g}" for x in np.round(v, 4)) + ")"

    problems = []
    if tuple(mask_meta["source_shape"]) != tuple(volume_meta["source_shape"]):
        problems.append(f"mask shape {fmt(mask_meta['source_shape'])} != volume shape "
                        f"{fmt(volume_meta['source_shape'])}")
    elif not np.allclose(ms, vs, rtol=1e-4, atol=1e-4):
        problems.append(f"mask spacing {fmt(ms)} != volume spacing {fmt(vs)}")
    elif not np.allclose(ma[:3, 3], va[:3, 3], atol=1e-2):
        problems.append(f"mask origin {fmt(ma[:3, 3])} != volume origin {fmt(va[:3, 3])} (RAS mm)")
    elif not np.allclose(ma[:3, :3] / ms, va[:3, :3] / vs, atol=1e-4):
        problems.append("mask direction cosines differ from the volume's")
    if problems:
        raise InputError(mask_meta["path"], f"does not match its volume {volume_meta['path']}: {problems[0]}")
