"""Seeded demo data sets from the procedural phantoms, laid out like the public data they stand in for.

``write_demo_dataset("skin" | "ct" | "xray", out)`` writes one set (layouts in :func:`write_demo_dataset`).
Same arguments, same bytes: image ``k`` of class ``c`` draws from its own generator
``default_rng([seed, task, c, k])`` and each patient from ``default_rng([seed, task, PATIENT, p])``, no
file holds a timestamp, and DICOM UIDs derive from the seed. The set is written into a hidden sibling
folder and renamed into place at the end, so a crash never leaves a half-written set under ``out``.
"""

from __future__ import annotations

import csv
import json
import os
import secrets
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medsynth import __version__
from medsynth.demo.phantoms import DEFAULT_DIFFICULTY
from medsynth.demo.phantoms_ct import CT_SHAPE, CT_SPACING, LIVER_CLASSES
from medsynth.errors import InputError
from medsynth.progress import progress

DEMO_DEFAULTS: dict[str, dict] = {
    # ISIC 2020 study ratio: 7.5 benign per malignant lesion.
    "skin": {"n": 850, "classes": ("benign", "malignant"), "ratio": (7.5, 1.0), "image_size": (128, 128)},
    # Frid-Adar et al. 2018: 53 cysts, 64 metastases, 65 hemangiomas (182 lesions); image_size is (Z, Y, X),
    # spacing (x, y, z) mm.
    "ct": {"n": 182, "classes": LIVER_CLASSES, "ratio": (53, 64, 65), "image_size": CT_SHAPE},
    "xray": {"n": 600, "classes": ("no_fracture", "fracture"), "ratio": (2.0, 1.0), "image_size": (128, 128)},
}
DEMO_DEFAULTS["ct"]["spacing"] = CT_SPACING
for _task in DEMO_DEFAULTS.values():
    _task["difficulty"] = DEFAULT_DIFFICULTY


@dataclass(frozen=True)
class DemoSet:
    """A written demo set: its ``root``, per-class ``counts`` and the ``manifests`` (name -> path)."""

    root: Path
    task: str
    counts: dict[str, int]
    manifests: dict[str, Path]
    n_patients: int
    seed: int
    difficulty: float
    classes: tuple[str, ...] = ()


def _check_task(task: str) -> dict:
    """The defaults of ``task``; :class:`InputError` listing the valid tasks otherwise."""
    if task not in DEMO_DEFAULTS:
        raise InputError(None, f"unknown demo task {task!r}; valid tasks: {', '.join(sorted(DEMO_DEFAULTS))}")
    return DEMO_DEFAULTS[task]


def class_counts(task: str, n: int | None = None) -> dict[str, int]:
    """Per-class counts of ``n`` items (default: the task's ``n``) split by the task's class ratio.

    Largest-remainder rounding, so the counts sum to ``n``; each class keeps at least one item.
    """
    defaults = _check_task(task)
    n = defaults["n"] if n is None else n
    classes, ratio = defaults["classes"], np.asarray(defaults["ratio"], dtype=float)
    if not isinstance(n, (int, np.integer)) or n < len(classes):
        raise InputError(None, f"n must be an integer >= {len(classes)} for task {task!r}, got {n!r}")
    exact = n * ratio / ratio.sum()
    counts = np.maximum(np.floor(exact).astype(int), 1)
    order = np.argsort(-(exact - np.floor(exact)), kind="stable")
    i = 0
    while counts.sum() != n:
        step = 1 if counts.sum() < n else -1
        j = order[i % len(order)] if step == 1 else int(np.argmax(counts))
        counts[j] += step
        i += 1
    return {name: int(c) for name, c in zip(classes, counts, strict=True)}


def _check_out(out: Path) -> None:
    """Refuse an existing file or non-empty folder at ``out``: nothing of the user's is overwritten."""
    if out.exists() and not out.is_dir():
        raise InputError(out, "exists and is not a folder; give a new or empty folder for the demo set")
    if out.is_dir() and any(out.iterdir()):
        raise InputError(out, "output folder is not empty; give a new or empty folder for the demo set")


def _publish(staging: Path, out: Path) -> None:
    """Move the finished ``staging`` folder to ``out`` (replacing ``out`` only if it is still empty)."""
    _check_out(out)
    if out.is_dir():
        out.rmdir()
    os.rename(staging, out)


