"""The image sets an evaluation compares, from a datalist JSON or a folder.

* **Folder**: class sub-folders (``DIR/<class>/<images>``) give one set per class, named by the folder;
  image files directly in ``DIR`` give one unnamed class. Not both. A real folder is the FID reference only:
  the memorization audit needs the folder of the generator's training images (``train``, ``--real-train``)
  and a folder of real images it never saw (``heldout``, ``--real-heldout``), both or neither.
* **Real datalist**: the FID reference is one split (``real_split``, default ``"validation"``: images the
  generator never saw, and not the classifier's scoring split; ``"test"`` only when asked for, or
  ``"training"``, ``"all"``). The memorization audit uses ``training`` as the generator's training images and
  ``validation`` as held-out images (``test`` when ``real_split`` is ``"test"``). An empty split is refused.

Each role -- ``reference`` (FID, KID, PRDC, ...), ``memorization_train``, ``memorization_heldout`` -- is
recorded with its input and split in :attr:`RealSets.roles`, which the report shows.
* **Synthetic datalist**: every split; when any item says ``"source": "synthetic"`` only those, so an
  augmented datalist (real + synthetic) can be passed as it is.

Classes are matched by *name* between the real and synthetic sides.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from medsynth.errors import InputError

REAL_SPLITS = ("validation", "test", "training", "all")
DEFAULT_REAL_SPLIT = "validation"
ROLES = ("reference", "memorization_train", "memorization_heldout")
UNNAMED = "all images"


@dataclass
class ImageSet:
    """Image files with a class name each (``UNNAMED`` for a folder without class sub-folders)."""

    paths: list[str]
    class_names: list[str]
    origin: str  # the datalist or folder, and the split, for the report

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def classes(self) -> list[str]:
        """Class names in first-seen order."""
        return list(dict.fromkeys(self.class_names))

    def indices(self, name: str) -> list[int]:
        return [i for i, c in enumerate(self.class_names) if c == name]


@dataclass
class RealSets:
    """The real side: the FID reference, and the audit's training and held-out sets (None: no audit)."""

    reference: ImageSet
    train: ImageSet | None
    heldout: ImageSet | None
    window: tuple[float, float] | None = None
    notes: list[str] = field(default_factory=list)
    roles: dict[str, dict | None] = field(default_factory=dict)  # ROLES -> {"input", "split", "images"} or None


def _role(images: ImageSet | None, source: str | os.PathLike, split: str | None) -> dict | None:
    """What one role used: the input (datalist or folder), its split (None for a folder) and the image count."""
    if images is None:
        return None
    return {"input": str(source), "split": split, "images": len(images)}


def is_datalist(path: str | os.PathLike) -> bool:
    return Path(path).is_file() and Path(path).suffix.lower() == ".json"


