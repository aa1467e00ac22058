"""The datalist JSON: the one currency between medsynth stages (docs/architecture.md).

A datalist is MONAI's decathlon layout plus a few top-level keys::

    {"task": "skin", "modality": "dermoscopy", "classes": ["benign", "malignant"],
     "training": [{"image": "images/a.png", "label": 0, "patient_id": "p1", "source": "real"}],
     "validation": [...], "test": [...]}

``monai.data.load_decathlon_datalist(path, data_list_key="training")`` reads it. Paths under the
datalist's folder are stored relative to it (the folder can move); others are stored absolute.
:func:`load_datalist` resolves them, and refuses a datalist that is not internally consistent.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import medsynth
from medsynth.data.splits import (
    DEFAULT_FRACTIONS,
    SPLIT_VERSION,
    SPLITS,
    assign_splits,
    find_patient_leaks,
    parse_fractions,
    split_summary,
)
from medsynth.errors import InputError
from medsynth.fileio import atomic_write_json

MODALITIES = ("dermoscopy", "ct", "xray", "other")
PATH_KEYS = ("image", "mask", "volume")  # "volume"/"mask" of a ROI are provenance: only "image" must exist


def build_datalist(
    items: Sequence[dict],
    classes: Sequence[str],
    *,
    task: str,
    modality: str,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
    extra: dict | None = None,
) -> dict:
    """Split ``items`` (dicts with ``image``, ``label`` index and ``patient_id``) into a datalist.

    Items get ``"source": "real"`` unless they say otherwise; ``extra`` adds top-level keys (for CT,
    the HU ``window`` the ROIs are to be displayed and normalised with). The ``"split"`` block records how
    the split was made (fractions, seed, grouping, the algorithm's ``version``) and its ``summary``
    (:func:`~medsynth.data.splits.split_summary`).
    """
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; choose one of {', '.join(MODALITIES)}")
    if not items:
        raise ValueError("no images to put in the datalist")
    fractions = parse_fractions(fractions)
    splits = assign_splits([it["label"] for it in items], [it["patient_id"] for it in items], fractions, seed)
    datalist = {
        "task": task,
        "modality": modality,
        "classes": list(classes),
        "medsynth_version": medsynth.__version__,
        "split": {"fractions": list(fractions), "seed": seed, "grouped_by": "patient_id", "version": SPLIT_VERSION},
        **(extra or {}),
    }
    for name in SPLITS:
        datalist[name] = [{"source": "real", **it} for it, s in zip(items, splits, strict=True) if s == name]
    datalist["split"]["summary"] = split_summary(datalist)
    return datalist


def write_datalist(datalist: dict, path: str | os.PathLike) -> Path:
    """Write ``datalist`` to ``path`` atomically; paths below its folder become relative."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    base = path.parent.resolve()
    out = {k: v for k, v in datalist.items() if k not in SPLITS}
    for split in SPLITS:
        out[split] = [_relative_item(item, base) for item in datalist.get(split, [])]
    return atomic_write_json(path, out, indent=1)


def _relative_item(item: dict, base: Path) -> dict:
    item = dict(item)
    for key in PATH_KEYS:
        if key in item and isinstance(item[key], str):
            p = Path(item[key]).resolve()
            item[key] = str(p.relative_to(base)) if base in p.parents else str(p)
    return item


def load_datalist(path: str | os.PathLike, check_files: bool = True) -> dict:
    """Read and validate a datalist; returns it with absolute paths.

    Raises:
        InputError: naming the datalist (or the missing file) when the JSON is unreadable, a key is
            missing, a label is not one of ``classes``, a patient appears in two splits, or (with
            ``check_files``) an image file does not exist.
    """
    path = Path(path)
    try:
        with open(path) as f:
            datalist = json.load(f)
    except FileNotFoundError:
        raise InputError(path, "datalist file not found") from None
    except IsADirectoryError:
        raise InputError(path, "is a folder; give the datalist JSON file (e.g. OUT/datalist.json)") from None
    except PermissionError:
        raise InputError(path, "permission denied: the datalist cannot be read") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(path, f"not a valid JSON datalist ({e})") from None
    classes = _check_header(datalist, path)
    base = path.parent.resolve()
    for split in SPLITS:
        for i, item in enumerate(datalist.get(split, [])):
            _check_item(item, classes, path, f"{split}[{i}]")
            for key in PATH_KEYS:
                if isinstance(item.get(key), str):
                    item[key] = str(base / item[key])  # absolute paths survive the join unchanged
                    if check_files and key == "image" and not Path(item[key]).exists():
                        raise InputError(item[key], f"listed in {path} ({split}[{i}]) but the file does not exist")
    leaks = find_patient_leaks(datalist)
    if leaks:
        shown = "; ".join(f"{pid} in {' and '.join(s)}" for pid, s in list(leaks.items())[:5])
        raise InputError(path, f"{len(leaks)} patient(s) appear in more than one split ({shown}); "
                               "rebuild the datalist with patient-grouped splits")
    return datalist


def _check_header(datalist: object, path: Path) -> list[str]:
    if not isinstance(datalist, dict):
        raise InputError(path, "a datalist must be a JSON object with 'classes' and split lists")
    classes = datalist.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise InputError(path, "'classes' must be a non-empty list of class names")
    if len(set(classes)) != len(classes):
        raise InputError(path, f"'classes' has duplicate names: {classes}")
    for split in SPLITS:
        if not isinstance(datalist.get(split, []), list):
            raise InputError(path, f"'{split}' must be a list of entries, not {type(datalist[split]).__name__}")
    if not any(datalist.get(s) for s in SPLITS):
        raise InputError(path, f"no images in any of the splits {', '.join(SPLITS)}")
    return classes


def _check_item(item: object, classes: list[str], path: Path, where: str) -> None:
    if not isinstance(item, dict) or not isinstance(item.get("image"), str):
        raise InputError(path, f"{where}: each entry needs an 'image' path")
    label = item.get("label")
    if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < len(classes):
        raise InputError(path, f"{where} ({item['image']}): label {label!r} is not a class index "
                               f"0..{len(classes) - 1} of classes {classes}")


def class_counts(datalist: dict, split: str) -> dict[str, int]:
    """Images per class name in one split."""
    counts = dict.fromkeys(datalist["classes"], 0)
    for item in datalist.get(split, []):
        counts[datalist["classes"][item["label"]]] += 1
    return counts
