"""Write the synthetic set of a trained generator: image files, manifest, grid and a datalist, published at once.

A synthetic set is a folder that a training run can merge with real data (concatenate the ``training`` lists)::

    <output_dir>/images/<class>/<bundle>_<class>_<index:06d>.png   (.nii.gz for CT; see medsynth.export.files)
    <output_dir>/manifest.csv    one row per image: provenance and sha256 of the file and of the checkpoint
    <output_dir>/grid.png        up to ``grid_per_class`` images per class, one labelled row per class
    <output_dir>/datalist.json   "source": "synthetic", every image in "training" (load_datalist reads it)

Every file is first written into a hidden staging folder beside ``output_dir`` (``.<name>.partial-<pid>``);
:meth:`SyntheticSetWriter.finish` renames it into place, so ``output_dir`` is either absent, the previous set, or
the complete new one -- never a half-written set, whatever crashes when. A previous set is moved aside
(``.<name>.old-<pid>``) for the rename and deleted after it. ``output_dir`` is replaced only when it is empty or
holds a previous synthetic set (its ``datalist.json`` says ``"source": "synthetic"``, or its ``manifest.csv``
has this writer's header) and ``overwrite`` is true; any other folder is refused, never deleted.

Reproducibility: a manifest row (seed, latent_index, label) and the checkpoint regenerate its image:
``generator(latent_vector(seed, latent_index, latent_size)[None], label)`` (see :mod:`medsynth.export.latents`).

As an ignite handler (``attach``) it writes each batch of MONAI's ``SupervisedEvaluator`` (run with
``decollate=False``, ``prepare_batch=prepare_latent_batch``) at ``ITERATION_COMPLETED`` from
``engine.state.batch`` (``"label"``, ``"index"``) and ``engine.state.output["pred"]``, publishes at
``COMPLETED``, and discards the staging folder when the run raises or was terminated. One process writes a set:
under ``torch.distributed`` give each rank its own ``output_dir``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

import torch
from ignite.engine import Engine, Events
from torch import Tensor

import medsynth
from medsynth.data.datalist import write_datalist
from medsynth.data.roi import DEFAULT_WINDOW
from medsynth.errors import InputError, refuse_output_inside
from medsynth.export.files import FORMATS, encode_image, file_format
from medsynth.export.grid import make_grid_image
from medsynth.fileio import sha256_file
from medsynth.progress import progress

logger = logging.getLogger(__name__)

MANIFEST_COLUMNS = ("file", "class", "label", "seed", "latent_index", "bundle", "bundle_version", "checkpoint",
                    "checkpoint_sha256", "file_sha256", "created")
_HEADER_KEYS = ("task", "modality", "classes", "channels", "window")


def safe_name(text: str) -> str:
    """``text`` with every run of characters outside ``A-Za-z0-9._-`` replaced by ``_`` (for file names)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._") or "_"


