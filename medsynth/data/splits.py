"""Seeded, stratified, patient-grouped train/validation/test splits.

No patient may land in two splits (images of one patient are correlated, so a leak inflates every
test figure), and each split should keep the class ratio of the whole set. scikit-learn's
``StratifiedGroupKFold`` only makes equal folds, so this module assigns whole patients greedily:
patients are shuffled with the seed, the largest go first, and each goes to the split whose per-class
counts it brings closest to the target fractions.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

SPLITS = ("training", "validation", "test")
DEFAULT_FRACTIONS = (0.7, 0.15, 0.15)

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

    Args:
        labels: class index of each item.
        groups: patient id of each item; all items of one patient share a split.
        fractions: target fraction of items per split, in ``SPLITS`` order.
        seed: the same seed gives the same assignment.
    """
    if len(labels) != len(groups):
        raise ValueError(f"{len(labels)} labels but {len(groups)} patient ids")
    fraction_array = np.asarray(parse_fractions(fractions))
    label_array = np.asarray(labels, dtype=int)
    names, group_index = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    n_classes = int(label_array.max()) + 1 if len(label_array) else 0
    group_counts = np.zeros((len(names), n_classes))
    np.add.at(group_counts, (group_index, label_array), 1)

    order = np.random.default_rng(seed).permutation(len(names))
    order = order[np.argsort(-group_counts[order].sum(1), kind="stable")]  # large patients first
    totals = group_counts.sum(0)
    target = fraction_array[:, None] * totals[None, :]
    scale = np.maximum(totals, 1.0)[None, :]
    counts = np.zeros((len(SPLITS), n_classes))
    group_split = np.empty(len(names), dtype=int)
    for g in order:
        costs = []
        for s in range(len(SPLITS)):
            trial = counts.copy()
            trial[s] += group_counts[g]
            costs.append((((trial - target) / scale) ** 2).sum())
        best = int(np.argmin(costs))
        group_split[g] = best
        counts[best] += group_counts[g]
    _warn_missing_classes(counts, fraction_array)
    return [SPLITS[group_split[i]] for i in group_index]


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
