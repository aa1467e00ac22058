"""read_image: shapes, orientation and values per format, and one clear InputError per bad file."""

from __future__ import annotations

import importlib.resources
import shutil

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_rescale, get_decoder

from medsynth.data import readers
from medsynth.data.readers import channel_mismatches, check_channels, image_kind, read_image
from medsynth.errors import InputError

ANATOMICAL = importlib.resources.files("nibabel") / "tests/data/anatomical.nii"  # 33 x 41 x 25 int16
RNG = np.random.default_rng(0)
GRAY = RNG.integers(0, 256, (8, 12), dtype=np.uint8)  # 8 rows, 12 columns: transposes show
RGB = RNG.integers(0, 256, (8, 12, 3), dtype=np.uint8)


def save_png(path, pixels, mode=None):
    Image.fromarray(pixels, mode).save(path)
    return path


def bad(path, *fragments, **kwargs) -> InputError:
    """Assert read_image raises an InputError naming ``path`` and containing every fragment."""
    with pytest.raises(InputError) as info:
        read_image(path, **kwargs)
    message = str(info.value)
    assert path.name in message and info.value.path == str(path)
    for fragment in fragments:
        assert fragment in message
    return info.value


def test_gray_png_is_rows_first(tmp_path):
    image, meta = read_image(save_png(tmp_path / "g.png", GRAY))
    assert image.shape == (1, 8, 12) and image.dtype == np.float32
    np.testing.assert_array_equal(image[0], GRAY)
    assert meta == {"spatial_shape": (8, 12), "channels": 1, "dtype": "uint8", "reader": "PILReader"}


def test_rgb_png_is_channel_first(tmp_path):
    image, meta = read_image(save_png(tmp_path / "c.png", RGB))
    np.testing.assert_array_equal(image, RGB.transpose(2, 0, 1))
    assert meta["channels"] == 3


def test_rgba_png_drops_alpha(tmp_path):
    rgba = np.concatenate([RGB, np.full((8, 12, 1), 255, np.uint8)], axis=-1)
    image, meta = read_image(save_png(tmp_path / "a.png", rgba))
    np.testing.assert_array_equal(image, RGB.transpose(2, 0, 1))
    assert meta["note"] == "alpha channel dropped"


def test_palette_png_is_expanded_not_read_as_indices(tmp_path):
    gray = Image.fromarray(GRAY, "P")
    gray.putpalette([v for i in range(256) for v in (255 - i,) * 3])  # gray palette, inverted: 1 channel
    gray.save(tmp_path / "pg.png")
    image, meta = read_image(tmp_path / "pg.png")
    np.testing.assert_array_equal(image, 255 - GRAY[None].astype(np.float32))
    assert meta["note"] == "palette expanded"
    colour = Image.fromarray(np.zeros((8, 12), np.uint8), "P")
    colour.putpalette([200, 10, 30] + [0, 0, 0] * 255)
    colour.save(tmp_path / "pc.png")
    image, _ = read_image(tmp_path / "pc.png")
    assert image.shape == (3, 8, 12)
    np.testing.assert_array_equal(image[:, 3, 5], [200, 10, 30])


def test_16_bit_png_keeps_its_values(tmp_path):
    pixels = (np.arange(96, dtype=np.uint16) * 600).reshape(8, 12)  # up to 57000, beyond 8 bits
    image, meta = read_image(save_png(tmp_path / "w.png", pixels))
    np.testing.assert_array_equal(image[0], pixels)
    assert meta["dtype"] == "uint16"


@pytest.mark.parametrize("name", ["j.jpg", "b.bmp", "t.tif", "upper.PNG"])
def test_other_pil_formats(tmp_path, name):
    image, meta = read_image(save_png(tmp_path / name, GRAY))
    assert image.shape == (1, 8, 12) and meta["reader"] == "PILReader"
    if not name.endswith(".jpg"):  # JPEG is lossy
        np.testing.assert_array_equal(image[0], GRAY)


@pytest.mark.parametrize("shape", [(12, 8), (12, 8, 1)])
def test_2d_nifti_is_transposed_to_rows_first(tmp_path, shape):
    data = RNG.integers(-1000, 1000, shape).astype(np.int16)
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "s.nii.gz")
    image, meta = read_image(tmp_path / "s.nii.gz")
    np.testing.assert_array_equal(image[0], data.reshape(12, 8).T)  # NIfTI i runs along a row
    assert meta == {"spatial_shape": (8, 12), "channels": 1, "dtype": "int16", "reader": "NibabelReader"}


