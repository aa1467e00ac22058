"""Patient-grouped stratified splits: no leaks, class ratios and patient sizes kept, sizes near the fractions,
seeded; and the per-split summary."""

from __future__ import annotations

import numpy as np
import pytest

from medsynth.data.splits import (
    SPLITS,
    assign_splits,
    find_patient_leaks,
    parse_fractions,
    split_summary,
    summary_lines,
)

# 80 patients of 1..6 images (280 images); by patient index p: class 0 if p % 20 < 13, class 1 if < 18,
# else class 2, so the classes hold 164 / 96 / 20 images (59% / 34% / 7%).
SIZES = [(1, 2, 3, 4, 5, 6, 5, 4, 3, 2)[p % 10] for p in range(80)]
CLASSES = [0 if p % 20 < 13 else 1 if p % 20 < 18 else 2 for p in range(80)]
LABELS = [c for n, c in zip(SIZES, CLASSES, strict=True) for _ in range(n)]
GROUPS = [f"pat{p:02d}" for p, n in enumerate(SIZES) for _ in range(n)]
CLASS_TOTALS = np.array([164, 96, 20])
LARGEST_PATIENT = 6
DEFAULT_FRACTIONS_BY_NAME = dict(zip(SPLITS, (0.7, 0.15, 0.15), strict=True))


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


def realistic_cohort(seed: int) -> tuple[list[int], list[str]]:
    """A cohort like ISIC's: 250-450 patients, 60% with one image and the rest with 2-6; whole patients
    (about 12-15% of the images) are of the minority class 1, and a fifth of those multi-image minority
    patients also have one class-0 image."""
    rng = np.random.default_rng([seed, 2024])
    n = int(rng.integers(250, 450))
    sizes = np.where(rng.random(n) < 0.6, 1, rng.integers(2, 7, n))
    minority = np.zeros(n, dtype=bool)
    goal = rng.uniform(0.12, 0.15) * sizes.sum()
    for p in rng.permutation(n):
        if sizes[minority].sum() + sizes[p] > goal:
            break
        minority[p] = True
    labels: list[int] = []
    groups: list[str] = []
    for p in range(n):
        patient = [int(minority[p])] * int(sizes[p])
        if minority[p] and sizes[p] > 1 and rng.random() < 0.2:
            patient[0] = 0
        labels += patient
        groups += [f"p{p:03d}"] * int(sizes[p])
    return labels, groups


@pytest.mark.parametrize("seed", range(6))
def test_realistic_cohort_matches_its_description(seed):
    labels, groups = realistic_cohort(seed)
    per_patient = np.unique(groups, return_counts=True)[1]
    assert 0.10 <= np.mean(labels) <= 0.15
    assert 0.5 < np.mean(per_patient == 1) < 0.7 and per_patient.max() <= 6
    assert len({g for g, label in zip(groups, labels, strict=True) if label == 1}) >= 10


@pytest.mark.parametrize("seed", range(6))
def test_every_split_represents_the_cohort(seed):
    """Class fractions and mean images per patient alike in every split. Split algorithm version 1 (largest
    patients first, greedily) fails this on every one of these seeds: it kept the class fractions but put the
    multi-image patients in training, 2.8-3.2 images per patient there against 1.2-1.4 in validation and test."""
    labels, groups = realistic_cohort(seed)
    splits = assign_splits(labels, groups, seed=seed)
    label_array, group_array, split_array = np.asarray(labels), np.asarray(groups), np.asarray(splits)
    per_patient = {}
    for name in SPLITS:
        chosen = split_array == name
        assert abs(chosen.mean() - DEFAULT_FRACTIONS_BY_NAME[name]) < 0.01
        assert abs(label_array[chosen].mean() - label_array.mean()) < 0.02  # class fraction
        per_patient[name] = chosen.sum() / len(set(group_array[chosen]))
    for name in ("validation", "test"):
        assert abs(per_patient[name] / per_patient["training"] - 1) < 0.15, per_patient


def mixed_cohort(seed: int) -> tuple[list[int], list[str]]:
    """60 patients of 1-6 images of random classes among 3: most patients hold several classes (CT lesions)."""
    rng = np.random.default_rng([seed, 3])
    labels: list[int] = []
    groups: list[str] = []
    for p in range(60):
        size = int(rng.integers(1, 7))
        labels += rng.integers(0, 3, size).tolist()
        groups += [f"p{p:02d}"] * size
    return labels, groups


@pytest.mark.parametrize("seed", range(5))
def test_patients_of_several_classes_still_give_class_counts_on_target(seed):
    # dealing alone misses a class count by up to about 7 images here; the final swap/move pass brings it within 2
    labels, groups = mixed_cohort(seed)
    splits = assign_splits(labels, groups, seed=seed)
    counts = np.zeros((3, 3))
    for split, label in zip(splits, labels, strict=True):
        counts[SPLITS.index(split), label] += 1
    targets = np.outer([0.7, 0.15, 0.15], np.bincount(labels))
    assert np.abs(counts - targets).max() < 2


def test_empty_input_gives_no_splits():
    assert assign_splits([], []) == []


def test_zero_fraction_split_stays_empty():
    splits = assign_splits(LABELS, GROUPS, "0.8,0.2,0", seed=1)
    assert "test" not in splits and splits.count("validation") > 0


def test_split_summary_counts_images_patients_and_classes():
    datalist = {"classes": ["benign", "malignant"],
                "training": [{"label": 0, "patient_id": "a"}, {"label": 0, "patient_id": "a"},
                             {"label": 1, "patient_id": "a"}, {"label": 0, "patient_id": "b"},
                             {"label": 1, "patient_id": "c"}, {"label": 1, "patient_id": "c"}],
                "validation": [{"label": 0, "patient_id": "d"}, {"label": 0}, {"label": 1, "patient_id": None}],
                "test": []}
    summary = split_summary(datalist)
    assert summary["training"] == {"images": 6, "patients": 3, "images_per_patient": 2.0, "multi_image_patients": 2,
                                   "images_of_multi_image_patients": 5, "classes": {"benign": 3, "malignant": 3}}
    # items without a patient id are patients of their own
    assert summary["validation"] == {"images": 3, "patients": 3, "images_per_patient": 1.0,
                                     "multi_image_patients": 0, "images_of_multi_image_patients": 0,
                                     "classes": {"benign": 2, "malignant": 1}}
    assert summary["test"] == {"images": 0, "patients": 0, "images_per_patient": 0.0, "multi_image_patients": 0,
                               "images_of_multi_image_patients": 0, "classes": {"benign": 0, "malignant": 0}}


def test_summary_lines_are_one_compact_line_per_split():
    test = {"images": 127, "patients": 91, "images_per_patient": 127 / 91, "multi_image_patients": 36,
            "images_of_multi_image_patients": 72, "classes": {"benign": 112, "malignant": 15}}
    lines = summary_lines({"validation": {**test, "images": 5}, "test": test})
    assert lines[1] == "      test: 127 images, 91 patients (1.40 images/patient), benign 112 / malignant 15"
    assert lines[0].startswith("validation: 5 images")
