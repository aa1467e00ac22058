"""Build ``OUT/datalist.json`` from class folders or from a CSV manifest, checking every image once.

Both builders read each image with :func:`~medsynth.data.readers.read_image` (pixels included, so a
truncated file fails now rather than mid-training), check that all images share one channel count,
assign patient-grouped stratified splits and write the datalist with
:func:`~medsynth.data.datalist.write_datalist`. Nothing is written into the input folders, and an
output folder inside them is refused.

A bad file raises :class:`~medsynth.errors.InputError` (and nothing is written); with ``skip_bad`` it
is left out, and ``OUT/skipped.csv`` lists it with the reason.

Patient ids, in order of precedence: the CSV ``patient_col``; the DICOM PatientID; the first group of
``patient_regex`` matched against the file name (folders only); else the image's path below the data
folder without suffix, i.e. every image is its own patient. That last case makes patient grouping
impossible (images of one patient can land in different splits), so it logs a warning.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

from medsynth.data.datalist import MODALITIES, build_datalist, write_datalist
from medsynth.data.readers import channel_mismatches, image_suffix, read_image
from medsynth.data.splits import DEFAULT_FRACTIONS, parse_fractions
from medsynth.errors import InputError, SkipLog, refuse_output_inside

logger = logging.getLogger(__name__)

CSV_EXTENSIONS = (".png", ".jpg", ".jpeg", ".dcm", ".nii", ".nii.gz", ".bmp", ".tif", ".tiff")
HIDDEN_NAMES = {"thumbs.db", "desktop.ini"}  # plus any name starting with "." (.DS_Store, ._a.png)
DATALIST_NAME, SKIPPED_NAME = "datalist.json", "skipped.csv"
_PROGRESS_FROM = 200  # images; smaller sets check in a blink and need no bar


def datalist_from_folders(
    root: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    classes: Sequence[str] | str | None = None,
    task: str = "custom",
    modality: str = "other",
    fractions: Sequence[float] | str = DEFAULT_FRACTIONS,
    seed: int = 0,
    skip_bad: bool = False,
    patient_regex: str | None = None,
) -> Path:
    """Write ``out_dir/datalist.json`` for ``root/<class>/<images>`` (searched recursively); return its path.

    Args:
        root: data folder with one sub-folder per class; hidden files and folders are ignored.
        out_dir: output folder, outside ``root``.
        classes: class names in index order (a list or ``"a,b"``); each needs a folder. Default: all
            folder names, sorted. Folders not named are ignored.
        task, modality, fractions, seed: see :func:`~medsynth.data.datalist.build_datalist`.
        skip_bad: leave bad files out (listed in ``skipped.csv``) instead of raising.
        patient_regex: its first group (or whole match) on the file name is the patient id.
    """
    root, out_dir = Path(root).absolute(), Path(out_dir)  # absolute: items and metas share their keys
    if not root.is_dir():  # before the output check, which would take a file's folder for the input
        reason = "is not a folder; expected a folder with one sub-folder per class"
        raise InputError(root, reason if root.exists() else "data folder not found")
    refuse_output_inside(out_dir, [root])
    _check_options(out_dir, modality)
    fractions = parse_fractions(fractions)
    folders = _class_folders(root, _class_names(classes))
    regex = _compile(patient_regex)
    files = [(f, label) for label, folder in enumerate(folders.values()) for f in _image_files(folder)]
    log = SkipLog(skip_bad)
    metas = _check_images([f for f, _ in files], log)
    items = []
    for path, label in files:
        if path in metas:
            try:
                pid = metas[path].get("patient_id") or _regex_patient(path, regex)
            except InputError as e:
                log.handle(e)
                continue
            items.append({"image": str(path), "label": label, "patient_id": pid})
    return _finish(items, metas, list(folders), root, out_dir, log,
                   dict(task=task, modality=modality, fractions=fractions, seed=seed))


def _class_folders(root: Path, names: list[str] | None) -> dict[str, Path]:
    """``{class name: folder}`` in class-index order."""
    found = {p.name: p for p in sorted(root.iterdir()) if p.is_dir() and not _hidden(p.name)}
    if not found:
        raise InputError(root, "no class folders found; expected one sub-folder per class "
                               "(ROOT/<class>/<images>)")
    names = names or sorted(found)
    missing = [n for n in names if n not in found]
    if missing:
        raise InputError(root / missing[0], f"class {missing[0]!r} from classes has no folder; "
                                            f"folders found: {', '.join(found)}")
    if len(names) < 2:
        raise InputError(root, f"found only the class {names[0]!r}; a classifier needs at least 2 classes")
    ignored = sorted(set(found) - set(names))
    if ignored:
        logger.warning("ignoring folders not named in classes: %s", ", ".join(ignored))
    return {n: found[n] for n in names}


def _image_files(folder: Path) -> list[Path]:
    """Every non-hidden file below ``folder``, sorted; non-images are kept so they get reported."""
    files = sorted(p for p in folder.rglob("*")
                   if p.is_file() and not any(_hidden(part) for part in p.relative_to(folder).parts))
    if not files:
        raise InputError(folder, "class folder is empty (no image files)")
    return files


def _hidden(name: str) -> bool:
    return name.startswith(".") or name.lower() in HIDDEN_NAMES


def _compile(pattern: str | None) -> re.Pattern | None:
    try:
        return re.compile(pattern) if pattern else None
    except re.error as e:
        raise InputError(None, f"patient_regex {pattern!r} is not a valid regular expression ({e})") from e


def _regex_patient(path: Path, regex: re.Pattern | None) -> str | None:
    if regex is None:
        return None
    match = regex.search(path.name)
    if match is None:
        raise InputError(path, f"file name does not match patient_regex {regex.pattern!r}")
    return match.group(1) if regex.groups else match.group(0)


def datalist_from_csv(
    csv_path: str | os.PathLike,
    image_root: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    image_col: str = "image",
    label_col: str = "label",
    patient_col: str | None = None,
    classes: Sequence[str] | str | None = None,
    extensions: Sequence[str] = CSV_EXTENSIONS,
    task: str = "custom",
    modality: str = "other",
    fractions: Sequence[float] | str = DEFAULT_FRACTIONS,
    seed: int = 0,
    skip_bad: bool = False,
) -> Path:
    """Write ``out_dir/datalist.json`` for a CSV manifest; return its path.

    ``image_col`` holds a path (relative to ``image_root``, or absolute) or a bare id such as ISIC's
    ``ISIC_0012345``, tried with each of ``extensions`` in order. ``label_col`` holds class names, or
    integer indices into ``classes`` (then ``classes`` is required: ISIC's ``target`` 0/1 needs
    ``classes=["benign", "malignant"]``). Row numbers in messages count the header as row 1.
    """
    csv_path, image_root, out_dir = Path(csv_path), Path(image_root).absolute(), Path(out_dir)
    refuse_output_inside(out_dir, [image_root, csv_path])
    _check_options(out_dir, modality)
    fractions = parse_fractions(fractions)
    if not image_root.is_dir():
        reason = "is not a folder" if image_root.exists() else "image folder not found"
        raise InputError(image_root, reason)
    rows = _read_manifest(csv_path, [c for c in (image_col, label_col, patient_col) if c])
    labels = [row[label_col] for _, row in rows]
    names, by_index = _label_scheme(labels, _class_names(classes), csv_path, label_col)
    seen: dict[Path, int]
    log, seen, files = SkipLog(skip_bad), {}, []
    for row_no, row in rows:
        try:
            label = _row_label(row[label_col], names, by_index, csv_path, row_no)
            path = _resolve_image(row[image_col], image_root, extensions, csv_path, row_no)
            _check_duplicate(seen, path, row_no, csv_path)
            pid = _row_patient(row, patient_col, csv_path, row_no)
        except InputError as e:
            log.handle(e)
            continue
        files.append((path, label, pid))
    metas = _check_images([f for f, _, _ in files], log)
    items = [{"image": str(p), "label": label, "patient_id": pid or metas[p].get("patient_id")}
             for p, label, pid in files if p in metas]
    return _finish(items, metas, names, image_root, out_dir, log,
                   dict(task=task, modality=modality, fractions=fractions, seed=seed))


def _read_manifest(csv_path: Path, columns: list[str]) -> list[tuple[int, dict[str, str]]]:
    """``[(row number, {column: stripped cell})]`` for the named columns; blank lines are skipped."""
    if not csv_path.is_file():
        raise InputError(csv_path, "CSV file not found" if not csv_path.exists() else "is not a file")
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:  # -sig: Excel's byte-order mark
            reader = csv.reader(f)
            header = [h.strip() for h in next(reader, [])]
            _check_columns(header, columns, csv_path)
            index = {c: header.index(c) for c in columns}
            rows = []
            for cells in reader:
                cells += [""] * (len(header) - len(cells))  # a short row leaves the last cells empty
                if any(cell.strip() for cell in cells):
                    rows.append((reader.line_num, {c: cells[i].strip() for c, i in index.items()}))
    except (UnicodeDecodeError, csv.Error, OSError) as e:
        raise InputError(csv_path, f"cannot be read as a CSV file ({type(e).__name__}: {e})") from e
    if not rows:
        raise InputError(csv_path, "CSV file has a header but no rows")
    return rows


def _check_columns(header: list[str], columns: list[str], csv_path: Path) -> None:
    if not any(header):
        raise InputError(csv_path, "CSV file is empty (no header row)")
    for column in columns:
        if column not in header:
            raise InputError(csv_path, f"column {column!r} is not in the header; the columns are: "
                                       f"{', '.join(header)}")


def _label_scheme(values: list[str], names: list[str] | None, csv_path: Path, label_col: str
                  ) -> tuple[list[str], bool]:
    """Return ``(class names, labels are indices)``; names come from the labels when not given."""
    present = [v for v in values if v]
    if names is not None and all(v in names for v in present):
        return names, False
    if present and all(_is_integer(v) for v in present):
        if names is None:
            shown = ", ".join(sorted(set(present), key=float)[:10])
            raise InputError(csv_path, f"labels in column {label_col!r} are integers ({shown}); give the "
                                       "class names in index order with classes (CLI: --classes), e.g. "
                                       "--classes benign,malignant")
        return names, True
    if names is None:
        names = sorted(set(present))
        logger.info("classes from the labels of %s: %s", csv_path, ", ".join(names))
    return names, False


def _is_integer(text: str) -> bool:
    try:
        return float(text).is_integer()
    except ValueError:
        return False


def _row_label(raw: str, names: list[str], by_index: bool, csv_path: Path, row: int) -> int:
    if not raw:
        raise InputError(csv_path, f"row {row}: empty label")
    if by_index:
        index = int(float(raw))
        if not 0 <= index < len(names):
            raise InputError(csv_path, f"row {row}: label {raw} is not a class index 0..{len(names) - 1} "
                                       f"of classes {names}")
        return index
    if raw not in names:
        raise InputError(csv_path, f"row {row}: label {raw!r} is not one of the classes {names}")
    return names.index(raw)


def _resolve_image(value: str, image_root: Path, extensions: Sequence[str], csv_path: Path, row: int) -> Path:
    """Path of a row's image: ``value`` as a path, else as a bare id plus each extension in turn."""
    if not value:
        raise InputError(csv_path, f"row {row}: empty image cell")
    where = f"{csv_path} row {row}"
    path = Path(value).expanduser()
    path = path if path.is_absolute() else image_root / path
    if path.is_file():
        return path
    if any(value.lower().endswith(ext.lower()) for ext in extensions):
        raise InputError(path, f"named in {where} but the file does not exist")
    for ext in extensions:  # a bare id such as ISIC_0012345
        candidate = path.with_name(path.name + ext)
        if candidate.is_file():
            return candidate
    raise InputError(path, f"named in {where}, but there is no file {path.name} with any of the extensions "
                           f"{', '.join(extensions)} in {path.parent}")


