"""Seeded, stratified, patient-grouped train/validation/test splits.

No patient may land in two splits (images of one patient are correlated, so a leak inflates every
test figure), each split should keep the class ratio of the whole set, and each should hold patients
like the whole cohort: a test split of mostly single-image patients while training gets the
multi-image ones no longer represents the cohort. scikit-learn's ``StratifiedGroupKFold`` only makes
equal folds, so this module deals whole patients itself (:func:`assign_splits`):

1. Patients are stratified by class composition (the set of classes among their images) and size
   (1, 2, 3 or 4+ images), shuffled with the seed within each stratum, and laid out stratum after
   stratum.
2. Walking that sequence, each patient goes to the split with the largest deficit of images relative
   to its target fraction of everything dealt so far (ties broken with the seed). Every contiguous run
   of the sequence, so every stratum and every class, is thus shared out in the target fractions to
   within a patient or two, and the remainder carries over to the next stratum instead of always
   falling to training.
3. Whole patients, and patients with images of several classes, can leave the per-class image counts
   off target; a final pass swaps two patients of the same size bucket between splits, or moves one
   single-image patient, while that brings the per-class counts (and the split sizes) closer to their
   targets. Swaps keep the size distribution as dealt; a move shifts one single-image patient.

:data:`SPLIT_VERSION` names this algorithm; datalists record it, and the demo-set cache is keyed on it,
so a datalist split by an earlier version is not reused silently. :func:`split_summary` reports the
figures (images, patients, images per patient, classes) per split.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

SPLITS = ("training", "validation", "test")
DEFAULT_FRACTIONS = (0.7, 0.15, 0.15)
SPLIT_VERSION = 2  # 1: largest patients first, greedy per class; 2: strata of class composition and size
SIZE_BUCKETS = 4  # patients of 1, 2, 3 and 4+ images are separate strata

logger = logging.getLogger(__name__)


def parse_fractions(text: str | Sequence[float]) -> tuple[float, float, float]:
    """Parse ``"0.7,0.15,0.15"`` (or a sequence) into three fractions that sum to 1."""
    values = [float(v) for v in (text.split(",") if isinstance(text, str) else text)]
    if len(values) != 3 or any(v < 0 for v in values) or not np.isclose(sum(values), 1.0, atol=1e-6):
        raise ValueError(f"split fractions must be three non-negative numbers summing to 1, got {text!r}")
    return tuple(values)  # type: ignore[return-value]


def assign_splits(
    labels: Sequence[int],
    groups: Sequence[str],
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
) -> list[str]:
    """Return the split name (``"training"``, ``"validation"`` or ``"test"``) of every item.

    Whole patients are dealt to the splits by strata of class composition and size (module docstring), so
    every split keeps the class ratio and the distribution of images per patient of the whole set.

    Args:
        labels: class index of each item.
        groups: patient id of each item; all items of one patient share a split.
        fractions: target fraction of items per split, in ``SPLITS`` order.
        seed: the same seed gives the same assignment.
    """
    if len(labels) != len(groups):
        raise ValueError(f"{len(labels)} labels but {len(groups)} patient ids")
    fraction_array = np.asarray(parse_fractions(fractions))
    if not len(labels):
        return []
    label_array = np.asarray(labels, dtype=int)
    names, group_index = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    group_index = group_index.ravel()
    n_classes = int(label_array.max()) + 1
    group_counts = np.zeros((len(names), n_classes))
    np.add.at(group_counts, (group_index, label_array), 1)

    rng = np.random.default_rng(seed)
    order = _stratified_order(group_counts, rng)
    group_split = _deal(order, group_counts.sum(1), fraction_array, rng)
    _repair_class_counts(group_split, group_counts, fraction_array, order)
    counts = np.zeros((len(SPLITS), n_classes))
    np.add.at(counts, group_split, group_counts)
    _warn_missing_classes(counts, fraction_array)
    return [SPLITS[group_split[i]] for i in group_index]


def _size_bucket(sizes: np.ndarray) -> np.ndarray:
    """0, 1, 2 for patients of 1, 2, 3 images, 3 for 4 or more."""
    return np.minimum(sizes, SIZE_BUCKETS).astype(int) - 1


def _stratified_order(group_counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Patient indices, stratum after stratum (class composition, then size bucket), shuffled within each."""
    _, composition = np.unique(group_counts > 0, axis=0, return_inverse=True)
    stratum = composition.ravel() * SIZE_BUCKETS + _size_bucket(group_counts.sum(1))
    shuffled = rng.permutation(len(group_counts))
    return shuffled[np.argsort(stratum[shuffled], kind="stable")]


