"""What a training bundle reads: one datalist, resolved from ``datalist``, ``dataset_dir`` or the embedded demo.

A bundle config holds ``datalist`` (a datalist JSON), ``dataset_dir`` (a folder) and ``demo_task``::

    data: {_target_: medsynth.data.training.TrainingData, datalist: "@datalist", dataset_dir: "@dataset_dir",
           output_dir: "@output_dir", demo_task: skin}

Resolution, in order: ``datalist`` if given; else ``dataset_dir/datalist.json`` when that file exists; else
``dataset_dir`` as class folders (``<dataset_dir>/<class>/<images>``, :func:`datalist_from_folders`), whose
datalist is written under ``output_dir/datalist`` (never into the data folder); else the embedded demo set
(:func:`~medsynth.data.embedded.demo_datalist`), generated once and cached.

GAN images: :func:`gan_transform` is the modality preset (:func:`~medsynth.data.transforms.load_preset`) in
``[-1, 1]`` (what a ``tanh`` generator emits), transposed to rows-first ``(C, H, W)`` so that tensors,
sample grids and exported files share one orientation (MONAI's readers yield ``(C, W, H)``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from monai.data import Dataset
from monai.transforms import Compose, Transposed

from medsynth.data.datalist import class_counts, load_datalist
from medsynth.data.datasets import make_dataset
from medsynth.data.splits import SPLITS, split_summary, summary_lines
from medsynth.data.transforms import classic_augmentation, load_preset
from medsynth.errors import InputError

logger = logging.getLogger(__name__)

GAN_RANGE = "symmetric"
_CHANNELS = {"dermoscopy": 3}  # by modality when the datalist has no "channels"; others are grey


def image_transform(modality: str, image_size: int | Sequence[int], window: Sequence[float] | None = None,
                    keys: Sequence[str] = ("image",), augment: bool = False, seed: int | None = None,
                    range: str = GAN_RANGE) -> Compose:
    """The chain of a training image: load, intensity to ``range``, resize, [classic augmentation], rows-first.

    ``range`` is ``"symmetric"`` ``[-1, 1]`` for a GAN, ``"unit"`` ``[0, 1]`` (or ``"imagenet"`` for RGB) for a
    classifier. ``augment`` inserts :func:`~medsynth.data.transforms.classic_augmentation` (seeded with ``seed``)
    before the transpose, where its per-axis choices (an X-ray is flipped left-right only) see the ``(C, W, H)``
    they expect.
    """
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    preset = load_preset(modality, spatial_size=size[::-1], window=window, keys=keys, range=range)
    if augment and range == "imagenet":
        raise ValueError("classic augmentation acts on [0, 1] or [-1, 1] intensities, not ImageNet-normalised ones")
    extra = [classic_augmentation(modality, seed=seed, keys=keys, range=range)] if augment else []
    return Compose([*preset.transforms, *extra, Transposed(keys, indices=(0, 2, 1))])


def gan_transform(modality: str, image_size: int | Sequence[int], window: Sequence[float] | None = None,
                  keys: Sequence[str] = ("image",), augment: bool = False, seed: int | None = None) -> Compose:
    """:func:`image_transform` in ``[-1, 1]``, what a ``tanh`` generator emits."""
    return image_transform(modality, image_size, window, keys, augment, seed, range=GAN_RANGE)


def datalist_channels(datalist: dict) -> int:
    """Image channels of a datalist: its ``channels``, else 3 for dermoscopy and 1 otherwise."""
    return int(datalist.get("channels") or _CHANNELS.get(datalist.get("modality", "other"), 1))


def preset_for(modality: str, channels: int) -> str:
    """The :func:`~medsynth.data.transforms.load_preset` modality for a datalist's ``modality``: itself, except
    that "other" is read as RGB dermoscopy (8-bit) with 3 channels and as grey X-ray (divided by the stored bit
    depth) otherwise."""
    if modality != "other":
        return modality
    return "dermoscopy" if channels == 3 else "xray"


def resolve_datalist(datalist: str | os.PathLike | None = None, dataset_dir: str | os.PathLike | None = None,
                     output_dir: str | os.PathLike | None = None, demo_task: str = "skin",
                     modality: str = "other") -> Path:
    """The datalist file to train on (see the module docstring for the order)."""
    if datalist:
        return Path(datalist)
    if dataset_dir:
        root = Path(dataset_dir)
        if (root / "datalist.json").is_file():
            return root / "datalist.json"
        if not root.is_dir():
            raise InputError(root, "dataset_dir not found" if not root.exists() else
                             "dataset_dir is not a folder; give a folder of class sub-folders, or --datalist FILE")
        if output_dir is None:
            raise ValueError("dataset_dir of class folders needs an output_dir for the datalist it builds")
        from medsynth.data.builders import datalist_from_folders

        logger.info("building a datalist from the class folders of %s", root)
        path = datalist_from_folders(root, Path(output_dir) / "datalist", modality=modality)
        for line in summary_lines(split_summary(load_datalist(path, check_files=False))):
            logger.info("%s", line.strip())
        return path
    from medsynth.data.embedded import demo_datalist

    return demo_datalist(demo_task)


class TrainingData:
    """A resolved, validated datalist and the facts a bundle configures its networks with.

    Args:
        datalist, dataset_dir, output_dir, demo_task: see :func:`resolve_datalist`.
        modality: for class folders only (a datalist names its own).
        train_class: keep only this class (a name, an index, ``"minority"`` or ``"majority"`` of the training
            split) in every split: an unconditional GAN of one class (the DCGAN bundle). None keeps all.
    """

    def __init__(self, datalist: str | os.PathLike | None = None, dataset_dir: str | os.PathLike | None = None,
                 output_dir: str | os.PathLike | None = None, demo_task: str = "skin", modality: str = "other",
                 train_class: str | int | None = None) -> None:
        self.path = resolve_datalist(datalist, dataset_dir, output_dir, demo_task, modality)
        self.datalist = load_datalist(self.path)
        self.classes: list[str] = list(self.datalist["classes"])
        self.modality: str = self.datalist.get("modality", "other")
        self.window = self.datalist.get("window")
        folders = {self.path.parent.resolve()}
        for split in SPLITS:
            folders.update(Path(it["image"]).parent.resolve() for it in self.datalist.get(split, []))
        self.input_folders: list[Path] = sorted(folders)  # the datalist's and every image's: outputs stay out
        self.train_class = None if train_class is None else self.class_index(train_class)
        if self.train_class is not None:
            for split in SPLITS:
                self.datalist[split] = [it for it in self.datalist.get(split, []) if it["label"] == self.train_class]
        if not self.datalist.get("training"):
            raise InputError(self.path, "the training split is empty" + (
                f" for class {self.classes[self.train_class]!r}" if self.train_class is not None else ""))

    @property
    def channels(self) -> int:
        """Image channels: the datalist's ``channels``, else 3 for dermoscopy and 1 otherwise."""
        return datalist_channels(self.datalist)

    @property
    def preset(self) -> str:
        """The modality preset that reads the images (:func:`preset_for`)."""
        return preset_for(self.modality, self.channels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def counts(self, split: str = "training") -> dict[str, int]:
        """Images per class name in ``split``."""
        return class_counts(self.datalist, split)

    @property
    def minority_class(self) -> int:
        """Index of the class with the fewest (but some) training images; the lowest index on a tie."""
        return self.class_index("minority")

    def conditional_classes(self) -> int:
        """``num_classes`` for a class-conditional model; InputError unless >= 2 classes have training images."""
        present = {name: n for name, n in self.counts().items() if n}
        if len(present) < 2:
            only = ", ".join(f"{name!r} ({n} images)" for name, n in present.items())
            raise InputError(self.path, f"a class-conditional GAN needs at least 2 classes with training images; "
                                        f"this datalist has only {only} (classes {self.classes}). Use the dcgan "
                                        "bundle for a single class, or fix the labels")
        return self.num_classes

    def transform(self, image_size: int, augment: bool = False, seed: int | None = None,
                  range: str = GAN_RANGE) -> Compose:
        """:func:`image_transform` for this datalist's preset (and CT window), optionally with classic augmentation.
        ``range``: ``"symmetric"`` for a GAN (the default), ``"unit"`` for a classifier."""
        return image_transform(self.preset, image_size, self.window, augment=augment, seed=seed, range=range)

    def dataset(self, split: str, transform, cache: str = "memory", cache_dir: str | os.PathLike | None = None,
                num_workers: int = 0) -> Dataset:
        """A MONAI dataset of ``split`` (see :func:`~medsynth.data.datasets.make_dataset`)."""
        try:
            return make_dataset(self.datalist, split, transform, cache=cache, cache_dir=cache_dir,
                                num_workers=num_workers)
        except ValueError as e:
            raise InputError(self.path, str(e)) from None

    def class_index(self, value: str | int) -> int:
        """Index of a class given by name, index, "minority" or "majority" (of the training split)."""
        if value in ("minority", "majority"):
            counts = self.counts()
            order = sorted(range(self.num_classes), key=lambda k: (counts[self.classes[k]], k))
            present = [k for k in order if counts[self.classes[k]]]
            if not present:
                raise InputError(self.path, "the training split is empty")
            return present[0] if value == "minority" else present[-1]
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < self.num_classes:
            return value
        if value in self.classes:
            return self.classes.index(value)
        raise InputError(self.path, f"train_class {value!r} is not a class of {self.classes} (nor an index, "
                                    "'minority' or 'majority')")