def _check_duplicate(seen: dict[Path, int], path: Path, row_no: int, csv_path: Path) -> None:
    key = path.resolve()
    if key in seen:
        raise InputError(csv_path, f"row {row_no}: image {path.name} is already listed in row {seen[key]}")
    seen[key] = row_no


def _row_patient(row: dict[str, str], patient_col: str | None, csv_path: Path, row_no: int) -> str | None:
    if patient_col is None:
        return None
    if not row[patient_col]:
        raise InputError(csv_path, f"row {row_no}: empty {patient_col!r} cell")
    return row[patient_col]


def _class_names(classes: Sequence[str] | str | None) -> list[str] | None:
    if classes is None:
        return None
    names = [c.strip() for c in (classes.split(",") if isinstance(classes, str) else classes)]
    if not names or not all(names):
        raise InputError(None, f"classes must be non-empty names, got {classes!r}")
    if len(set(names)) != len(names):
        raise InputError(None, f"classes has duplicate names: {names}")
    return names


def _check_options(out_dir: Path, modality: str) -> None:
    """Fail on options before the (possibly long) image check, not after it."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(out_dir, "output path exists and is not a folder")
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; choose one of {', '.join(MODALITIES)}")


def _check_images(paths: list[Path], log: SkipLog) -> dict[Path, dict]:
    """``{path: meta}`` of the readable images, in order; bad ones go to ``log`` (which may raise).

    Images are decoded in a few threads (PIL and zlib release the GIL); results come back in order,
    so the first error raised is the first bad file, whatever the timing.
    """
    metas: dict[Path, dict] = {}
    pool = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1))
    try:
        results = pool.map(_try_read, paths)
        bar = tqdm(results, total=len(paths), desc="checking images", unit="img", leave=False,
                   disable=True if len(paths) < _PROGRESS_FROM else None)  # None: only on a terminal
        for path, result in zip(paths, bar, strict=True):
            if isinstance(result, InputError):
                log.handle(result)
            else:
                metas[path] = result
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # an error need not wait for the rest
    return metas


def _try_read(path: Path) -> dict | InputError:
    try:
        return read_image(path)[1]
    except InputError as e:
        return e


def _finish(items: list[dict], metas: dict[Path, dict], names: list[str], base: Path, out_dir: Path,
            log: SkipLog, options: dict) -> Path:
    """Check channels and classes, fill missing patient ids, write the datalist and ``skipped.csv``."""
    items = _drop_channel_mismatches(items, metas, log)
    for index, name in enumerate(names):
        if not any(it["label"] == index for it in items):
            raise InputError(base, f"no readable images of class {name!r} ({len(log.rows)} file(s) skipped)")
    _fill_patient_ids(items, base)
    channels = metas[Path(items[0]["image"])]["channels"]
    datalist = build_datalist(items, names, **options, extra={"channels": channels})
    path = write_datalist(datalist, out_dir / DATALIST_NAME)
    if log.write(out_dir / SKIPPED_NAME) is None:
        (out_dir / SKIPPED_NAME).unlink(missing_ok=True)  # a stale list from an earlier run would mislead
    else:
        logger.warning("skipped %d bad file(s); see %s", len(log.rows), out_dir / SKIPPED_NAME)
    logger.info("wrote %s: %d images, classes %s", path, len(items), names)
    return path


def _drop_channel_mismatches(items: list[dict], metas: dict[Path, dict], log: SkipLog) -> list[dict]:
    errors = channel_mismatches((Path(it["image"]), metas[Path(it["image"])]) for it in items)
    for error in errors:
        log.handle(error)  # raises the first one unless skipping
    bad = {error.path for error in errors}
    return [it for it in items if str(Path(it["image"])) not in bad]


def _fill_patient_ids(items: list[dict], base: Path) -> None:
    """Give images without a patient id their own: the path below ``base`` without suffix."""
    missing = [it for it in items if not it["patient_id"]]
    for it in missing:
        path = Path(it["image"])
        name = path.relative_to(base).as_posix() if path.is_relative_to(base) else str(path)
        suffix = image_suffix(path)
        it["patient_id"] = name[: -len(suffix)] if suffix else name
    if missing:
        logger.warning("%d of %d images have no patient id (no patient column, DICOM PatientID or "
                       "patient_regex match); each is treated as its own patient, so patient grouping is "
                       "impossible and images of one patient may land in different splits",
                       len(missing), len(items))
