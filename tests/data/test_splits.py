"""Patient-grouped stratified splits: no leaks, class ratios kept, sizes near the fractions, seeded."""

from __future__ import annotations

import numpy as np
import pytest

from medsynth.data.splits import SPLITS, assign_splits, find_patient_leaks, parse_fractions

# 80 patients of 1..6 images (280 images); by patient index p: class 0 if p % 20 < 13, class 1 if < 18,
# else class 2, so the classes hold 164 / 96 / 20 images (59% / 34% / 7%).
SIZES = [(1, 2, 3, 4, 5, 6, 5, 4, 3, 2)[p % 10] for p in range(80)]
CLASSES = [0 if p % 20 < 13 else 1 if p % 20 < 18 else 2 for p in range(80)]
LABELS = [c for n, c in zip(SIZES, CLASSES, strict=True) for _ in range(n)]
GROUPS = [f"pat{p:02d}" for p, n in enumerate(SIZES) for _ in range(n)]
CLASS_TOTALS = np.array([164, 96, 20])
LARGEST_PATIENT = 6


def split_counts(splits: list[str]) -> np.ndarray:
    """(split, class) image counts."""
    counts = np.zeros((len(SPLITS), 3), dtype=int)
    for split, label in zip(splits, LABELS, strict=True):
        counts[SPLITS.index(split), label] += 1
    return counts


def test_construction_matches_its_description():
    assert len(LABELS) == 280
    np.testing.assert_array_equal(np.bincount(LABELS), CLASS_TOTALS)


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_no_patient_in_two_splits(seed):
    splits = assign_splits(LABELS, GROUPS, seed=seed)
    split_of: dict[str, set[str]] = {}
    for group, split in zip(GROUPS, splits, strict=True):
        split_of.setdefault(group, set()).add(split)
    assert all(len(s) == 1 for s in split_of.values())
    datalist = {name: [{"patient_id": g} for g, s in zip(GROUPS, splits, strict=True) if s == name]
                for name in SPLITS}
    assert find_patient_leaks(datalist) == {}


def test_find_patient_leaks_names_the_patient_and_splits():
    datalist = {"training": [{"patient_id": "a"}, {"patient_id": "b"}], "test": [{"patient_id": "a"}]}
    assert find_patient_leaks(datalist) == {"a": ["training", "test"]}


@pytest.mark.parametrize("fractions", [(0.7, 0.15, 0.15), (0.8, 0.1, 0.1)])
def test_each_split_keeps_the_class_ratio_and_its_size(fractions):
    counts = split_counts(assign_splits(LABELS, GROUPS, fractions, seed=0))
    targets = np.asarray(fractions)[:, None] * CLASS_TOTALS[None, :]
    # whole patients move, so a count can miss its target by at most about one patient
    assert np.abs(counts - targets).max() <= LARGEST_PATIENT
    sizes = counts.sum(1) / len(LABELS)
    np.testing.assert_allclose(sizes, fractions, atol=0.03)
    overall = CLASS_TOTALS / CLASS_TOTALS.sum()
    np.testing.assert_allclose(counts / counts.sum(1, keepdims=True), np.tile(overall, (3, 1)), atol=0.08)


def test_string_fractions_are_respected():
    counts = split_counts(assign_splits(LABELS, GROUPS, "0.8,0.1,0.1", seed=3))
    np.testing.assert_allclose(counts.sum(1) / len(LABELS), [0.8, 0.1, 0.1], atol=0.03)


def test_same_seed_same_assignment_other_seed_differs():
    first = assign_splits(LABELS, GROUPS, seed=5)
    assert assign_splits(LABELS, GROUPS, seed=5) == first
    assert assign_splits(LABELS, GROUPS, seed=6) != first


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="3 labels but 2 patient ids"):
        assign_splits([0, 1, 0], ["a", "b"])


def test_parse_fractions_accepts_text_and_sequences():
    assert parse_fractions("0.8, 0.1, 0.1") == (0.8, 0.1, 0.1)
    assert parse_fractions([0.7, 0.15, 0.15]) == (0.7, 0.15, 0.15)


@pytest.mark.parametrize("bad", ["0.5,0.5", "0.7,0.2,0.2", "-0.1,0.6,0.5", "0.7,0.15,0.15,0", "a,b,c", ""])
def test_parse_fractions_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        parse_fractions(bad)
