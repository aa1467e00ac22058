"""The load presets pick the reader by the file: no reader is tried and fails first, so nothing is logged per file."""

from __future__ import annotations

import logging

import nibabel as nib
import numpy as np
import pytest
from monai.data import NibabelReader, PILReader, PydicomReader
from PIL import Image

from medsynth.data.transforms import load_preset
from tests.helpers import write_dicom

NOISE = ("unable to load", "PydicomReader", "NibabelReader", "PILReader", "DICM")


def noise(caplog, recwarn) -> list[str]:
    """Log records and warnings that mention a reader or a failed load."""
    said = [r.getMessage() for r in caplog.records] + [str(w.message) for w in recwarn]
    return [s for s in said if any(n in s for n in NOISE)]


@pytest.fixture
def quiet_check(caplog, recwarn):
    """Call ``check(preset, item)``: runs the preset on the item, returns it and whatever noise it made."""

    def check(preset, item):
        caplog.clear()
        recwarn.clear()
        with caplog.at_level(logging.DEBUG):
            out = preset(item)
        return out, noise(caplog, recwarn)

    return check


@pytest.mark.parametrize("bits", [8, 16])
def test_xray_png_never_goes_through_pydicom(tmp_path, quiet_check, bits):
    pixels = (np.arange(24 * 20).reshape(24, 20) * (2**bits - 1) // (24 * 20 - 1)).astype(f"uint{bits}")
    path = tmp_path / "xr.png"
    Image.fromarray(pixels).save(path)  # mode L or I;16
    preset = load_preset("xray", spatial_size=(20, 24))  # built first: MONAI warns once per LoadImage it builds
    out, said = quiet_check(preset, {"image": str(path), "label": 0})
    assert said == []
    assert out["image"].shape == (1, 20, 24) and float(out["image"].max()) == pytest.approx(1.0)  # / (2**bits - 1)


def test_dicom_still_reads_through_pydicom_and_ct_dicom_skips_nibabel(tmp_path, quiet_check):
    stored = (np.arange(16 * 16, dtype=np.uint16).reshape(16, 16) * 8) % 4096
    xr = write_dicom(tmp_path / "xr.dcm", stored, modality="CR", photometric="MONOCHROME1", bits_stored=12)
    out, said = quiet_check(load_preset("xray", spatial_size=(16, 16)), {"image": str(xr), "label": 1})
    assert not [s for s in said if "unable to load" in s]
    assert float(out["image"][0, 0, 0]) == pytest.approx(1.0)  # stored 0 under MONOCHROME1: white after inversion

    hu = np.full((16, 16), 40, dtype=np.int16)
    ct = write_dicom(tmp_path / "IM0001", hu, modality="CT", rescale=(1.0, -1024.0))  # no suffix: the DICM marker
    out, said = quiet_check(load_preset("ct", spatial_size=(16, 16), window=(-1100, 100)), {"image": str(ct)})
    assert not [s for s in said if "unable to load" in s]
    assert float(out["image"].mean()) == pytest.approx((40 - 1024 + 1100) / 1200, abs=1e-4)  # rescaled to HU

    nifti = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(np.full((16, 16), 100, dtype=np.int16), np.eye(4)), nifti)
    out, said = quiet_check(load_preset("ct", spatial_size=(16, 16), window=(0, 200)), {"image": str(nifti)})
    assert said == [] and float(out["image"].mean()) == pytest.approx(0.5)


def test_suffix_reader_dispatch(tmp_path):
    from medsynth.data.readers import SuffixReader

    png = tmp_path / "a.PNG"
    Image.fromarray(np.zeros((4, 6), dtype=np.uint8)).save(png, format="PNG")
    dicom = write_dicom(tmp_path / "noext", np.zeros((4, 6), dtype=np.uint16))
    pil, pydicom_reader = PILReader(), PydicomReader()
    reader = SuffixReader({"pil": pil, "dicom": pydicom_reader})
    assert reader.reader_for(png) is pil and reader.reader_for(str(dicom)) is pydicom_reader
    assert reader.reader_for(tmp_path) is pydicom_reader  # a folder: a DICOM series
    assert reader.verify_suffix([png, png]) and not reader.verify_suffix([png, dicom])
    assert not reader.verify_suffix(tmp_path / "x.nii.gz") and not reader.verify_suffix(tmp_path / "missing.xyz")
    array, meta = reader.get_data(reader.read(str(png)))
    assert array.shape == (6, 4)  # PILReader's (W, H)
    with pytest.raises(ValueError, match="no reader for this file type"):
        reader.read(str(tmp_path / "x.nii.gz"))
    with pytest.raises(ValueError, match="readers must map"):
        SuffixReader({"png": PILReader()})
    assert SuffixReader({"nifti": NibabelReader()}).verify_suffix("v.nii.gz")