def _deal(order: np.ndarray, sizes: np.ndarray, fractions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Split index of each patient: in ``order``, the split furthest below its share of the images so far."""
    dealt, total = np.zeros(len(SPLITS)), 0.0
    group_split = np.empty(len(sizes), dtype=int)
    for g in order:
        total += sizes[g]
        deficit = fractions * total - dealt
        best = np.flatnonzero(deficit >= deficit.max() - 1e-9)
        split = int(best[0]) if len(best) == 1 else int(rng.choice(best))
        group_split[g] = split
        dealt[split] += sizes[g]
    return group_split


def _repair_class_counts(group_split: np.ndarray, group_counts: np.ndarray, fractions: np.ndarray,
                         order: np.ndarray) -> None:
    """Swap two patients of one size bucket between splits, or move a single-image patient (in place), while
    that brings the splits' per-class image counts and sizes closer to their targets. Each step takes the best
    swap or move, of the patients that come first in ``order``, so the result is deterministic.
    """
    totals = group_counts.sum(0)
    class_target = fractions[:, None] * totals[None, :]
    class_scale = np.maximum(totals, 1.0)
    image_target, image_scale = fractions * totals.sum(), max(totals.sum(), 1.0)
    buckets = _size_bucket(group_counts.sum(1))
    rank = np.empty(len(order), dtype=int)
    rank[order] = np.arange(len(order))
    counts = np.zeros((len(SPLITS), group_counts.shape[1]))
    np.add.at(counts, group_split, group_counts)

    def cost(split_counts: np.ndarray, split: int) -> np.ndarray:
        """Cost of one split's per-class counts (any leading shape): squared misses relative to the class
        totals (so a minority image weighs more), plus the size's miss relative to all images."""
        classes = (((split_counts - class_target[split]) / class_scale) ** 2).sum(-1)
        return classes + ((split_counts.sum(-1) - image_target[split]) / image_scale) ** 2

    def gain(a: int, b: int, delta: np.ndarray) -> np.ndarray:
        """Cost saved when split ``a`` gains ``delta`` (per class, any leading shape) and split ``b`` loses it."""
        return cost(counts[a], a) + cost(counts[b], b) - cost(counts[a] + delta, a) - cost(counts[b] - delta, b)

    for _ in range(len(order)):
        best: tuple[float, int, int, int, int] | None = None  # gain, split a, split b, patient of a, of b or -1
        for bucket in range(SIZE_BUCKETS):
            members = [np.flatnonzero((group_split == s) & (buckets == bucket)) for s in range(len(SPLITS))]
            # patients with equal class counts are interchangeable: search over the distinct rows only
            rows = [np.unique(group_counts[m], axis=0) for m in members]
            for a in range(len(SPLITS)):
                for b in range(len(SPLITS)):
                    if a == b or not len(rows[a]) or (a > b and bucket):
                        continue
                    if a < b and len(rows[b]):  # swap: a gives row i and takes row j of b
                        swap = gain(a, b, rows[b][None, :, :] - rows[a][:, None, :])
                        i, j = np.unravel_index(int(np.argmax(swap)), swap.shape)
                        if swap[i, j] > 1e-12 and (best is None or swap[i, j] > best[0] + 1e-12):
                            best = (float(swap[i, j]), a, b,
                                    _first_with_row(members[a], group_counts, rows[a][i], rank),
                                    _first_with_row(members[b], group_counts, rows[b][j], rank))
                    if bucket == 0 and fractions[b] > 0:  # move a single-image patient from a to b
                        move = gain(b, a, rows[a])
                        k = int(np.argmax(move))
                        if move[k] > 1e-12 and (best is None or move[k] > best[0] + 1e-12):
                            best = (float(move[k]), a, b,
                                    _first_with_row(members[a], group_counts, rows[a][k], rank), -1)
        if best is None:
            return
        _, a, b, g, h = best
        group_split[g] = b
        counts[a] -= group_counts[g]
        counts[b] += group_counts[g]
        if h >= 0:
            group_split[h] = a
            counts[b] -= group_counts[h]
            counts[a] += group_counts[h]


def _first_with_row(members: np.ndarray, group_counts: np.ndarray, row: np.ndarray, rank: np.ndarray) -> int:
    """The patient of ``members`` with class counts ``row`` that comes first in the seeded order."""
    same = members[(group_counts[members] == row).all(1)]
    return int(same[np.argmin(rank[same])])


def _warn_missing_classes(counts: np.ndarray, fractions: np.ndarray) -> None:
    for s, name in enumerate(SPLITS):
        missing = np.flatnonzero((counts[s] == 0) & (counts.sum(0) > 0))
        if fractions[s] > 0 and len(missing):
            logger.warning("split %r has no item of class index %s: too few patients", name, missing.tolist())


def find_patient_leaks(datalist: dict) -> dict[str, list[str]]:
    """Map each patient id found in more than one split to the splits that hold it."""
    seen: dict[str, set[str]] = {}
    for split in SPLITS:
        for item in datalist.get(split, []):
            pid = item.get("patient_id")
            if pid is not None:
                seen.setdefault(str(pid), set()).add(split)
    return {pid: sorted(s, key=SPLITS.index) for pid, s in seen.items() if len(s) > 1}


def split_summary(datalist: dict) -> dict[str, dict]:
    """Per split: how many images and patients it holds, and of which classes.

    Returns ``{split: {"images", "patients", "images_per_patient" (mean), "multi_image_patients",
    "images_of_multi_image_patients", "classes": {name: images}}}`` for every split of ``SPLITS``.
    Patients are counted by ``patient_id``; an item without one counts as its own patient. Class names
    come from the datalist's ``classes`` (a label outside them is named by its index).
    """
    classes = list(datalist.get("classes") or [])
    summary = {}
    for split in SPLITS:
        items = datalist.get(split) or []
        per_patient: dict[object, int] = {}
        class_images = dict.fromkeys(classes, 0)
        for i, item in enumerate(items):
            pid = item.get("patient_id")
            key = ("patient", str(pid)) if pid not in (None, "") else ("item", i)
            per_patient[key] = per_patient.get(key, 0) + 1
            label = item.get("label")
            name = classes[label] if isinstance(label, int) and 0 <= label < len(classes) else str(label)
            class_images[name] = class_images.get(name, 0) + 1
        multi = [n for n in per_patient.values() if n > 1]
        summary[split] = {
            "images": len(items),
            "patients": len(per_patient),
            "images_per_patient": len(items) / len(per_patient) if per_patient else 0.0,
            "multi_image_patients": len(multi),
            "images_of_multi_image_patients": sum(multi),
            "classes": class_images,
        }
    return summary


def summary_lines(summary: dict[str, dict]) -> list[str]:
    """One line per split of a :func:`split_summary`, split names right-aligned, e.g.
    ``      test: 127 images, 91 patients (1.40 images/patient), benign 112 / malignant 15``."""
    width, lines = max((len(split) for split in summary), default=0), []
    for split, s in summary.items():
        classes = " / ".join(f"{name} {n}" for name, n in s["classes"].items())
        lines.append(f"{split:>{width}}: {s['images']} images, {s['patients']} patients "
                     f"({s['images_per_patient']:.2f} images/patient), {classes}")
    return lines
