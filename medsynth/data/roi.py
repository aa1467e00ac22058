"""CT volumes -> lesion ROIs in HU -> datalist (as Frid-Adar et al. 2018: crop each lesion, resize to 64x64).

Conventions used throughout:

* Volumes come from :func:`medsynth.data.volumes.read_volume`: ``(X, Y, Z)`` in LPS voxel order with RAS
  affines (see that module). Lesion centroids in manifests are **LPS** mm (DICOM patient coordinates, as
  ``lesions.csv`` of the demo), so x and y flip sign against the affines.
* ROIs stay in HU (int16 on disk); the display/normalisation window is recorded in the datalist and applied
  by the CT transform preset: CT stays in HU until a declared window.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import nibabel as nib
import numpy as np
from scipy import ndimage

from medsynth.data.datalist import build_datalist, write_datalist
from medsynth.data.splits import DEFAULT_FRACTIONS
from medsynth.data.volumes import check_same_geometry, read_volume, to_lps
from medsynth.errors import InputError, SkipLog, refuse_output_inside
from medsynth.fileio import atomic_write, atomic_write_text, read_json

logger = logging.getLogger(__name__)

# Liver window W300/L50: fat (-100) to blood-pool enhancement (~180 HU) stay inside it, so cysts (0-10),
# metastases (30-60), hemangioma nodules (150-180) and parenchyma (~100) keep contrast; air and bone clip.
DEFAULT_WINDOW = (-100.0, 200.0)
ROI_SCALE, ROI_MIN_MM, ROI_DEFAULT_MM = 2.0, 32.0, 64.0  # adaptive side: max(min, scale x extent)
PAD_HU = -1024.0  # air, outside the field of view
ROI_FILTER = "bilinear, Gaussian anti-aliasing when shrinking (sigma=(factor-1)/2)"
_ROI_VERSION = 1  # bump when the extraction arithmetic changes: invalidates cached ROI files


@dataclass
class Roi:
    """One lesion ROI: ``image (out_size, out_size)`` float32 HU in ``(X, Y)`` layout and its geometry."""

    image: np.ndarray
    affine: np.ndarray  # 4x4 RAS affine of the 2D ROI (pixel size side_mm / out_size)
    lesion: int
    slice_index: int  # k in the LPS-ordered volume (0 = most inferior)
    centre_lps: tuple[float, float, float]
    side_mm: float
    window: tuple[float, float]

    def windowed(self) -> np.ndarray:
        """``image`` mapped through ``window`` to [0, 1] (for previews)."""
        lo, hi = self.window
        return np.clip((self.image - lo) / (hi - lo), 0.0, 1.0)


def _mask_lesions(mask: np.ndarray, mask_value: int | None) -> list[tuple[int, tuple, np.ndarray]]:
    """``(lesion id, bounding box slices, boolean lesion voxels in the box)`` per lesion: the voxels equal to
    ``mask_value``, or else each 26-connected component of ``mask > 0``, numbered 1.. in the scan order of
    the LPS array (x slowest: the component reaching furthest to the patient's right comes first)."""
    values = np.rint(mask)
    if mask_value is not None:
        labels, ids = (values == mask_value).astype(np.int32), [1]
        if not labels.any():
            present = sorted(int(v) for v in np.unique(values) if v > 0)
            raise InputError(None, f"mask value {mask_value} not found (values present: {present})")
    else:
        labels, n = ndimage.label(values > 0, structure=np.ones((3, 3, 3)))
        ids = list(range(1, n + 1))
        if n == 0:
            raise InputError(None, "mask has no lesion voxels (all zero)")
    boxes = ndimage.find_objects(labels)
    return [(int(mask_value) if mask_value is not None else i, boxes[i - 1], labels[boxes[i - 1]] == i)
            for i in ids]


def _lesion_plane(box: tuple, sel: np.ndarray, spacing: Sequence[float]) -> tuple[int, float, float, float]:
    """Slice of largest lesion area (ties: nearest the 3D centroid), in-plane centroid, and extent: the
    longest in-plane diameter (maximum caliper width over 5-degree steps, plus one pixel), in mm."""
    areas = sel.sum(axis=(0, 1))
    zc = float((areas * np.arange(len(areas))).sum() / areas.sum())
    best = np.flatnonzero(areas == areas.max())
    k = int(best[np.argmin(np.abs(best - zc))])
    ii, jj = np.nonzero(sel[:, :, k])
    ii, jj = ii + box[0].start, jj + box[1].start
    points = np.stack([ii * spacing[0], jj * spacing[1]], axis=1)
    angles = np.deg2rad(np.arange(0, 180, 5))
    widths = np.ptp(points @ np.stack([np.cos(angles), np.sin(angles)]), axis=0)
    return k + box[2].start, float(ii.mean()), float(jj.mean()), float(widths.max() + np.mean(spacing[:2]))


def _centroid_plane(centroid: Sequence[float], affine: np.ndarray, shape: Sequence[int]) -> tuple:
    """Voxel slice index and in-plane position of an LPS point; InputError when it lies outside."""
    x, y, z = (float(c) for c in centroid[:3])
    ci, cj, ck = (np.linalg.inv(affine) @ np.array([-x, -y, z, 1.0]))[:3]  # LPS -> RAS -> voxel
    k = int(np.rint(ck))
    if not (0 <= k < shape[2] and -0.5 <= ci <= shape[0] - 0.5 and -0.5 <= cj <= shape[1] - 0.5):
        raise InputError(None, f"centroid ({x:g}, {y:g}, {z:g}) mm LPS lies outside the volume "
                               f"(voxel {ci:.1f}, {cj:.1f}, {ck:.1f} of shape {tuple(shape)})")
    return k, float(ci), float(cj)


def _sample_square(plane: np.ndarray, spacing: Sequence[float], centre: Sequence[float], side_mm: float,
                   out_size: int) -> np.ndarray:
    """Resample a ``side_mm`` square of ``plane (X, Y)`` centred at voxel ``centre`` to ``(out, out)``.

    Bilinear, after a Gaussian anti-aliasing blur with sigma ``(factor - 1) / 2`` px where the ROI shrinks
    (scikit-image's convention); outside the image is air (``PAD_HU``).
    """
    pixel = side_mm / out_size
    offsets = (np.arange(out_size) + 0.5 - out_size / 2) * pixel
    axes = [c + offsets / s for c, s in zip(centre, spacing[:2], strict=True)]
    sigma = [max(0.0, (pixel / s - 1) / 2) for s in spacing[:2]]
    margin = int(math.ceil(3 * max(sigma))) + 2
    lo = [int(math.floor(a[0])) - margin for a in axes]
    hi = [int(math.ceil(a[-1])) + margin + 1 for a in axes]
    region = np.full((hi[0] - lo[0], hi[1] - lo[1]), PAD_HU, dtype=np.float32)
    src = tuple(slice(max(l_, 0), min(h, n)) for l_, h, n in zip(lo, hi, plane.shape, strict=True))
    dst = tuple(slice(s.start - l_, s.stop - l_) for s, l_ in zip(src, lo, strict=True))
    region[dst] = plane[src]
    if max(sigma) > 0:
        region = ndimage.gaussian_filter(region, sigma, mode="nearest")
    grid = np.meshgrid(axes[0] - lo[0], axes[1] - lo[1], indexing="ij")
    return ndimage.map_coordinates(region, grid, order=1, mode="nearest").astype(np.float32)


def _roi_affine(affine: np.ndarray, centre: Sequence[float], k: int, side_mm: float,
                out_size: int) -> np.ndarray:
    """RAS affine of the 2D ROI: the volume's axes, pixel size ``side_mm / out_size``, on slice ``k``."""
    pixel = side_mm / out_size
    unit = affine[:3, :2] / np.linalg.norm(affine[:3, :2], axis=0)
    world = (affine @ np.array([centre[0], centre[1], k, 1.0]))[:3]
    out = np.eye(4)
    out[:3, :2] = unit * pixel
    out[:3, 2] = affine[:3, 2]
    out[:3, 3] = world + unit.sum(axis=1) * (0.5 - out_size / 2) * pixel
    return out


def _lesion_planes(volume: np.ndarray, affine: np.ndarray, lesions: np.ndarray | Sequence[Sequence[float]],
                   mask_value: int | None) -> list[tuple[int, int, float, float, float | None]]:
    """``(lesion id, slice k, centre i, centre j, extent mm or None)`` per lesion of an LPS-ordered volume."""
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    if isinstance(lesions, np.ndarray) and lesions.ndim == 3:
        return [(lesion, *_lesion_plane(box, sel, spacing))
                for lesion, box, sel in _mask_lesions(lesions, mask_value)]
    planes = []
    for i, c in enumerate(lesions, start=1):
        diameter = float(c[3]) if len(c) > 3 and c[3] is not None else None
        planes.append((i, *_centroid_plane(c, affine, volume.shape), diameter))
    return planes


def extract_rois(volume: np.ndarray, mask_or_centroids: np.ndarray | Sequence[Sequence[float]],
                 affine: np.ndarray, *, roi_mm: float | None = None, window: Sequence[float] = DEFAULT_WINDOW,
                 out_size: int = 64, mask_value: int | None = None) -> list[Roi]:
    """Square axial ROIs ``(out_size, out_size)`` in HU, ``(X, Y)`` layout in LPS order, one per lesion.

    Args:
        volume: ``(X, Y, Z)`` HU with RAS ``affine``, any orientation (it is brought to LPS order first).
        mask_or_centroids: an integer mask shaped like ``volume`` (each 26-connected component of ``mask > 0``
            is a lesion, see ``_mask_lesions``; or, with ``mask_value``, the voxels of that value) cut on
            the slice of largest lesion area at its in-plane centroid; or ``(x, y, z[, diameter])`` LPS mm
            centroids (lesion ids 1..), cut on the slice through the centroid.
        roi_mm: fixed side in mm. Default adaptive: ``max(ROI_MIN_MM, ROI_SCALE * extent)``, the extent
            being the mask's longest in-plane diameter or the centroid's diameter, else ``ROI_DEFAULT_MM``.
        window: HU window recorded with each ROI; not applied, the ROI keeps HU.
        out_size: output side in pixels; resampled by ``_sample_square`` (bilinear, anti-aliased).
    """
    volume, affine = np.asarray(volume, dtype=np.float32), np.asarray(affine, dtype=float)
    lesions = mask_or_centroids
    if isinstance(lesions, np.ndarray) and lesions.ndim == 3:
        if lesions.shape != volume.shape:
            raise InputError(None, f"mask shape {lesions.shape} != volume shape {volume.shape}")
        lesions = to_lps(lesions, affine)[0]
    volume, affine = to_lps(volume, affine)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    rois = []
    for lesion, k, ci, cj, extent in _lesion_planes(volume, affine, lesions, mask_value):
        side = ROI_DEFAULT_MM if extent is None else max(ROI_MIN_MM, ROI_SCALE * extent)
        side = float(roi_mm) if roi_mm else side
        image = _sample_square(volume[:, :, k], spacing, (ci, cj), side, out_size)
        ras = affine @ np.array([ci, cj, k, 1.0])
        rois.append(Roi(image, _roi_affine(affine, (ci, cj), k, side, out_size), lesion, k,
                        (-float(ras[0]), -float(ras[1]), float(ras[2])), side,
                        cast("tuple[float, float]", tuple(window))))  # (low, high), not checked here
    return rois


def save_roi(roi: Roi, path: str | os.PathLike) -> Path:
    """Write ``roi`` as a 2D int16 HU NIfTI (atomically); ``cal_min/cal_max`` carry the window for viewers."""
    path = Path(path)
    data = np.clip(np.rint(roi.image), -32768, 32767).astype(np.int16)
    img = nib.Nifti1Image(data, roi.affine)
    img.header.set_xyzt_units("mm")
    img.header["cal_min"], img.header["cal_max"] = roi.window
    img.header["descrip"] = b"medsynth lesion ROI, HU"
    img.set_qform(roi.affine, code=1)
    img.set_sform(roi.affine, code=1)
    return atomic_write(path, lambda tmp: nib.save(img, tmp), suffix=".tmp.nii.gz")


_CENTROID_COLUMNS = ("centroid_x_mm", "centroid_y_mm", "centroid_z_mm")


@dataclass
class _Row:
    number: int  # 1-based data row of the manifest
    patient_id: str
    label: str
    volume: Path
    mask: Path | None
    mask_value: int | None
    centroid: tuple | None  # (x, y, z, diameter or None) LPS mm
    series_uid: str | None


def _read_manifest(path: Path) -> list[dict]:
    """The manifest's rows as dicts; InputError when it is missing or lacks the needed columns."""
    try:
        with open(path, newline="") as f:
            rows = [{k.strip(): (v or "").strip() for k, v in r.items() if k} for r in csv.DictReader(f)]
    except FileNotFoundError:
        raise InputError(path, "manifest CSV not found") from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise InputError(path, f"not a readable CSV ({e})") from None
    if not rows:
        raise InputError(path, "the manifest has no data rows")
    missing = [c for c in ("volume", "label", "patient_id") if c not in rows[0]]
    if "mask" not in rows[0] and not set(_CENTROID_COLUMNS) <= set(rows[0]):
        missing.append("mask or centroid_x_mm,centroid_y_mm,centroid_z_mm")
    if missing:
        raise InputError(path, f"missing columns: {'; '.join(missing)}")
    return rows


def _resolve(value: str, base: Path) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


def _parse_row(raw: dict, number: int, manifest: Path) -> _Row:
    """Check one manifest row; mask route when ``mask`` is filled, else the centroid route."""
    where, base = f"row {number}", manifest.parent
    if not raw.get("volume") or not raw.get("label") or not raw.get("patient_id"):
        raise InputError(manifest, f"{where}: volume, label and patient_id must be filled")
    mask = _resolve(raw["mask"], base) if raw.get("mask") else None
    centroid, mask_value = None, None
    try:
        if mask is not None and raw.get("mask_value"):
            mask_value = int(float(raw["mask_value"]))
        elif mask is None:
            diameter = float(raw["diameter_mm"]) if raw.get("diameter_mm") else None
            centroid = (*(float(raw[c]) for c in _CENTROID_COLUMNS), diameter)
    except (KeyError, ValueError) as e:
        raise InputError(manifest, f"{where}: needs a mask or numeric centroid_x/y/z_mm ({e})") from None
    return _Row(number, raw["patient_id"], raw["label"], _resolve(raw["volume"], base), mask, mask_value,
                centroid, raw.get("series_uid") or None)


def _stat(path: Path) -> list:
    if path.is_dir():
        return sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in os.scandir(path)
                      if e.is_file())
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _row_key(row: _Row, settings: dict) -> str | None:
    """Hash of all that decides a row's ROI pixels (inputs' size and mtime included); None if missing."""
    try:
        stats = [_stat(row.volume), _stat(row.mask) if row.mask else None]
    except OSError:
        return None
    fields = [row.number, row.patient_id, str(row.volume.resolve()), row.mask and str(row.mask.resolve()),
              row.mask_value, row.centroid, row.series_uid]
    text = json.dumps({"row": fields, "stats": stats, "settings": settings, "v": _ROI_VERSION}, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _cached_rois(sidecar: Path, key: str | None) -> list[dict] | None:
    """The sidecar's ROI records when its key matches and every ROI file is as it was written."""
    try:
        record = read_json(sidecar)
        if key is None or record["key"] != key:
            return None
        for r in record["rois"]:
            st = (sidecar.parent / r["file"]).stat()
            if [st.st_size, st.st_mtime_ns] != [r["size"], r["mtime_ns"]]:
                return None
        return record["rois"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


class _ReadCache:
    """Keeps the last volume and the last mask read: rows of one patient usually follow each other."""

    def __init__(self) -> None:
        self.slots: dict[bool, tuple] = {}

    def read(self, path: Path, series_uid: str | None, is_mask: bool) -> tuple:
        key = (str(path), series_uid)
        if self.slots.get(is_mask, (None,))[0] != key:
            self.slots[is_mask] = (key, read_volume(path, series_uid=series_uid, check_hu=not is_mask))
        return self.slots[is_mask][1]


def _extract_row(row: _Row, settings: dict, cache: _ReadCache) -> list[Roi]:
    """Read the row's volume (and mask), check their geometry, and cut its ROIs; errors name the file."""
    volume, affine, meta = cache.read(row.volume, row.series_uid, False)
    lesions: np.ndarray | list = [row.centroid]
    if row.mask is not None:
        lesions, _, mask_meta = cache.read(row.mask, None, True)
        check_same_geometry(meta, mask_meta)
    try:
        return extract_rois(volume, lesions, affine, roi_mm=settings["roi_mm"], window=settings["window"],
                            out_size=settings["out_size"], mask_value=row.mask_value)
    except InputError as e:
        raise InputError(row.mask or row.volume, e.reason) if e.path is None else e from None


def _row_records(row: _Row, settings: dict, rois_dir: Path, cache: _ReadCache,
                 taken: dict[str, int]) -> tuple[list[dict], bool]:
    """ROI records (file, lesion, slice_index, side_mm) of one row, and whether they came from the cache."""
    key, sidecar = _row_key(row, settings), rois_dir / f"row{row.number}.json"
    records, rois = _cached_rois(sidecar, key), []
    if records is None:
        rois = _extract_row(row, settings, cache)
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", row.patient_id)
        records = [{"file": f"{stem}_{roi.lesion if row.mask else row.number}.nii.gz",
                    "lesion": roi.lesion if row.mask else row.number, "slice_index": roi.slice_index,
                    "side_mm": round(roi.side_mm, 3)} for roi in rois]
    for r in records:
        if taken.setdefault(r["file"], row.number) != row.number:
            raise InputError(row.volume, f"row {row.number}: ROI {r['file']} is also produced by row "
                                         f"{taken[r['file']]}; give each lesion its own id or mask_value")
    for r, roi in zip(records, rois, strict=False):
        st = save_roi(roi, rois_dir / r["file"]).stat()
        r.update(size=st.st_size, mtime_ns=st.st_mtime_ns)
    if rois:
        atomic_write_text(sidecar, json.dumps({"key": key, "rois": records}))
    return records, not rois


def datalist_from_volumes(
    manifest_csv: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    classes: Sequence[str] | None = None,
    roi_mm: float | None = None,
    window: Sequence[float] = DEFAULT_WINDOW,
    out_size: int = 64,
    task: str = "liver",
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
    skip_bad: bool = False,
) -> Path:
    """Cut one HU ROI per lesion of ``manifest_csv`` into ``out_dir/rois/``; write ``out_dir/datalist.json``.

    Manifest rows are ``volume,mask,label,patient_id[,mask_value]`` (with ``mask_value`` the row is the
    lesion of that value, else every connected component of ``mask > 0`` is a lesion of that label) or
    ``volume,label,patient_id,centroid_x_mm,centroid_y_mm,centroid_z_mm[,diameter_mm]`` (LPS mm; ``volume``
    may be a DICOM series folder, ``series_uid`` picks one of several). Paths are relative to the CSV's folder
    or absolute. ROIs are int16 HU NIfTI ``<patient>_<lesion>.nii.gz`` (lesion: mask value, component number,
    or manifest row for centroids); a ``row<N>.json`` sidecar lets a re-run with the same inputs and
    settings reuse them. ``classes`` defaults to the sorted label names. ``skip_bad`` records bad rows in
    ``out_dir/skipped.csv`` instead of raising. ``out_dir`` may not lie in a folder holding volumes or masks
    (InputError; nothing is written there). Returns the datalist path.
    """
    manifest, out = Path(manifest_csv), Path(out_dir)
    raw_rows = _read_manifest(manifest)
    inputs = {_resolve(r[c], manifest.parent) for r in raw_rows for c in ("volume", "mask") if r.get(c)}
    refuse_output_inside(out, [manifest, *sorted({p if p.is_dir() else p.parent for p in inputs})])
    if len(window) != 2 or not window[0] < window[1]:
        raise ValueError(f"window must be (low, high) HU with low < high, got {window}")
    skips, rows = SkipLog(skip_bad), []
    for number, raw in enumerate(raw_rows, start=1):
        try:
            rows.append(_parse_row(raw, number, manifest))
        except InputError as e:
            skips.handle(e)
    classes = list(classes) if classes else sorted({r.label for r in rows})
    settings = {"roi_mm": roi_mm, "scale": ROI_SCALE, "min_mm": ROI_MIN_MM, "default_mm": ROI_DEFAULT_MM,
                "out_size": out_size, "filter": ROI_FILTER, "pad_hu": PAD_HU, "orientation": "LPS",
                "units": "HU", "window": [float(w) for w in window]}
    items = _items(rows, classes, settings, out / "rois", manifest, skips)
    (out / "skipped.csv").unlink(missing_ok=True)
    skips.write(out / "skipped.csv")
    if not items:
        raise InputError(manifest, "no lesion ROI could be extracted (see skipped.csv)")
    extra = {"window": settings.pop("window"), "roi": settings}
    datalist = build_datalist(items, classes, task=task, modality="ct", fractions=fractions, seed=seed,
                              extra=extra)
    return write_datalist(datalist, out / "datalist.json")


def _items(rows: list[_Row], classes: list[str], settings: dict, rois_dir: Path, manifest: Path,
           skips: SkipLog) -> list[dict]:
    """Datalist items of all rows; bad rows go to ``skips`` (which raises unless skipping)."""
    rois_dir.mkdir(parents=True, exist_ok=True)
    taken: dict[str, int]
    items, taken, cache, reused = [], {}, _ReadCache(), 0
    for row in rows:
        try:
            if row.label not in classes:
                raise InputError(manifest, f"row {row.number}: label {row.label!r} is not one of {classes}")
            records, hit = _row_records(row, settings, rois_dir, cache, taken)
        except InputError as e:
            skips.handle(e)
            continue
        reused += hit
        items += [{"image": str(rois_dir / r["file"]), "label": classes.index(row.label),
                   "patient_id": row.patient_id, "volume": str(row.volume), "lesion": r["lesion"],
                   "slice_index": r["slice_index"], "roi_side_mm": r["side_mm"]} for r in records]
    logger.info("%d lesion ROIs from %d rows (%d rows reused) in %s", len(items), len(rows), reused, rois_dir)
    return items
