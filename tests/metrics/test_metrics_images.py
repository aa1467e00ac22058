"""The metrics' image pipeline: [0, 1] float scaling by stored type, channels, the one resize filter."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from medsynth.errors import InputError
from medsynth.metrics.images import load_unit_image, match_channels, prepare_batch, quantize_8bit, resize
from tests.helpers import write_dicom


def _write_cr(path: Path, stored: np.ndarray, photometric: str, bits_stored: int = 12) -> Path:
    """A 12-bit radiograph whose stored values are ``stored (rows, cols)`` (the shared conftest writer)."""
    return write_dicom(path, stored.astype(np.uint16), modality="CR", photometric=photometric,
                       bits_stored=bits_stored)


def test_8bit_and_16bit_png_scale_by_their_bit_depth(tmp_path):
    pixels8 = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    Image.fromarray(pixels8).save(tmp_path / "a8.png")
    Image.fromarray(np.full((8, 8), 32768, dtype=np.uint16)).save(tmp_path / "a16.png")
    np.testing.assert_allclose(load_unit_image(tmp_path / "a8.png")[0], pixels8 / 255, rtol=1e-6)
    assert load_unit_image(tmp_path / "a16.png").mean() == pytest.approx(32768 / 65535)


@pytest.mark.filterwarnings("ignore:PydicomReader. ImageOrientationPatient")  # no geometry needed here
def test_12bit_dicom_scales_by_bits_stored_and_monochrome1_is_inverted(tmp_path):
    content = np.tile(np.linspace(0, 4095, 16).round().astype(np.uint16), (12, 1))
    m2 = load_unit_image(_write_cr(tmp_path / "m2.dcm", content, "MONOCHROME2"))
    m1 = load_unit_image(_write_cr(tmp_path / "m1.dcm", 4095 - content, "MONOCHROME1"))
    np.testing.assert_allclose(m2[0], content / 4095, rtol=1e-6)  # not / 65535: no 16x darker image
    np.testing.assert_allclose(m1, m2, atol=1e-6)


def test_ct_hu_needs_and_uses_the_window(tmp_path):
    hu = np.full((16, 16), 50, dtype=np.int16)
    hu[:8] = -1000
    hu[:, :4] = 500
    path = tmp_path / "roi.nii.gz"
    nib.save(nib.Nifti1Image(hu.T, np.eye(4)), path)  # NIfTI stores i (columns) first
    image = load_unit_image(path, window=(-100, 200))
    assert image.shape == (1, 16, 16)
    assert image[0, 12, 12] == pytest.approx(0.5) and image[0, 2, 12] == 0 and image[0, 12, 2] == 1
    with pytest.raises(InputError, match="give a window"):
        load_unit_image(path)


def test_float_images_outside_unit_range_need_a_window(tmp_path):
    path = tmp_path / "f.nii.gz"
    nib.save(nib.Nifti1Image(np.full((8, 8), 3.0, np.float32), np.eye(4)), path)
    with pytest.raises(InputError, match="not \\[0, 1\\]"):
        load_unit_image(path)
    assert load_unit_image(path, window=(0, 6)).mean() == pytest.approx(0.5)


def test_8bit_images_ignore_a_window(tmp_path):
    Image.fromarray(np.full((8, 8), 51, np.uint8)).save(tmp_path / "a.png")
    assert load_unit_image(tmp_path / "a.png", window=(-100, 200)).mean() == pytest.approx(0.2)


def test_gray_is_replicated_and_other_counts_are_refused():
    gray = torch.rand(2, 1, 4, 4)
    rgb = match_channels(gray, 3)
    assert rgb.shape == (2, 3, 4, 4) and torch.equal(rgb[:, 2], gray[:, 0])
    with pytest.raises(ValueError, match="2 channels"):
        match_channels(torch.rand(1, 2, 4, 4), 3)


def test_the_filter_is_pils_bilinear_when_downsampling():
    x = np.random.default_rng(0).random((64, 48)).astype(np.float32)
    ours = resize(torch.from_numpy(x)[None, None], (20, 17))[0, 0].numpy()
    pil = np.asarray(Image.fromarray(x, mode="F").resize((17, 20), Image.BILINEAR))
    np.testing.assert_allclose(ours, pil, atol=1e-5)


def test_upsampling_equals_pytorch_fids_in_network_resize():
    x = torch.rand(2, 3, 32, 32)
    pytorch_fid = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)  # inception.py
    torch.testing.assert_close(resize(x, (299, 299)), pytorch_fid, atol=1e-5, rtol=0)
    torch.testing.assert_close(resize(x, (299, 299), antialias=False), pytorch_fid, atol=0, rtol=0)


def test_legacy_quantizes_to_8_bits_like_a_png():
    x = torch.tensor([[[[0.0, 0.1, 0.50196, 1.0]]]])
    expected = torch.tensor([0, 26, 128, 255]) / 255.0  # round(255 x)
    torch.testing.assert_close(quantize_8bit(x)[0, 0, 0], expected)
    legacy = prepare_batch(x.expand(1, 1, 4, 4), 3, (4, 4), legacy=True)
    clean = prepare_batch(x.expand(1, 1, 4, 4), 3, (4, 4), legacy=False)
    assert legacy.shape == (1, 3, 4, 4) and not torch.equal(legacy, clean)