def test_real_nifti_volume_is_refused_as_3d_and_read_as_3d_on_request():
    path = ANATOMICAL  # read in place; nothing is written
    with pytest.raises(InputError, match=r"is 3D \(33×41×25, 25 slices\); a single 2D image is expected"):
        read_image(path)
    volume, meta = read_image(path, expect_spatial_dims=3)
    expected = np.asanyarray(nib.load(path).dataobj).transpose(2, 1, 0)
    np.testing.assert_array_equal(volume[0], expected)
    assert meta["spatial_shape"] == (25, 41, 33)


def test_synthetic_dicom_values_tags_and_rescale(tmp_path, dicom_writer):
    pixels = np.arange(96, dtype=np.uint16).reshape(8, 12)
    path = dicom_writer(tmp_path / "x.dcm", pixels, patient_id="P9", modality="CR", rescale=(2.0, -100.0))
    image, meta = read_image(path)
    np.testing.assert_array_equal(image[0], pixels * 2.0 - 100.0)
    assert meta == {"spatial_shape": (8, 12), "channels": 1, "dtype": "uint16", "reader": "PydicomReader",
                    "photometric": "MONOCHROME2", "patient_id": "P9", "modality": "CR"}


def test_dicom_without_suffix_is_recognised_by_its_marker(tmp_path, dicom_writer):
    path = dicom_writer(tmp_path / "IM0001", GRAY, patient_id="P2")
    assert image_kind(path) == "dicom"
    image, meta = read_image(path)
    np.testing.assert_array_equal(image[0], GRAY)
    assert meta["patient_id"] == "P2"


def test_rgb_dicom(tmp_path, dicom_writer):
    image, meta = read_image(dicom_writer(tmp_path / "c.dcm", RGB, photometric="RGB"))
    np.testing.assert_array_equal(image, RGB.transpose(2, 0, 1))
    assert meta["photometric"] == "RGB" and meta["channels"] == 3


@pytest.mark.parametrize(("name", "shape", "modality", "patient"), [
    ("CT_small.dcm", (1, 128, 128), "CT", "1CT1"),
    ("MR_small.dcm", (1, 64, 64), "MR", "4MR1"),
])
def test_real_dicom_files(name, shape, modality, patient):
    path = get_testdata_file(name)
    image, meta = read_image(path)
    ds = pydicom.dcmread(path)
    assert image.shape == shape and (meta["modality"], meta["patient_id"]) == (modality, patient)
    np.testing.assert_allclose(image[0], apply_rescale(ds.pixel_array, ds))  # CT in HU, MR as stored


def test_itk_fallback_matches_pydicom(monkeypatch):
    path = get_testdata_file("MR_small.dcm")
    expected, _ = read_image(path)

    class NoDecoder:
        is_available = False

    monkeypatch.setattr(readers, "get_decoder", lambda syntax: NoDecoder())
    image, meta = read_image(path)
    assert meta["reader"] == "ITKReader"
    np.testing.assert_array_equal(image, expected)


def test_compressed_dicom_pydicom_cannot_decode_goes_to_itk():
    # the same MR slice, JPEG-LS lossless: pydicom needs pylibjpeg/pyjpegls for it, ITK's GDCM does not
    path = get_testdata_file("MR_small_jpeg_ls_lossless.dcm")
    syntax = pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
    image, meta = read_image(path)
    assert meta["reader"] == ("PydicomReader" if get_decoder(syntax).is_available else "ITKReader")
    np.testing.assert_array_equal(image, read_image(get_testdata_file("MR_small.dcm"))[0])


def test_multi_frame_dicom_is_refused_or_read_as_volume(tmp_path, dicom_writer):
    frames = RNG.integers(0, 256, (3, 8, 12), dtype=np.uint8)
    path = dicom_writer(tmp_path / "m.dcm", frames)
    bad(path, "multi-frame DICOM with 3 frames", "a single 2D image is expected")
    volume, _ = read_image(path, expect_spatial_dims=3)
    np.testing.assert_array_equal(volume[0], frames)


def test_2d_image_where_3d_is_expected(tmp_path, dicom_writer):
    bad(save_png(tmp_path / "g.png", GRAY), "a 3D volume", expect_spatial_dims=3)
    bad(dicom_writer(tmp_path / "s.dcm", GRAY), "is a single 2D image; a 3D volume is expected",
        expect_spatial_dims=3)


