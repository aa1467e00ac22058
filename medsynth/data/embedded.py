"""The embedded default data set: what a bundle trains on when no ``dataset_dir``/``datalist`` is given.

:func:`demo_datalist` writes a demo set from the phantoms once, builds its datalist, and returns the
datalist path; later calls (and other processes, e.g. the ranks of a ``torchrun`` job) reuse it.
The cache lives in ``$MEDSYNTH_CACHE`` (default ``~/.cache/medsynth``), never in the repository, in a
folder named by the medsynth version, the demo's arguments and the split algorithm's
:data:`~medsynth.data.splits.SPLIT_VERSION` (:func:`demo_cache_dir`): a demo split by another algorithm
is never reused. A datalist at an explicit ``root`` split by another algorithm is rebuilt (the files are
kept: they depend on the seed only).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from pathlib import Path
from typing import Any

import medsynth
from medsynth.data import splits

logger = logging.getLogger(__name__)

# How each demo set becomes a datalist: the same commands a user runs on real data (datasets.md).
_CSV_ARGS: dict[str, Any] = {"image_col": "image_name", "label_col": "target", "patient_col": "patient_id",
             "classes": ["benign", "malignant"], "task": "skin", "modality": "dermoscopy"}


def cache_root() -> Path:
    """``$MEDSYNTH_CACHE``, else ``~/.cache/medsynth``."""
    return Path(os.environ.get("MEDSYNTH_CACHE", Path.home() / ".cache" / "medsynth")).expanduser()


def demo_datalist(task: str = "skin", *, n: int | None = None, seed: int = 0, difficulty: float | None = None,
                  root: str | os.PathLike | None = None) -> Path:
    """Return the path of the demo ``task``'s datalist, generating the set on first use.

    Generation is guarded by a file lock, so concurrent callers wait for one writer.
    """
    from medsynth.demo.writer import DEMO_DEFAULTS

    if task not in DEMO_DEFAULTS:
        raise ValueError(f"unknown demo task {task!r}; choose one of {', '.join(DEMO_DEFAULTS)}")
    base = Path(root) if root is not None else demo_cache_dir(task, n=n, seed=seed, difficulty=difficulty)
    datalist = base / "datalist" / "datalist.json"
    base.mkdir(parents=True, exist_ok=True)
    with open(base / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        version = _split_version(datalist) if datalist.exists() else splits.SPLIT_VERSION
        if version != splits.SPLIT_VERSION:
            logger.info("rebuilding the datalist of %s: it was split by split algorithm version %s, not %s",
                        base, version, splits.SPLIT_VERSION)
        if version != splits.SPLIT_VERSION or not datalist.exists():
            logger.info("writing the %s demo data set to %s (once)", task, base)
            _build(task, base, n=n, seed=seed, difficulty=difficulty)
            for line in splits.summary_lines(_read(datalist)["split"]["summary"]):
                logger.info("%s demo %s", task, line.strip())
    return datalist


def demo_cache_dir(task: str, *, n: int | None = None, seed: int = 0, difficulty: float | None = None) -> Path:
    """The cache folder of a demo set: ``$MEDSYNTH_CACHE/demo/v<medsynth version>/<key>``, where the key
    names the task, ``n``, seed, difficulty and split algorithm version."""
    key = (f"{task}-n{n or 'default'}-seed{seed}-d{'default' if difficulty is None else difficulty}"
           f"-split{splits.SPLIT_VERSION}")
    return cache_root() / "demo" / f"v{medsynth.__version__}" / key


def _read(path: Path) -> dict:
    with open(path) as f:
        return json.load(f)


def _split_version(path: Path) -> object:
    """The split algorithm version a datalist records (None before versions were recorded)."""
    try:
        split = _read(path).get("split")
    except (OSError, ValueError, AttributeError):
        return None
    return split.get("version") if isinstance(split, dict) else None


def _build(task: str, base: Path, *, n: int | None, seed: int, difficulty: float | None) -> None:
    from medsynth.data.builders import datalist_from_csv, datalist_from_folders
    from medsynth.data.roi import datalist_from_volumes
    from medsynth.demo.writer import write_demo_dataset

    files, out = base / "files", base / "datalist"
    if not files.exists():
        write_demo_dataset(task, files, n=n, seed=seed, difficulty=difficulty)
    if task == "skin":
        datalist_from_csv(files / "metadata.csv", files / "images", out, seed=seed, **_CSV_ARGS)
    elif task == "ct":
        datalist_from_volumes(files / "lesions.csv", out, classes=["cyst", "metastasis", "hemangioma"],
                              task="liver", seed=seed)
    else:
        # DICOM class folders: patient ids come from PatientID; MONOCHROME1 and 2 both occur
        datalist_from_folders(files / "dicom", out, classes=["no_fracture", "fracture"], task="fracture",
                              modality="xray", seed=seed)