def is_synthetic_set(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds a set this writer published (its datalist or manifest says so)."""
    folder = Path(folder)
    try:
        with open(folder / "datalist.json") as f:
            if json.load(f).get("source") == "synthetic":
                return True
    except (OSError, ValueError, AttributeError):
        pass
    try:
        with open(folder / "manifest.csv", newline="") as f:
            return tuple(next(csv.reader(f), ())) == MANIFEST_COLUMNS
    except (OSError, UnicodeDecodeError):
        return False


def _plain(value: object) -> object:
    """A header value comparable across JSON and Python: sequences as lists, numbers as floats."""
    if isinstance(value, str) or not isinstance(value, Sequence):
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
    return [_plain(v) for v in value]


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class SyntheticSetWriter:
    """Writes generated images ``(B, C, H, W)`` in ``[-1, 1]`` as a synthetic set (see the module docstring).

    Args:
        output_dir: the set's folder (created; an existing one: see the module docstring).
        bundle_name, bundle_version: the generating bundle; the name prefixes file and patient ids.
        checkpoint: the generator weights (``models/model.pt``); its sha256 goes into every manifest row.
        seed: the :class:`~medsynth.export.latents.LatentDataset` seed, recorded to regenerate any image.
        classes, modality, channels, window, task: the datalist header. Values given here win; missing ones come
            from ``source_datalist``; ``channels`` defaults to 3 for dermoscopy, 1 otherwise, and a CT ``window``
            to ``roi.DEFAULT_WINDOW``. ``classes`` must equal the source datalist's (labels index them).
        source_datalist: the real datalist the generator was trained on (provenance, and the header above).
        input_folders: folders ``output_dir`` must neither lie inside nor contain (the real data).
        counts: ``{class index: n}`` expected (:func:`~medsynth.export.latents.synthetic_counts`); when given,
            :meth:`finish` publishes only if exactly these were written.
        spacing: CT pixel size in mm, one number or ``(sx, sy)`` (the NIfTI affine; 1 mm by default).
        grid_per_class: images per class row of ``grid.png`` (>= 1).
        overwrite: replace a previous synthetic set at ``output_dir``.

    Raises:
        InputError: ``output_dir`` inside or around an input folder, an existing folder that is not a synthetic
            set (or is one and ``overwrite`` is false), a missing checkpoint or unreadable source datalist.
        ValueError: inconsistent header arguments.
    """

    def __init__(self, output_dir: str | os.PathLike, *, bundle_name: str, bundle_version: str,
                 checkpoint: str | os.PathLike, seed: int = 0, classes: Sequence[str] | None = None,
                 modality: str | None = None, channels: int | None = None, window: Sequence[float] | None = None,
                 task: str | None = None, source_datalist: str | os.PathLike | None = None,
                 input_folders: Sequence[str | os.PathLike] = (), counts: Mapping[int, int] | None = None,
                 spacing: float | Sequence[float] = 1.0, grid_per_class: int = 8, overwrite: bool = True) -> None:
        if grid_per_class < 1:
            raise ValueError(f"grid_per_class must be >= 1, got {grid_per_class}")
        self.output_dir = Path(output_dir).expanduser().absolute()
        self.bundle_name, self.bundle_version, self.seed = str(bundle_name), str(bundle_version), int(seed)
        self.source_datalist = None if source_datalist is None else Path(source_datalist).expanduser().absolute()
        self.input_folders = [Path(p) for p in input_folders if p is not None]
        self.counts = None if counts is None else {int(k): int(n) for k, n in counts.items()}
        self.spacing, self.grid_per_class, self.overwrite = spacing, int(grid_per_class), bool(overwrite)
        self.header = self._header(classes, modality, channels, window, task)
        self.format = file_format(self.header["modality"], self.header["channels"])
        self._check_output()
        checkpoint = Path(checkpoint)
        if not checkpoint.is_file():
            raise InputError(checkpoint, "generator checkpoint not found")
        self.checkpoint, self.checkpoint_sha256 = checkpoint, sha256_file(checkpoint)
        self.staging = self.output_dir.parent / f".{self.output_dir.name}.partial-{os.getpid()}"
        self._bar = None  # the progress bar of an ignite run (attach)
        self._reset()

    # -- header and output checks -------------------------------------------------------------------------------

    def _header(self, classes, modality, channels, window, task) -> dict:
        source: dict = {}
        if self.source_datalist is not None:
            try:
                source = json.loads(self.source_datalist.read_text())
            except (OSError, ValueError) as e:
                raise InputError(self.source_datalist, f"cannot read the source datalist ({e})") from None
        header = {k: source[k] for k in _HEADER_KEYS if source.get(k) is not None}
        given = {"modality": modality, "classes": classes, "channels": channels, "window": window}
        for key, value in given.items():
            if value is not None and key in header and _plain(value) != _plain(header[key]):
                raise ValueError(f"{key} {_plain(value)} differs from {_plain(header[key])} in {self.source_datalist}; "
                                 "the generator was trained on the source datalist's (leave it out to use it)")
        header.update({k: v for k, v in {**given, "task": task}.items() if v is not None})
        if not header.get("classes") or not header.get("modality"):
            raise ValueError("give classes and modality, or a source_datalist that has them")
        header["classes"] = [str(c) for c in header["classes"]]
        header.setdefault("task", self.bundle_name)
        header["channels"] = int(header.get("channels") or (3 if header["modality"] == "dermoscopy" else 1))
        if header["modality"] == "ct":
            header["window"] = [float(v) for v in header.get("window") or DEFAULT_WINDOW]
        else:
            header.pop("window", None)
        return header

    def _check_output(self) -> None:
        """Raise InputError unless ``output_dir`` may be (re)placed; see the module docstring."""
        out = self.output_dir
        refuse_output_inside(out, [*self.input_folders, self.source_datalist])
        for item in [*self.input_folders, self.source_datalist]:
            if item is not None and out.resolve() in Path(item).expanduser().resolve().parents:
                raise InputError(out, f"output folder contains the input {item}; choose a folder outside it")
        if not out.exists():
            return
        if not out.is_dir():
            raise InputError(out, "exists and is not a folder; choose a new or empty folder for the synthetic set")
        if not any(out.iterdir()):
            return
        if not is_synthetic_set(out):
            raise InputError(out, "exists and is not a synthetic set written by medsynth (no datalist.json with "
                                  '"source": "synthetic"); it is never replaced: choose a new or empty folder')
        if not self.overwrite:
            raise InputError(out, "holds a previous synthetic set; set overwrite to replace it, or choose another "
                                  "folder")

    # -- writing ---------------------------------------------------------------------------------------------------

    def _reset(self) -> None:
        self.rows: list[dict] = []
        self._indices: set[int] = set()
        self._grid: dict[int, list[Tensor]] = {}
        self._staged = False

    def _stage(self) -> None:
        if self._staged:
            return
        if self.staging.exists():  # left by a crashed run of a process with this pid
            shutil.rmtree(self.staging)
        (self.staging / "images").mkdir(parents=True)
        self._staged = True

    def add(self, images: Tensor, labels: Tensor | Sequence[int], indices: Tensor | Sequence[int]) -> list[Path]:
        """Write ``images (B, C, H, W)`` in ``[-1, 1]`` of class ``labels (B,)`` and latent ``indices (B,)``.

        Returns the staged file paths (they move to ``output_dir`` at :meth:`finish`).

        Raises:
            ValueError: a wrong shape or channel count, non-finite pixels (a diverged generator), a label that
                is not a class index, or an index written before.
        """
        images = torch.as_tensor(images).detach().float().cpu()
        labels = [int(v) for v in torch.as_tensor(labels).reshape(-1).tolist()]
        indices = [int(v) for v in torch.as_tensor(indices).reshape(-1).tolist()]
        if images.dim() != 4 or images.shape[1] != self.header["channels"]:
            raise ValueError(f"images must have shape (B, {self.header['channels']}, H, W), got {list(images.shape)}")
        if not len(labels) == len(indices) == images.shape[0]:
            raise ValueError(f"{images.shape[0]} images but {len(labels)} labels and {len(indices)} indices")
        if not torch.isfinite(images).all():
            raise ValueError("generated images hold NaN or infinite values; the generator has diverged")
        classes = self.header["classes"]
        paths = []
        self._stage()
        for image, label, index in zip(images, labels, indices, strict=True):
            if not 0 <= label < len(classes):
                raise ValueError(f"label {label} is not a class index 0..{len(classes) - 1} of {classes}")
            if index in self._indices or index < 0:
                raise ValueError(f"latent index {index} is negative or was written already")
            paths.append(self._write_one(image, label, index))
            grid = self._grid.setdefault(label, [])
            if len(grid) < self.grid_per_class:
                grid.append(image)
        return paths

    def _write_one(self, image: Tensor, label: int, index: int) -> Path:
        name = safe_name(self.header["classes"][label])
        relative = Path("images", name, f"{safe_name(self.bundle_name)}_{name}_{index:06d}{FORMATS[self.format]}")
        data = encode_image(image, self.header["modality"], window=self.header.get("window"), spacing=self.spacing,
                            description=f"medsynth synthetic {self.bundle_name} {index}, HU")
        path = self.staging / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self._indices.add(index)
        self.rows.append({"file": relative.as_posix(), "class": self.header["classes"][label], "label": label,
                          "seed": self.seed, "latent_index": index, "bundle": self.bundle_name,
                          "bundle_version": self.bundle_version, "checkpoint": self.checkpoint.name,
                          "checkpoint_sha256": self.checkpoint_sha256,
                          "file_sha256": hashlib.sha256(data).hexdigest(), "created": _utc_now()})
        return path

    # -- publication -----------------------------------------------------------------------------------------------

    def written_counts(self) -> dict[int, int]:
        """Images written so far per class index."""
        out: dict[int, int] = {}
        for row in self.rows:
            out[row["label"]] = out.get(row["label"], 0) + 1
        return dict(sorted(out.items()))

    def finish(self) -> Path:
        """Write manifest, grid and datalist into the staging folder and rename it to ``output_dir``.

        Raises:
            ValueError: no image was written (an empty set is never published: a target ratio that is already met
                needs no synthetic set), or the counts differ from the expected ``counts``. The staging folder is
                discarded either way.
            InputError: ``output_dir`` became unusable meanwhile (see :meth:`_check_output`).
        """
        written = self.written_counts()
        try:
            if not self.rows:
                raise ValueError(f"no images were generated for {self.output_dir}; nothing to publish (were all the "
                                 "synthetic counts 0, e.g. a target ratio that the real data already meets?)")
            expected = None if self.counts is None else {k: n for k, n in sorted(self.counts.items()) if n}
            if expected is not None and written != expected:
                raise ValueError(f"{sum(written.values())} images written per class {written}, but {expected} were "
                                 f"expected; the incomplete set is not published to {self.output_dir}")
            self.rows.sort(key=lambda r: r["latent_index"])
            self._write_manifest()
            self._write_grid()
            self._write_datalist(written)
            self._publish()
        finally:
            self.abort()
        logger.info("wrote %d synthetic images %s to %s", sum(written.values()), written, self.output_dir)
        return self.output_dir

    def _write_manifest(self) -> None:
        with open(self.staging / "manifest.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS)
            writer.writeheader()
            writer.writerows(self.rows)

    def _write_grid(self) -> None:
        labels = sorted(self._grid)
        nrow = max(len(self._grid[k]) for k in labels)
        tiles = []
        for k in labels:
            row = self._grid[k]
            tiles += row + [torch.full_like(row[0], -1.0)] * (nrow - len(row))  # black pads a short row
        image = make_grid_image(torch.stack(tiles), nrow, [self.header["classes"][k] for k in labels])
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        (self.staging / "grid.png").write_bytes(buffer.getvalue())

    def _write_datalist(self, written: dict[int, int]) -> None:
        classes, created = self.header["classes"], _utc_now()
        items = [{"image": str(self.staging / r["file"]), "label": r["label"], "source": "synthetic",
                  "patient_id": f"synthetic-{self.bundle_name}-{r['latent_index']:06d}",
                  "latent_index": r["latent_index"], "seed": self.seed} for r in self.rows]
        provenance = {"bundle": self.bundle_name, "bundle_version": self.bundle_version,
                      "checkpoint": self.checkpoint.name, "checkpoint_sha256": self.checkpoint_sha256,
                      "seed": self.seed, "counts": {classes[k]: n for k, n in written.items()}, "created": created,
                      "source_datalist": None if self.source_datalist is None else str(self.source_datalist)}
        datalist = {**self.header, "medsynth_version": medsynth.__version__, "source": "synthetic",
                    "provenance": provenance, "training": items, "validation": [], "test": []}
        write_datalist(datalist, self.staging / "datalist.json")

    def _publish(self) -> None:
        """Rename the staging folder to ``output_dir``, moving a previous set aside first and deleting it after."""
        self._check_output()
        old = None
        if self.output_dir.exists():
            old = self.output_dir.parent / f".{self.output_dir.name}.old-{os.getpid()}"
            if old.exists():
                shutil.rmtree(old)
            os.replace(self.output_dir, old)
        try:
            os.replace(self.staging, self.output_dir)
        except BaseException:
            if old is not None:
                os.replace(old, self.output_dir)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def abort(self) -> None:
        """Discard everything written since the last :meth:`finish` (the staging folder); ``output_dir`` is kept."""
        if self.staging.exists():
            shutil.rmtree(self.staging, ignore_errors=True)
        self._reset()

    # -- ignite ----------------------------------------------------------------------------------------------------

    def attach(self, engine: Engine) -> None:
        """Write at every iteration, publish at completion; discard on ``terminate()`` or an exception (re-raised).

        A progress bar over the images written (total: the sum of ``counts``) runs meanwhile, on a terminal only.
        """

        def discard(_: Engine) -> None:
            self._close_bar()
            self.abort()

        engine.add_event_handler(Events.STARTED, self._started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._iteration_completed)
        engine.add_event_handler(Events.COMPLETED, self._completed)
        engine.add_event_handler(Events.TERMINATE, discard)
        engine.add_event_handler(Events.EXCEPTION_RAISED, self._exception_raised)

    def _iteration_completed(self, engine: Engine) -> None:
        batch, output = engine.state.batch, engine.state.output
        if not isinstance(batch, Mapping) or not isinstance(output, Mapping):
            raise TypeError("SyntheticSetWriter needs the collated batch and output dicts: run the evaluator with "
                            "decollate=False over a LatentDataset")
        paths = self.add(output["pred"], batch["label"], batch["index"])
        if self._bar is not None:
            self._bar.update(len(paths))

    def _started(self, engine: Engine) -> None:
        self._close_bar()
        total = sum(self.counts.values()) if self.counts is not None else _length(engine.state.dataloader)
        self._bar = progress(total=total, desc=f"synthetic set ({self.output_dir.name})", unit="img")

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _completed(self, engine: Engine) -> None:
        self._close_bar()
        if engine.should_terminate:
            logger.warning("run terminated early: the synthetic set is discarded, %s is unchanged", self.output_dir)
            self.abort()
            return
        self.finish()

    def _exception_raised(self, engine: Engine, error: BaseException) -> None:
        self._close_bar()
        self.abort()
        raise error


def _length(loader: object) -> int | None:
    """Items in a loader's dataset (a LatentDataset: the images to write), or None when it has no length."""
    try:
        return len(loader.dataset)  # type: ignore[attr-defined]
    except (AttributeError, TypeError):
        return None
