"""What to generate: how many images per class, and the latent vector of each, reproducible one by one.

A synthetic set is a list of ``(class, latent_index)`` pairs. :func:`synthetic_counts` turns a datalist and a
request (``per_class`` images, or a ``target_ratio`` majority:minority) into images per class;
:class:`LatentDataset` numbers them ``0..N-1`` across classes (in class-index order) and draws each latent from
:func:`latent_vector` of ``(seed, index)`` alone. So any image of a set can be regenerated from its manifest row
(seed, latent_index, label) without replaying the rest, and a set of 200 images starts with the same 150 images
as a set of 150 of the same single class.

:func:`prepare_latent_batch` is the ``prepare_batch`` of MONAI's ``SupervisedEvaluator``: it hands ``z`` and the
labels to ``SimpleInferer``, which then calls ``generator(z, labels)`` (or ``generator(z, None)`` for an
unconditional generator).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from fractions import Fraction

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from medsynth.data.datalist import class_counts

logger = logging.getLogger(__name__)


def latent_vector(seed: int, index: int, latent_size: int) -> Tensor:
    """The latent ``z (latent_size,)`` float32 of image ``index`` of a set drawn with ``seed``.

    ``z = numpy.random.default_rng([seed, index]).standard_normal(latent_size)`` cast to float32: NumPy's
    ``SeedSequence`` hashes the pair ``[seed, index]`` into the PCG64 state, so every pair gets its own
    independent stream (the demo data draws its images the same way). Not ``torch.Generator().manual_seed``:
    torch's CPU generator keeps only the low 32 bits of a seed, so a seed derived from both numbers would
    collide across sets.

    Raises:
        ValueError: when ``seed`` or ``index`` is negative or ``latent_size`` < 1.
    """
    if seed < 0 or index < 0 or latent_size < 1:
        raise ValueError(f"seed and index must be >= 0 and latent_size >= 1, got {seed}, {index}, {latent_size}")
    draw = np.random.default_rng([int(seed), int(index)]).standard_normal(int(latent_size))
    return torch.from_numpy(draw.astype(np.float32))


def parse_ratio(ratio: str | float) -> Fraction:
    """``"2.39:1"``, ``"2.39"`` or ``2.39`` -> ``Fraction(239, 100)``, exact, so ``ceil(M / ratio)`` is too.

    Raises:
        ValueError: for an unreadable ratio or one < 1 (the majority:minority ratio cannot favour the minority).
    """
    try:
        if isinstance(ratio, str):
            left, _, right = ratio.partition(":")
            value = Fraction(left.strip()) / Fraction(right.strip() or "1")
        else:
            value = Fraction(repr(float(ratio)))  # the decimal the user wrote, not the binary float
    except (ValueError, ZeroDivisionError, TypeError):
        raise ValueError(f"target_ratio {ratio!r} is not a ratio like '2.39:1', '2.39' or 2.39") from None
    if value < 1:
        raise ValueError(f"target_ratio {ratio!r} is below 1: it is majority:minority, e.g. '2.39:1'")
    return value


def _class_index(value: str | int, classes: Sequence[str], what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(classes):
        return value
    if isinstance(value, str) and value in classes:
        return list(classes).index(value)
    raise ValueError(f"{what} {value!r} is neither a class name of {list(classes)} nor an index 0..{len(classes) - 1}")


def synthetic_counts(datalist: Mapping, *, per_class: int | Mapping[str | int, int] | None = None,
                     target_ratio: str | float | None = None, classes: Sequence[str | int] | None = None,
                     split: str = "training") -> dict[int, int]:
    """Images to generate per class index, from exactly one of ``per_class`` and ``target_ratio``.

    Args:
        datalist: a datalist (``load_datalist``): its ``classes`` and the class counts of ``split``.
        per_class: ``n`` images for every allowed class, or ``{name or index: n}`` for the classes listed.
        target_ratio: majority:minority after augmentation (``"2.39:1"``, ``"2.39"``, ``2.39``; >= 1). With ``M``
            the largest class count in ``split``, class ``c`` gets ``max(0, ceil(M / ratio) - n_c)``: the demo skin
            set's 525 benign / 70 malignant at 2.39:1 gives ``ceil(525 / 2.39) - 70 = 150`` malignant, 0 benign.
        classes: the class names or indices that may be generated (all by default); an unconditional generator
            of one class gets ``[k]``.
        split: the split whose class counts ``target_ratio`` balances.

    Returns:
        ``{class index: images}`` for the allowed classes, in index order; zeros included (all zero, logged,
        when the target is already met).

    Raises:
        ValueError: both or neither of ``per_class`` and ``target_ratio``, an unknown class, a negative count, a
            ratio below 1, or a ``target_ratio`` over an empty split.
    """
    if (per_class is None) == (target_ratio is None):
        raise ValueError("give exactly one of per_class (images per class) and target_ratio (e.g. '2.39:1')")
    names = list(datalist["classes"])
    allowed = sorted({_class_index(c, names, "class") for c in classes}) if classes is not None else list(
        range(len(names)))
    if per_class is not None:
        if isinstance(per_class, Mapping):
            wanted = {_class_index(k, names, "per_class key"): int(n) for k, n in per_class.items()}
            outside = [names[k] for k in wanted if k not in allowed]
            if outside:
                raise ValueError(f"per_class names {outside}, outside the classes to generate "
                                 f"{[names[k] for k in allowed]}")
        else:
            wanted = dict.fromkeys(allowed, int(per_class))
        if any(n < 0 for n in wanted.values()):
            raise ValueError(f"per_class counts must be >= 0, got {per_class!r}")
        counts = {k: wanted.get(k, 0) for k in allowed}
    else:
        ratio, real = parse_ratio(target_ratio), class_counts(datalist, split)  # type: ignore[arg-type]
        majority = max(real.values(), default=0)
        if majority == 0:
            raise ValueError(f"split {split!r} has no images, so target_ratio {target_ratio!r} has nothing to balance")
        goal = math.ceil(Fraction(majority) / ratio)
        counts = {k: max(0, goal - real[names[k]]) for k in allowed}
        if not any(counts.values()):
            logger.info("target ratio %s already met in %s (%s): nothing to generate", target_ratio, split, real)
    return counts


class LatentDataset(Dataset):
    """``{"z": (latent_size,) float32, "label": int64 scalar, "index": int, "conditional": bool}`` per image.

    Items run over the classes of ``counts`` in index order (``counts[k]`` items of class ``k``) with a global
    ``index`` ``0..N-1``; ``z`` is :func:`latent_vector` ``(seed, index, latent_size)``. ``conditional=False``
    marks the items of an unconditional generator: :func:`prepare_latent_batch` then passes ``None`` as its
    labels (the label still names the class the images are filed under).
    """

    def __init__(self, counts: Mapping[int, int], latent_size: int, seed: int = 0, conditional: bool = True) -> None:
        if any(int(n) < 0 for n in counts.values()):
            raise ValueError(f"counts must be >= 0, got {dict(counts)}")
        self.latent_size, self.seed, self.conditional = int(latent_size), int(seed), bool(conditional)
        self.labels = [int(k) for k in sorted(counts) for _ in range(int(counts[k]))]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self.labels):
            raise IndexError(f"index {index} out of range for {len(self.labels)} latents")
        return {"z": latent_vector(self.seed, index, self.latent_size),
                "label": torch.tensor(self.labels[index], dtype=torch.int64), "index": index,
                "conditional": self.conditional}


def prepare_latent_batch(batchdata: Mapping, device: str | torch.device | None = None, non_blocking: bool = False,
                         **kwargs) -> tuple[Tensor, Tensor, tuple[Tensor | None], dict]:
    """``prepare_batch`` for ``SupervisedEvaluator``: a :class:`LatentDataset` batch -> ``(z, label, (y,), {})``.

    ``SimpleInferer`` then calls ``network(z (B, latent_size), y)``, with ``y`` the labels ``(B,)`` or ``None``
    when the batch's ``"conditional"`` is False (unconditional generator). ``kwargs`` go to ``Tensor.to``.
    """
    z = batchdata["z"].to(device=device, non_blocking=non_blocking, **kwargs)
    label = batchdata["label"].to(device=device, non_blocking=non_blocking, **kwargs)
    conditional = batchdata.get("conditional", True)
    conditional = bool(conditional.all()) if isinstance(conditional, Tensor) else bool(conditional)
    return z, label, (label if conditional else None,), {}
