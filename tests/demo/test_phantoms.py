"""Phantoms: shapes, seeding, and the one behaviour each class is defined by."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from medsynth.demo.phantoms import abnormality_shift, bone_radiograph, lesion_mask, skin_lesion
from medsynth.demo.phantoms_ct import CT_SHAPE, LIVER_CLASSES, liver_ct


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(list(key))


def test_skin_lesion_shape_and_seeding():
    image, params = skin_lesion(_rng(0), malignant=True, size=64)
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert params["malignant"] is True and 1 <= params["n_colours"] <= 5
    again, _ = skin_lesion(_rng(0), malignant=True, size=64)
    other, _ = skin_lesion(_rng(1), malignant=True, size=64)
    assert np.array_equal(image, again)
    assert not np.array_equal(image, other)


def _abcd_measures(malignant: bool, seeds: range) -> np.ndarray:
    """Per lesion: area (px), compactness perimeter²/(4π·area) of its mask, colour spread inside it."""
    rows = []
    for seed in seeds:
        image, params = skin_lesion(_rng(seed, int(malignant)), malignant, size=96, difficulty=0.0)
        mask = lesion_mask(params, 96) > 0.5
        perimeter = np.count_nonzero(mask & ~ndimage.binary_erosion(mask))
        core = ndimage.binary_erosion(mask, iterations=2)
        spread = image[core].astype(float).std(axis=0).mean()
        rows.append((mask.sum(), perimeter**2 / (4 * np.pi * mask.sum()), spread))
    return np.array(rows)


def test_malignant_lesions_are_larger_more_irregular_and_more_varied_in_colour():
    benign, malignant = _abcd_measures(False, range(8)), _abcd_measures(True, range(8))
    area, irregularity, colour = (malignant.mean(axis=0) > benign.mean(axis=0)).tolist()
    assert area and irregularity and colour
    # Border: textbook melanomas are far from round, not just a little less round than naevi.
    assert malignant[:, 1].mean() > 1.3 * benign[:, 1].mean()


def test_difficulty_one_gives_malignant_the_benign_distribution():
    def mean_atypia(malignant: bool, difficulty: float) -> float:
        atypia = [skin_lesion(_rng(s, 7), malignant, 32, difficulty)[1]["atypia"] for s in range(40)]
        return float(np.mean(atypia))

    assert mean_atypia(True, 0.0) - mean_atypia(False, 0.0) > 0.4
    assert abs(mean_atypia(True, 1.0) - mean_atypia(False, 1.0)) < 0.1


@pytest.mark.parametrize("difficulty", [0.0, 0.2, 0.5, 0.8, 1.0])
def test_abnormality_shift_has_mean_difficulty(difficulty):
    shifts = [abnormality_shift(_rng(s), difficulty) for s in range(2000)]
    assert all(0.0 <= t <= 1.0 for t in shifts)
    assert np.mean(shifts) == pytest.approx(difficulty, abs=0.03)


def test_bone_radiograph_shape_and_bone_brighter_than_air():
    image, params = bone_radiograph(_rng(3), fracture=False, size=64)
    assert image.shape == (64, 64) and image.dtype == np.float32
    assert 0.0 <= image.min() and image.max() <= 1.0
    cy, cx = (int(round(c)) for c in params["centre_px"])
    assert image[cy, cx] > image[0, 0] + 0.3  # shaft centre (bone + soft tissue) against a corner (air)


def test_fracture_leaves_a_lucent_gap_on_the_fracture_line():
    dips = []
    for seed in range(6):
        intact, params = bone_radiograph(_rng(seed, 5), fracture=False, difficulty=0.0)
        broken, frac = bone_radiograph(_rng(seed, 5), fracture=True, difficulty=0.0)
        assert np.array_equal(intact.shape, broken.shape) and "gap_px" in frac and "gap_px" not in params
        # the shaft point where the fracture plane crosses the bone axis (v = fracture_v_px, u = 0)
        v0, angle = frac["fracture_v_px"], frac["angle"]
        y, x = frac["centre_px"][0] + v0 * np.cos(angle), frac["centre_px"][1] + v0 * np.sin(angle)
        window = np.s_[int(round(y)) - 1 : int(round(y)) + 2, int(round(x)) - 1 : int(round(x)) + 2]
        dips.append(intact[window].mean() - broken[window].min())
    assert np.mean(dips) > 0.1


@pytest.fixture(scope="module")
def liver_volumes():
    """One volume per class at difficulty 0 (textbook) plus the lesion records."""
    return {label: liver_ct(_rng(11, i), [label], difficulty=0.0) for i, label in enumerate(LIVER_CLASSES)}


def test_liver_ct_shapes_air_and_bone(liver_volumes):
    volume, mask, lesions = liver_volumes["cyst"]
    assert volume.shape == CT_SHAPE and volume.dtype == np.int16
    assert mask.shape == CT_SHAPE and set(np.unique(mask)) == {0, 1}
    assert lesions[0]["label"] == "cyst" and lesions[0]["mask_value"] == 1
    assert np.abs(volume[:, :3, :3].astype(float) + 1000).mean() < 30  # air in the corners
    assert volume.max() > 600  # vertebral cortex


def _core_hu(volume: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """HU of the lesion voxels one voxel in from its in-plane edge (away from partial volume)."""
    core = ndimage.binary_erosion(mask > 0, structure=np.ones((1, 3, 3), bool))
    return volume[core].astype(float)


def test_liver_lesion_densities_match_their_class(liver_volumes):
    cyst = _core_hu(*liver_volumes["cyst"][:2])
    metastasis = _core_hu(*liver_volumes["metastasis"][:2])
    hemangioma = _core_hu(*liver_volumes["hemangioma"][:2])
    assert -10 < cyst.mean() < 25  # water density, 0-10 HU
    assert 20 < metastasis.mean() < 95  # hypodense centre 30-60 HU with an enhancing rim
    assert np.percentile(hemangioma, 98) > 125  # peripheral nodules at blood-pool density 150-180 HU
    assert cyst.std() < metastasis.std()  # homogeneous against heterogeneous


def test_liver_ct_places_several_separate_lesions():
    volume, mask, lesions = liver_ct(
        _rng(5), ["cyst", "metastasis", "hemangioma", "metastasis"], difficulty=0.3
    )
    assert [les["mask_value"] for les in lesions] == [1, 2, 3, 4]
    for value in range(1, 5):
        labelled, n_parts = ndimage.label(ndimage.binary_dilation(mask == value))
        assert n_parts == 1 and (mask == value).sum() > 10


def test_difficulty_makes_metastasis_and_hemangioma_mimic_each_other():
    def mimic_rate(difficulty: float, volumes: int) -> float:
        looks = [
            les["appearance"] == "hemangioma"
            for s in range(volumes)
            for les in liver_ct(_rng(s, 9), ["metastasis"] * 4, difficulty=difficulty)[2]
        ]
        return float(np.mean(looks))

    assert mimic_rate(0.0, volumes=2) == 0.0
    assert 0.3 < mimic_rate(1.0, volumes=8) < 0.7  # t = 1: half the metastases take the hemangioma look
