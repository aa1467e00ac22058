"""MONAI datasets over a datalist split: in-memory cache, on-disk cache, or none.

Both caches keep the output of the transforms up to the first random one (the load preset), so the
classic augmentation still draws anew each epoch. The disk cache (``PersistentDataset``) is keyed by each
item and by a hash of those deterministic transforms (``hash_transform=pickle_hashing``: it pickles the
transform objects, so a changed window, size or reader gives new cache files instead of stale ones).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from monai.data import CacheDataset, Dataset, PersistentDataset
from monai.data.utils import pickle_hashing
from monai.transforms import Compose

from medsynth.data.datalist import load_datalist
from medsynth.data.splits import SPLITS
from medsynth.data.transforms import classic_augmentation, load_preset
from medsynth.errors import InputError, refuse_output_inside

CACHES = ("memory", "disk", "none")


def make_dataset(
    datalist: dict,
    split: str,
    transform: Callable,
    *,
    cache: str = "memory",
    cache_dir: str | os.PathLike | None = None,
    num_workers: int = 0,
    cache_rate: float = 1.0,
) -> Dataset:
    """A MONAI dataset of ``datalist[split]``; items are dicts whose ``label`` is the class index.

    Args:
        cache: ``"memory"`` -> ``CacheDataset`` (``cache_rate`` of the items, built with ``num_workers``
            threads), ``"disk"`` -> ``PersistentDataset`` in ``cache_dir`` (required; refused inside the
            folders of the images), ``"none"`` -> plain ``Dataset``.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if cache not in CACHES:
        raise ValueError(f"unknown cache {cache!r}; choose one of {', '.join(CACHES)}")
    items = [dict(item) for item in datalist.get(split, [])]
    if not items:
        raise ValueError(f"split {split!r} of the datalist is empty")
    if cache == "memory":
        return CacheDataset(items, transform, cache_rate=cache_rate, num_workers=max(num_workers, 1),
                            progress=False)
    if cache == "disk":
        if cache_dir is None:
            raise ValueError("cache='disk' needs a cache_dir")
        refuse_output_inside(cache_dir, sorted({str(Path(it["image"]).parent) for it in items}))
        return PersistentDataset(items, transform, cache_dir=Path(cache_dir), hash_transform=pickle_hashing)
    return Dataset(items, transform)


def dataset_from_datalist_file(
    path: str | os.PathLike,
    split: str,
    *,
    size: int = 64,
    cache: str = "memory",
    cache_dir: str | os.PathLike | None = None,
    augment: bool = False,
    seed: int | None = None,
    range: str = "unit",
    num_workers: int = 0,
) -> Dataset:
    """Dataset of one split of a datalist file, with the preset of its ``modality`` (and CT ``window``).

    Images come out as float32 ``(C, size, size)``; ``augment`` appends :func:`classic_augmentation`
    (seeded with ``seed``) after the cached deterministic part.
    """
    datalist = load_datalist(path)
    modality: Any = datalist.get("modality")  # unchecked JSON: load_preset refuses what it has no preset for
    try:
        preset = load_preset(modality, spatial_size=(size, size), window=datalist.get("window"), range=range)
    except ValueError as e:
        raise InputError(path, str(e)) from None
    transforms = list(preset.transforms)
    if augment:
        transforms.append(classic_augmentation(modality, seed=seed, range=range))
    return make_dataset(datalist, split, Compose(transforms), cache=cache, cache_dir=cache_dir,
                        num_workers=num_workers)