def write_demo_dataset(
    task: str, out: str | os.PathLike, n: int | None = None, seed: int = 0, difficulty: float | None = None
) -> DemoSet:
    """Write the seeded demo set of ``task`` into the new or empty folder ``out``.

    Layouts (paths in manifests are relative to ``out``; every set also has ``demo.json``):

    - ``skin``: ``images/ISIC_<7 digits>.png`` (RGB ``(128, 128, 3)``) and ISIC-2020-style
      ``metadata.csv`` (``image_name,patient_id,target,benign_malignant``); 1-4 lesions per patient
      ``IP_<7 digits>``, sharing skin tone. ``n`` counts images.
    - ``ct``: per patient ``nifti/<id>_ct.nii.gz`` (int16 HU, RAS affine), ``nifti/<id>_mask.nii.gz``
      (lesion ``i`` = value ``i``), a DICOM CT series ``dicom/<id>/IM_0001.dcm``... of the same geometry
      (LPS; slice 1 most inferior) and ``lesions.csv`` (one row per lesion, centroids in LPS mm).
      ``n`` counts lesions, 1-4 per patient volume.
    - ``xray``: ``dicom/<class>/<id>.dcm`` (CR, 12-bit, MONOCHROME1 or 2 by the seed),
      ``png/<class>/<id>.png`` (8-bit, display sense) and ``metadata.csv``
      (``image_id,patient_id,label,photometric,dicom,png``).

    ``difficulty`` in [0, 1] (default :data:`DEFAULT_DIFFICULTY`) sets how far the abnormal class overlaps
    the normal one. Raises :class:`InputError` for an unknown task, a bad ``n``/``difficulty`` or a
    non-empty ``out``.
    """
    counts, seed, difficulty = _resolve(task, n, seed, difficulty)
    out = Path(out).expanduser().absolute()
    _check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.partial-{os.getpid()}-{secrets.token_hex(4)}"
    staging.mkdir()
    try:
        writer = {"skin": _write_skin_set, "ct": _write_ct_set, "xray": _write_xray_set}[task]
        manifests, n_patients = writer(staging, counts, seed, difficulty)
        info = _info(task, counts, seed, difficulty) | {"n_patients": n_patients, "manifests": manifests}
        (staging / "demo.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        _publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return _demo_set(out, info)


def existing_demo(
    task: str, out: str | os.PathLike, n: int | None = None, seed: int = 0, difficulty: float | None = None
) -> DemoSet | None:
    """The demo set at ``out`` if ``demo.json`` says it was written with these arguments by this version
    of medsynth and its manifests are present; None otherwise (also for a missing or foreign folder)."""
    counts, seed, difficulty = _resolve(task, n, seed, difficulty)
    root = Path(out).expanduser().absolute()
    try:
        info = json.loads((root / "demo.json").read_text())
    except (OSError, ValueError):
        return None
    wanted = _info(task, counts, seed, difficulty)
    if not isinstance(info, dict) or any(info.get(key) != value for key, value in wanted.items()):
        return None
    if not all((root / rel).is_file() for rel in info.get("manifests", {"": ""}).values()):
        return None
    return _demo_set(root, info)


def _resolve(task: str, n: int | None, seed: int, difficulty: float | None) -> tuple[dict, int, float]:
    """Checked ``(counts, seed, difficulty)`` with the task's defaults filled in."""
    defaults = _check_task(task)
    counts = class_counts(task, n)
    difficulty = defaults["difficulty"] if difficulty is None else float(difficulty)
    if not 0.0 <= difficulty <= 1.0:
        raise InputError(None, f"difficulty must lie in [0, 1], got {difficulty}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(None, f"seed must be a non-negative integer, got {seed!r}")
    return counts, int(seed), difficulty


def _info(task: str, counts: dict, seed: int, difficulty: float) -> dict:
    """What ``demo.json`` records about how a set was made (no timestamps, so it is reproducible too)."""
    return {
        "task": task,
        "classes": list(DEMO_DEFAULTS[task]["classes"]),
        "counts": counts,
        "seed": seed,
        "difficulty": difficulty,
        "generator": f"medsynth.data.demo {__version__}",  # the name sets were written with: keeps them valid
        "synthetic": True,
        "coordinates": "DICOM LPS mm; NIfTI affines are RAS" if task == "ct" else "pixels",
    }


def _demo_set(root: Path, info: dict) -> DemoSet:
    """:class:`DemoSet` of ``root`` from its ``demo.json`` content (counts in class order)."""
    manifests = {name: root / rel for name, rel in {**info["manifests"], "info": "demo.json"}.items()}
    counts = {name: int(info["counts"][name]) for name in info["classes"]}
    return DemoSet(
        root=root,
        task=info["task"],
        counts=counts,
        manifests=manifests,
        n_patients=int(info["n_patients"]),
        seed=int(info["seed"]),
        difficulty=float(info["difficulty"]),
        classes=tuple(info["classes"]),
    )


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence]) -> None:
    """CSV with a header row and ``\\n`` line ends (byte-stable across platforms)."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


_TASK_CODE = {"skin": 1, "ct": 2, "xray": 3}
_PATIENT, _ASSIGN = 1000, 2000


def item_rng(seed: int, task: str, class_index: int, k: int) -> np.random.Generator:
    """Generator of item ``k`` of class ``class_index``: independent of how many items other classes have."""
    return np.random.default_rng([seed, _TASK_CODE[task], class_index, k])


def _patient_rng(seed: int, task: str, p: int) -> np.random.Generator:
    return np.random.default_rng([seed, _TASK_CODE[task], _PATIENT, p])


def _items(counts: dict[str, int]) -> list[tuple[int, int]]:
    """``(class_index, k)`` for every item, class by class."""
    return [(c, k) for c, n in enumerate(counts.values()) for k in range(n)]


def _group_patients(rng: np.random.Generator, n_items: int, p_sizes: Sequence[float]) -> np.ndarray:
    """Patient index of each item: items shuffled, then cut into groups of 1..len(p_sizes) items."""
    patient = np.empty(n_items, dtype=int)
    order, start, p = rng.permutation(n_items), 0, 0
    while start < n_items:
        size = int(rng.choice(np.arange(1, len(p_sizes) + 1), p=p_sizes))
        patient[order[start : start + size]] = p
        start, p = start + size, p + 1
    return patient


def _save_png(array: np.ndarray, path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG")


def _write_skin_set(root: Path, counts: dict[str, int], seed: int, difficulty: float) -> tuple[dict, int]:
    """ISIC-style ``images/<image_name>.png`` and ``metadata.csv``; returns manifests and n patients."""
    from medsynth.demo.phantoms import SKIN_TONES, skin_lesion

    items = _items(counts)
    assign = np.random.default_rng([seed, _TASK_CODE["skin"], _ASSIGN])
    patient = _group_patients(assign, len(items), (0.4, 0.3, 0.2, 0.1))
    names = assign.choice(9_000_000, size=len(items), replace=False) + 1_000_000
    patient_ids = assign.choice(9_000_000, size=patient.max() + 1, replace=False) + 1_000_000
    tones = [
        SKIN_TONES[_patient_rng(seed, "skin", p).integers(len(SKIN_TONES))] for p in range(patient.max() + 1)
    ]
    size = DEMO_DEFAULTS["skin"]["image_size"][0]
    rows = []
    for i, (c, k) in enumerate(progress(items, desc="demo skin images", unit="img")):
        image, _ = skin_lesion(item_rng(seed, "skin", c, k), bool(c), size, difficulty, tones[patient[i]])
        name = f"ISIC_{names[i]:07d}"
        _save_png(image, root / "images" / f"{name}.png")
        rows.append((name, f"IP_{patient_ids[patient[i]]:07d}", c, ("benign", "malignant")[c]))
    write_csv(root / "metadata.csv", ("image_name", "patient_id", "target", "benign_malignant"), sorted(rows))
    return {"metadata": "metadata.csv"}, int(patient.max() + 1)


def _write_xray_set(root: Path, counts: dict[str, int], seed: int, difficulty: float) -> tuple[dict, int]:
    """Bone radiographs as CR DICOM and 8-bit PNG per class, plus ``metadata.csv``."""
    from medsynth.demo.dicom_write import write_radiograph
    from medsynth.demo.phantoms import bone_anatomy, bone_radiograph

    classes, items = list(counts), _items(counts)
    assign = np.random.default_rng([seed, _TASK_CODE["xray"], _ASSIGN])
    patient = _group_patients(assign, len(items), (0.5, 0.3, 0.2))
    numbers = assign.choice(900_000, size=len(items), replace=False) + 100_000  # ids do not reveal the class
    size = DEMO_DEFAULTS["xray"]["image_size"][0]
    anatomy = [bone_anatomy(_patient_rng(seed, "xray", p), size) for p in range(patient.max() + 1)]
    rows = []
    for i, (c, k) in enumerate(progress(items, desc="demo x-rays", unit="img")):
        rng = item_rng(seed, "xray", c, k)
        image, _ = bone_radiograph(rng, bool(c), size, difficulty, anatomy[patient[i]])
        photometric = ("MONOCHROME1", "MONOCHROME2")[int(rng.integers(2))]
        image_id, patient_id = f"XR_{numbers[i]:06d}", f"XRP_{patient[i]:05d}"
        value = np.round(image * 4095).astype(np.uint16)  # 12-bit, display sense
        dicom, png = f"dicom/{classes[c]}/{image_id}.dcm", f"png/{classes[c]}/{image_id}.png"
        write_radiograph(value, root / dicom, photometric, patient_id, uid_seed=f"medsynth-demo-xray-{seed}")
        _save_png(np.round(value / 4095 * 255).astype(np.uint8), root / png)
        rows.append((image_id, patient_id, classes[c], photometric, dicom, png))
    header = ("image_id", "patient_id", "label", "photometric", "dicom", "png")
    write_csv(root / "metadata.csv", header, sorted(rows))
    return {"metadata": "metadata.csv"}, int(patient.max() + 1)


def nifti_affine(spacing: Sequence[float], origin: Sequence[float]) -> np.ndarray:
    """RAS affine ``(4, 4)`` of a NIfTI array ``(X, Y, Z)`` whose DICOM/LPS ``spacing`` and ``origin`` are
    ``(x, y, z)`` mm: LPS -> RAS flips the sign of x and y."""
    (dx, dy, dz), (ox, oy, oz) = spacing, origin
    return np.array([[-dx, 0, 0, -ox], [0, -dy, 0, -oy], [0, 0, dz, oz], [0, 0, 0, 1]], dtype=float)


def _save_nifti(array_zyx: np.ndarray, spacing: Sequence[float], origin: Sequence[float], path: Path) -> None:
    """Save a ``(Z, Y, X)`` array as NIfTI-1 ``(X, Y, Z)`` with the RAS affine (qform and sform, mm)."""
    import nibabel as nib

    affine = nifti_affine(spacing, origin)
    image = nib.Nifti1Image(np.ascontiguousarray(array_zyx.transpose(2, 1, 0)), affine)
    image.header.set_xyzt_units("mm")
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, path)


def _lesion_geometry(mask: np.ndarray, value: int, spacing, origin) -> tuple[np.ndarray, float]:
    """LPS centroid ``(x, y, z)`` mm of ``mask == value`` and its longest in-plane diameter (mm)."""
    from scipy.spatial.distance import pdist

    kji = np.argwhere(mask == value)
    xyz = np.asarray(origin) + kji[:, ::-1] * np.asarray(spacing)
    widest = np.bincount(kji[:, 0]).argmax()
    in_plane = xyz[kji[:, 0] == widest, :2]
    longest = pdist(in_plane).max() if len(in_plane) > 1 else 0.0
    return xyz.mean(axis=0), float(longest + np.mean(spacing[:2]))


def _write_ct_set(root: Path, counts: dict[str, int], seed: int, difficulty: float) -> tuple[dict, int]:
    """Liver CT volumes as NIfTI (image + lesion mask) and DICOM series, plus ``lesions.csv``.

    A patient's volume (and lesion order, so mask values say nothing about the class) comes from the
    patient's own generator.
    """
    from medsynth.demo.dicom_write import write_ct_series
    from medsynth.demo.phantoms_ct import ct_origin, liver_ct

    classes, items = list(counts), _items(counts)
    assign = np.random.default_rng([seed, _TASK_CODE["ct"], _ASSIGN])
    patient = _group_patients(assign, len(items), (0.1, 0.2, 0.3, 0.4))
    shape, spacing = DEMO_DEFAULTS["ct"]["image_size"], DEMO_DEFAULTS["ct"]["spacing"]
    origin, rows = ct_origin(shape, spacing), []
    for p in progress(range(patient.max() + 1), desc="demo CT volumes", unit="volume"):
        pid, rng = f"CT_P{p:04d}", _patient_rng(seed, "ct", p)
        labels = [classes[items[i][0]] for i in rng.permutation(np.flatnonzero(patient == p))]
        volume, mask, lesions = liver_ct(rng, labels, shape, spacing, difficulty)
        ct, seg, series = f"nifti/{pid}_ct.nii.gz", f"nifti/{pid}_mask.nii.gz", f"dicom/{pid}"
        _save_nifti(volume, spacing, origin, root / ct)
        _save_nifti(mask, spacing, origin, root / seg)
        write_ct_series(volume, spacing, origin, root / series, pid, uid_seed=f"medsynth-demo-ct-{seed}")
        for lesion in lesions:
            centroid, diameter = _lesion_geometry(mask, lesion["mask_value"], spacing, origin)
            geometry = [round(float(c), 2) for c in centroid] + [round(diameter, 2)]
            rows.append((pid, ct, seg, lesion["mask_value"], lesion["label"], series, *geometry))
    header: tuple[str, ...] = ("patient_id", "volume", "mask", "mask_value", "label", "dicom_series")
    header += ("centroid_x_mm", "centroid_y_mm", "centroid_z_mm", "diameter_mm")
    write_csv(root / "lesions.csv", header, rows)
    return {"lesions": "lesions.csv"}, int(patient.max() + 1)
