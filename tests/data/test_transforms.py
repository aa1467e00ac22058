"""Modality load presets, MONOCHROME1 handling and the TorchIO classic augmentation."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import ITKReader, PydicomReader
from monai.transforms import Compose, LoadImaged
from PIL import Image

from medsynth.data.transforms import (
    InvertMonochrome1d,
    ResizeAntialiased,
    ScaleStoredBitsd,
    classic_augmentation,
    load_preset,
)
from tests.helpers import write_dicom


def _write_cr(path: Path, stored: np.ndarray, photometric: str, bits_stored: int = 12) -> Path:
    """A 12-bit radiograph whose stored values are ``stored (rows, cols)`` (the shared conftest writer)."""
    return write_dicom(path, stored.astype(np.uint16), modality="CR", photometric=photometric,
                       bits_stored=bits_stored)


def test_ct_preset_applies_the_window(tmp_path):
    hu = np.full((32, 32), 50, dtype=np.int16)
    hu[:16] = -1000
    hu[:, :8] = 500
    path = tmp_path / "roi.nii.gz"
    nib.save(nib.Nifti1Image(hu, np.eye(4)), path)
    out = load_preset("ct", spatial_size=(32, 32), window=(-100, 200))({"image": str(path), "label": 2})
    image = out["image"]
    assert out["label"] == 2 and image.shape == (1, 32, 32) and image.dtype == torch.float32
    assert type(image) is torch.Tensor  # meta dropped at the end
    assert image[0, 20, 20] == pytest.approx(0.5) and image[0, 4, 20] == 0 and image[0, 20, 4] == 1
    symmetric = load_preset("ct", spatial_size=(64, 64), window=(-100, 200), range="symmetric")
    resized = symmetric({"image": str(path)})["image"]
    assert resized.shape == (1, 64, 64) and resized[0, 48, 48] == pytest.approx(0.0, abs=1e-5)


def test_xray_monochrome1_and_monochrome2_of_the_same_content_end_equal(tmp_path):
    content = np.tile(np.linspace(0, 4095, 16).round().astype(np.uint16), (12, 1))  # display values, 12 bit
    m2 = _write_cr(tmp_path / "m2.dcm", content, "MONOCHROME2")
    m1 = _write_cr(tmp_path / "m1.dcm", 4095 - content, "MONOCHROME1")
    preset = load_preset("xray", spatial_size=(16, 12))
    a, b = preset({"image": str(m2)})["image"], preset({"image": str(m1)})["image"]
    expected = torch.as_tensor(content.T / 4095.0, dtype=torch.float32)[None]  # (C, W, H), over 2**12 - 1
    torch.testing.assert_close(a, expected)
    torch.testing.assert_close(b, expected)


def test_xray_preset_scales_png_by_bit_depth(tmp_path):
    Image.fromarray(np.full((8, 8), 32768, dtype=np.uint16)).save(tmp_path / "a16.png")
    Image.fromarray(np.full((8, 8), 51, dtype=np.uint8)).save(tmp_path / "a8.png")
    preset = load_preset("xray", spatial_size=(8, 8))
    assert preset({"image": str(tmp_path / "a16.png")})["image"].mean() == pytest.approx(32768 / 65535)
    assert preset({"image": str(tmp_path / "a8.png")})["image"].mean() == pytest.approx(0.2)


@pytest.fixture(scope="module")
def leg_xray() -> Path:
    from medsynth.data.sample_data import XRAY_LEG, pydicom_file

    try:
        return pydicom_file(XRAY_LEG)
    except FileNotFoundError as e:
        pytest.skip(str(e))


def test_real_monochrome1_xray_shows_bone_brighter_than_air(leg_xray):
    # RG3: 1760 x 1760 CR of a lower leg, MONOCHROME1 (low stored value = white). Columns ~480-640 are the
    # direct exposure (air) beside the leg, stored ~950-990; the tibia shaft is at columns ~800-920.
    image = load_preset("xray", spatial_size=(220, 220))({"image": str(leg_xray)})["image"][0]  # (W, H), /8
    air, tibia = image[62:78, 25:125], image[100:115, 25:100]
    assert air.mean() < 0.15 and tibia.mean() > air.mean() + 0.4
    assert image[:20].mean() > 0.95  # the collimated border (stored 0, unexposed) is white, as on film


def test_itk_and_pydicom_routes_invert_monochrome1_once(leg_xray):
    chain = [InvertMonochrome1d("image"), ScaleStoredBitsd("image")]
    by_itk = Compose([LoadImaged("image", reader=ITKReader()), *chain])({"image": str(leg_xray)})["image"]
    by_pydicom = Compose([LoadImaged("image", reader=PydicomReader(prune_metadata=False)), *chain])(
        {"image": str(leg_xray)})["image"]
    assert by_itk.meta["0028|0004"] == by_pydicom.meta["00280004"]["Value"][0] == "MONOCHROME2"
    torch.testing.assert_close(by_itk[..., 0], by_pydicom)  # GDCM inverted on reading; not inverted again
    again = InvertMonochrome1d("image")({"image": by_pydicom})["image"]
    torch.testing.assert_close(again, by_pydicom)


def test_dermoscopy_preset_ranges(tmp_path):
    rgba = np.zeros((10, 12, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 255, 51, 0, 255
    Image.fromarray(rgba).save(tmp_path / "lesion.png")
    unit = load_preset("dermoscopy", spatial_size=(24, 20))({"image": str(tmp_path / "lesion.png")})["image"]
    assert unit.shape == (3, 24, 20)  # alpha dropped, (C, W, H)
    torch.testing.assert_close(unit.mean(dim=(1, 2)), torch.tensor([1.0, 0.2, 0.0]))
    sym = load_preset("dermoscopy", range="symmetric")({"image": str(tmp_path / "lesion.png")})["image"]
    torch.testing.assert_close(sym.mean(dim=(1, 2)), torch.tensor([1.0, -0.6, -1.0]))
    net = load_preset("dermoscopy", range="imagenet")({"image": str(tmp_path / "lesion.png")})["image"]
    assert net[0].mean() == pytest.approx((1.0 - 0.485) / 0.229, rel=1e-4)


def test_resize_keeps_a_constant_image_constant_up_to_the_border():
    x = torch.full((1, 40, 30), 0.5)
    for size in [(8, 8), (64, 48)]:
        torch.testing.assert_close(ResizeAntialiased(size)(x), torch.full((1, *size), 0.5))


def test_unknown_modality_or_range_is_refused():
    with pytest.raises(ValueError, match="no preset for modality 'mri'"):
        load_preset("mri")
    with pytest.raises(ValueError, match="range"):
        load_preset("ct", range="imagenet")


@pytest.mark.parametrize(("modality", "channels"), [("ct", 1), ("dermoscopy", 3), ("xray", 1)])
def test_classic_augmentation_keeps_shape_and_is_seeded(modality, channels):
    x = torch.rand(channels, 64, 64, generator=torch.Generator().manual_seed(0))
    state = torch.get_rng_state()
    runs = [[classic_augmentation(modality, seed=s)({"image": x, "label": 1}) for _ in range(2)]
            for s in (7, 8)]
    assert torch.equal(torch.get_rng_state(), state)  # TorchIO ran on a forked RNG
    first = runs[0][0]
    assert first["image"].shape == x.shape and first["image"].dtype == x.dtype and first["label"] == 1
    assert torch.equal(first["image"], runs[0][1]["image"])  # same seed, same output
    assert not torch.equal(first["image"], runs[1][0]["image"])  # another seed, another output
    aug = classic_augmentation(modality, seed=7)
    outputs = [aug({"image": x})["image"] for _ in range(3)]
    assert not torch.equal(outputs[0], outputs[1]) or not torch.equal(outputs[1], outputs[2])  # fresh draws


@pytest.mark.parametrize("modality", ["ct", "dermoscopy", "xray"])
def test_classic_augmentation_keeps_the_content(modality):
    u = torch.linspace(0, 4 * torch.pi, 64)
    channels = 3 if modality == "dermoscopy" else 1
    x = (0.5 + 0.3 * torch.sin(u)[:, None] * torch.cos(u)[None, :]).expand(channels, 64, 64)
    aug = classic_augmentation(modality, seed=0)
    for _ in range(12):  # e.g. a shift out of a 2D image's only slice would blank it
        y = aug({"image": x})["image"]
        assert y.std() > 0.5 * x.std() and abs(y.mean() - x.mean()) < 0.25