def folder_set(root: str | os.PathLike) -> ImageSet:
    """Images of ``root``: per class sub-folder, or one unnamed class (see the module docstring)."""
    from medsynth.data.readers import image_kind

    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "not a datalist JSON file or a folder of images")
    top = sorted(p for p in root.iterdir() if p.is_file() and image_kind(p))
    folders = {d.name: sorted(p for p in d.iterdir() if p.is_file() and image_kind(p))
               for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")}
    folders = {name: files for name, files in folders.items() if files}
    if top and folders:
        raise InputError(root, "holds images both directly and in class sub-folders; use one layout")
    if top:
        return ImageSet([str(p) for p in top], [UNNAMED] * len(top), str(root))
    if not folders:
        raise InputError(root, "no image files in the folder or its class sub-folders")
    paths = [(str(p), name) for name, files in folders.items() for p in files]
    return ImageSet([p for p, _ in paths], [c for _, c in paths], str(root))


def _split_set(datalist: dict, path: str | os.PathLike, splits: Sequence[str]) -> ImageSet:
    items = [it for s in splits for it in datalist.get(s, [])]
    classes = datalist["classes"]
    return ImageSet([it["image"] for it in items], [classes[it["label"]] for it in items],
                    f"{path} [{'+'.join(splits)}]")


def _window(datalist: dict) -> tuple[float, float] | None:
    window = datalist.get("window")
    return None if window is None else (float(window[0]), float(window[1]))


def real_sets(path: str | os.PathLike, real_split: str = DEFAULT_REAL_SPLIT,
              heldout: str | os.PathLike | None = None, train: str | os.PathLike | None = None) -> RealSets:
    """The real side from a datalist or folder; see the module docstring.

    ``train`` and ``heldout`` (folders, with a real folder only): the generator's training images and real
    images it never saw, the memorization audit's two sides.
    """
    if not is_datalist(path):
        reference = folder_set(path)
        roles: dict[str, dict | None] = {"reference": _role(reference, path, None), "memorization_train": None,
                                         "memorization_heldout": None}
        if train is None and heldout is None:
            return RealSets(reference, None, None, roles=roles, notes=[
                "memorization audit skipped: a real folder needs --real-train DIR (the images the generator was "
                "trained on) and --real-heldout DIR (real images the generator never saw) to compare against"])
        if train is None or heldout is None:
            raise ValueError("--real-train DIR (the generator's training images) and --real-heldout DIR (real "
                             "images it never saw) go together: the memorization audit needs both; --real is the "
                             "FID reference only")
        train_set, held_set = folder_set(train), folder_set(heldout)
        roles.update(memorization_train=_role(train_set, train, None),
                     memorization_heldout=_role(held_set, heldout, None))
        return RealSets(reference, train_set, held_set, roles=roles)
    if train is not None or heldout is not None:
        raise ValueError("--real-train and --real-heldout are for a real folder; with a real datalist the "
                         "generator's training images are its training split and the held-out ones its "
                         "validation split (test with --real-split test)")
    from medsynth.data.datalist import load_datalist

    if real_split not in REAL_SPLITS:
        raise ValueError(f"real_split must be one of {', '.join(REAL_SPLITS)}, got {real_split!r}")
    datalist, notes = load_datalist(path), []
    splits = ("training", "validation", "test") if real_split == "all" else (real_split,)
    reference = _split_set(datalist, path, splits)
    if not len(reference):
        hint = "; pass --real-split test to compare with the test split (the classifier's scoring split) " \
               "instead" if real_split == "validation" else ""
        raise InputError(path, f"no images in the {real_split} split to use as the FID reference{hint}")
    held_split = "test" if real_split == "test" else "validation"
    train_side: ImageSet | None
    held: ImageSet | None
    train_side, held = _split_set(datalist, path, ("training",)), _split_set(datalist, path, (held_split,))
    if not len(train_side) or not len(held):
        notes.append(f"memorization audit skipped: {path} needs images in 'training' and '{held_split}'")
        train_side = held = None
    roles = {"reference": _role(reference, path, real_split),
             "memorization_train": _role(train_side, path, "training"),
             "memorization_heldout": _role(held, path, held_split)}
    return RealSets(reference, train_side, held, _window(datalist), notes, roles)


def synthetic_set(path: str | os.PathLike) -> tuple[ImageSet, tuple[float, float] | None]:
    """The synthetic images (and the datalist's window, if any) from a datalist or folder."""
    if not is_datalist(path):
        return folder_set(path), None
    from medsynth.data.datalist import load_datalist
    from medsynth.data.splits import SPLITS

    datalist = load_datalist(path)
    items = [it for s in SPLITS for it in datalist.get(s, [])]
    if any(it.get("source") == "synthetic" for it in items):
        items = [it for it in items if it.get("source") == "synthetic"]
    if not items:
        raise InputError(path, "no synthetic images in the datalist")
    classes = datalist["classes"]
    images = ImageSet([it["image"] for it in items], [classes[it["label"]] for it in items], str(path))
    return images, _window(datalist)