def test_missing_folder_and_empty_files(tmp_path):
    bad(tmp_path / "gone.png", "file not found")
    (tmp_path / "sub.png").mkdir()
    bad(tmp_path / "sub.png", "is a folder")
    (tmp_path / "empty.png").touch()
    bad(tmp_path / "empty.png", "file is empty (0 bytes)")


@pytest.mark.parametrize(("name", "reason"), [
    ("notes.txt", "unsupported file type '.txt'"),
    ("labels.csv", "unsupported file type '.csv'"),
    ("README", "no file suffix and no DICOM 'DICM' marker"),
])
def test_non_images_are_refused(tmp_path, name, reason):
    (tmp_path / name).write_text("a,b\n1,2\n")
    bad(tmp_path / name, "not an image", reason)


def test_truncated_png(tmp_path):
    data = save_png(tmp_path / "full.png", RGB).read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    bad(tmp_path / "cut.png", "corrupt or unreadable image (OSError: image file is truncated")


@pytest.mark.parametrize(("name", "reason"), [
    ("noise.png", "corrupt or unreadable image (UnidentifiedImageError"),
    ("noise.jpg", "corrupt or unreadable image (UnidentifiedImageError"),
    ("noise.dcm", "corrupt or unreadable DICOM file (InvalidDicomError"),
    ("noise.nii", "corrupt or unreadable NIfTI file"),
    ("noise.nii.gz", "corrupt or unreadable NIfTI file"),
])
def test_garbage_bytes(tmp_path, name, reason):
    (tmp_path / name).write_bytes(RNG.integers(0, 256, 600, dtype=np.uint8).tobytes())
    bad(tmp_path / name, reason)


def test_truncated_dicom_pixel_data(tmp_path, dicom_writer):
    pixels = RNG.integers(0, 60000, (32, 32)).astype(np.uint16)
    data = dicom_writer(tmp_path / "full.dcm", pixels).read_bytes()
    (tmp_path / "cut.dcm").write_bytes(data[:-1000])
    bad(tmp_path / "cut.dcm", "corrupt or unreadable DICOM pixel data")


def test_dicom_without_pixel_data(tmp_path, dicom_writer):
    bad(dicom_writer(tmp_path / "sr.dcm", None), "DICOM file has no pixel data", "it is not an image")
    plan = shutil.copy(get_testdata_file("rtplan.dcm"), tmp_path / "plan.dcm")  # a copy, never the original
    bad(plan, "no pixel data (RT Plan Storage)")


def test_nifti_3d_and_4d(tmp_path):
    nib.save(nib.Nifti1Image(np.zeros((6, 5, 4), np.float32), np.eye(4)), tmp_path / "v.nii")
    bad(tmp_path / "v.nii", "is 3D (6×5×4, 4 slices)")
    nib.save(nib.Nifti1Image(np.zeros((6, 5, 1, 2), np.float32), np.eye(4)), tmp_path / "t.nii")
    bad(tmp_path / "t.nii", "is 4D (6×5×1×2, 2 volumes)")


def test_multi_page_tiff(tmp_path):
    pages = [Image.fromarray(GRAY), Image.fromarray(255 - GRAY)]
    pages[0].save(tmp_path / "stack.tif", save_all=True, append_images=pages[1:])
    bad(tmp_path / "stack.tif", "2 frames", "a single 2D image is expected")


def test_mixed_channel_counts_name_the_odd_file_and_both_counts(tmp_path):
    infos = [(tmp_path / f"rgb{k}.png", {"channels": 3}) for k in range(3)]
    infos.insert(1, (tmp_path / "gray.png", {"channels": 1}))
    with pytest.raises(InputError) as info:
        check_channels(infos)
    assert info.value.path == str(tmp_path / "gray.png")
    assert "has 1 channel(s) but rgb0.png and 2 other image(s) in the same set have 3" in str(info.value)
    assert [e.path for e in channel_mismatches(infos)] == [str(tmp_path / "gray.png")]
    assert check_channels(infos[:1] + infos[2:]) == 3 and check_channels([]) is None


def test_mixed_channels_with_real_files(tmp_path):
    paths = [save_png(tmp_path / "g.png", GRAY), save_png(tmp_path / "c.png", RGB)]
    infos = [(p, read_image(p)[1]) for p in paths]
    with pytest.raises(InputError, match=r"c\.png: has 3 channel\(s\) but g\.png in the same set has 1"):
        check_channels(infos)  # a tie keeps the first image's count
