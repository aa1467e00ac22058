"""Read one image file (PNG/JPG/BMP/TIFF, NIfTI, DICOM) through MONAI's ``LoadImage``, or say why not.

Every bad file raises :class:`~medsynth.errors.InputError` naming the file and the reason (missing,
empty, not an image, corrupt, 3D where 2D is expected, no pixel data), so a data set is checked once,
when its datalist is built, instead of failing mid-training.

**Reader choice** is fixed by the file, never by trying readers in turn: the suffix picks ``PILReader``
(``.png .jpg .jpeg .bmp .tif .tiff``), ``NibabelReader`` (``.nii .nii.gz``) or DICOM (``.dcm .dicom``,
or any other file with the ``DICM`` marker, as tested by ``pydicom.misc.is_dicom``). DICOM goes to
``PydicomReader`` (pure Python, applies RescaleSlope/Intercept, so CT stays in HU) unless pydicom has no
decoder for the file's transfer syntax (e.g. JPEG Lossless without pylibjpeg/gdcm); then ``ITKReader``,
whose GDCM decodes it.

**Orientation.** MONAI returns spatial axes as (x, y) = (W, H): ``PILReader`` transposes PIL's arrays
(``reverse_indexing=True``), ``PydicomReader`` does the same (``swap_ij=True``), ``ITKReader`` returns
(x, y, z), and NIfTI stores i first. :func:`read_image` returns rows first, ``(C, H, W)``, as PIL,
torchvision and viewers show the picture: ``array[0]`` of a gray PNG equals
``np.asarray(PIL.Image.open(path))``, of a DICOM ``ds.pixel_array`` (after rescale), and of a 2D NIfTI
``data.T`` (i runs along a row). A bundle's default ``LoadImaged`` gives the transpose, ``(C, W, H)``.

**Channels.** Alpha is dropped (RGBA to RGB, LA to L; medical PNG exports carry an opaque alpha that is
not image content, and keeping it would split a data set into 3- and 4-channel images); palettes expand
to L when gray, else RGB; CMYK/YCbCr become RGB. The meta ``note`` says when this happened.
Pixel values are as stored (after DICOM rescale): MONOCHROME1 is *not* inverted here; ``photometric``
tells the caller.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pydicom
from monai.data import ImageReader, ITKReader, NibabelReader, PILReader, PydicomReader
from monai.transforms import LoadImage
from monai.utils import ensure_tuple
from PIL import Image
from pydicom.pixels import get_decoder

from medsynth.errors import InputError

logger = logging.getLogger(__name__)

READER_BY_SUFFIX = {
    ".png": "pil", ".jpg": "pil", ".jpeg": "pil", ".bmp": "pil", ".tif": "pil", ".tiff": "pil",
    ".nii": "nifti", ".nii.gz": "nifti", ".dcm": "dicom", ".dicom": "dicom",
}
IMAGE_SUFFIXES = tuple(READER_BY_SUFFIX)
_PIL_DTYPES = {"1": "bool", "I;16": "uint16", "I;16B": "uint16", "I;16L": "uint16", "I": "int32",
               "F": "float32"}  # every other mode PIL decodes stores 8-bit samples
_PIL_TO_RGB = ("RGBA", "RGBa", "RGBX", "CMYK", "YCbCr")
_PIXEL_TAGS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
# float32 conversion inside LoadImage copies the array before the reader's image object is freed;
# with dtype=None, ITKReader(reverse_indexing=True) tensors alias freed ITK memory (seen with MONAI 1.6).
_LOAD = LoadImage(image_only=True, dtype=np.float32)
_ITK_LOCK = threading.Lock()  # ITK's lazy module loading is not thread-safe; builders read in threads


def image_suffix(path: str | os.PathLike) -> str:
    """Lower-case suffix, with ``.nii.gz`` as one suffix."""
    name = Path(path).name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix


def image_kind(path: str | os.PathLike) -> str | None:
    """``"pil"``, ``"nifti"``, ``"dicom"``, or None for a file no reader here takes (reads <= 132 bytes)."""
    kind = READER_BY_SUFFIX.get(image_suffix(path))
    if kind is None and pydicom.misc.is_dicom(Path(path)):  # DICOM files often have no suffix (IM0001, UIDs)
        kind = "dicom"
    return kind


class SuffixReader(ImageReader):
    """A MONAI reader that hands each file to the reader of its kind (:func:`image_kind`), never trying others.

    ``LoadImage(reader=[...])`` tries the given readers in turn (the last one first) and logs ``"<Reader>: unable
    to load <file>."`` plus a blank line for every reader that fails, so a PNG in an X-ray preset went through
    ``PydicomReader`` first, once per file and epoch. Here the file decides: ``readers`` maps ``"pil"``,
    ``"nifti"`` and ``"dicom"`` (also a folder: a DICOM series) to a reader instance; a file of another kind is
    refused (:meth:`verify_suffix` False, :meth:`read` raises ValueError, and ``LoadImage`` then falls back to its
    default readers). ``read`` returns ``(reader, image object)``, so one instance is safe across threads.
    """

    def __init__(self, readers: Mapping[str, ImageReader]) -> None:
        unknown = sorted(set(readers) - set(_READERS))
        if unknown or not readers:
            raise ValueError(f"readers must map some of {', '.join(_READERS)} to a reader, got {sorted(readers)}")
        self.readers = dict(readers)

    def reader_for(self, filename: Sequence[str | os.PathLike] | str | os.PathLike) -> ImageReader | None:
        """The reader of ``filename`` (all files of a list must be of one kind), or None."""
        kinds = {_file_kind(name) for name in ensure_tuple(filename)}
        kind = kinds.pop() if len(kinds) == 1 else None
        return None if kind is None else self.readers.get(kind)

    def verify_suffix(self, filename: Sequence[str | os.PathLike] | str | os.PathLike) -> bool:
        return self.reader_for(filename) is not None

    def read(self, data: Sequence[str | os.PathLike] | str | os.PathLike, **kwargs) -> tuple[ImageReader, Any]:
        reader = self.reader_for(data)
        if reader is None:
            names = ", ".join(str(n) for n in ensure_tuple(data))
            raise ValueError(f"{names}: no reader for this file type here (readers: {', '.join(self.readers)}; "
                             f"suffixes: {', '.join(IMAGE_SUFFIXES)})")
        return reader, reader.read(data, **kwargs)

    def get_data(self, img: tuple[ImageReader, Any]) -> tuple[np.ndarray, dict]:
        reader, obj = img
        return reader.get_data(obj)


def _file_kind(path: str | os.PathLike) -> str | None:
    """:func:`image_kind`, with a folder as a DICOM series and an unreadable file as None."""
    if os.path.isdir(path):
        return "dicom"
    try:
        return image_kind(path)
    except OSError:
        return None


def read_image(path: str | os.PathLike, *, expect_spatial_dims: int = 2) -> tuple[np.ndarray, dict]:
    """Load one image as a channel-first float32 array and a small meta dict.

    Args:
        path: image file.
        expect_spatial_dims: 2 for an image, 3 for a volume (NIfTI or multi-frame DICOM only).

    Returns:
        ``(array, meta)``: ``array`` is ``(C, H, W)`` (``(C, D, H, W)`` for 3), rows first (see the
        module docstring); ``meta`` has ``spatial_shape``, ``channels``, ``dtype`` (of the stored pixels,
        before rescale), ``reader`` (MONAI reader class name), optionally ``note``, and for DICOM
        ``photometric``, ``patient_id`` (None when empty) and ``modality``.

    Raises:
        InputError: naming ``path`` and the reason (missing, empty, not an image, corrupt, wrong
            number of dimensions, no pixel data).
    """
    if expect_spatial_dims not in (2, 3):
        raise ValueError(f"expect_spatial_dims must be 2 or 3, got {expect_spatial_dims}")
    path = Path(path)
    _check_file(path)
    kind = image_kind(path)
    if kind is None:
        raise InputError(path, _unsupported_reason(path))
    array, meta = _READERS[kind](path, expect_spatial_dims)
    if expect_spatial_dims == 2:
        array = array[:, 0]  # drop the single slice/frame axis of (C, 1, H, W)
    array = np.ascontiguousarray(array, dtype=np.float32)
    return array, {"spatial_shape": tuple(array.shape[1:]), "channels": int(array.shape[0]), **meta}


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InputError(path, "file not found")
    if path.is_dir():
        raise InputError(path, "is a folder, not an image file")
    if path.stat().st_size == 0:
        raise InputError(path, "file is empty (0 bytes)")
    if not os.access(path, os.R_OK):
        raise InputError(path, "permission denied: the file cannot be read")


def _unsupported_reason(path: Path) -> str:
    suffix = image_suffix(path)
    found = f"unsupported file type {suffix!r}" if suffix else "no file suffix and no DICOM 'DICM' marker"
    return (f"not an image: {found} (supported: {', '.join(IMAGE_SUFFIXES)}; "
            "DICOM is also recognised without a suffix)")


def _describe(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:300] if text else ''}".rstrip(": ")


def _load(path: Path, reader, what: str) -> np.ndarray:
    """``LoadImage`` with one given reader (no fallback to others), any failure as an InputError."""
    try:
        return _LOAD(str(path), reader=reader).numpy()
    except Exception as e:  # any decoder failure means the file cannot be used
        raise InputError(path, f"corrupt or unreadable {what} ({_describe(e)})") from e


def _wrong_dims(path: Path, shape: tuple[int, ...], slices: int, expect: int, unit: str) -> None:
    if expect == 2 and slices > 1:
        size = "×".join(str(s) for s in shape)
        raise InputError(path, f"is 3D ({size}, {slices} {unit}); a single 2D image is expected")
    if expect == 3 and slices == 1:
        raise InputError(path, "is a single 2D image; a 3D volume is expected")


def _read_pil(path: Path, expect: int) -> tuple[np.ndarray, dict]:
    """PNG/JPG/BMP/TIFF via ``PILReader(reverse_indexing=False)``: ``(H, W[, C])`` to ``(C, 1, H, W)``."""
    try:
        with Image.open(path) as img:  # header only: mode, size and frame count
            mode, frames, size = img.mode, getattr(img, "n_frames", 1), (img.height, img.width)
    except Exception as e:
        raise InputError(path, f"corrupt or unreadable image ({_describe(e)})") from e
    if expect == 3:  # PILReader reads the first frame only; volumes come as NIfTI or DICOM
        raise InputError(path, "is a 2D image file; a 3D volume (NIfTI or multi-frame DICOM) is expected")
    _wrong_dims(path, (frames, *size), frames, expect, "frames")
    data = _load(path, PILReader(converter=_intensity_mode, reverse_indexing=False), "image")
    data = data[None] if data.ndim == 2 else data.transpose(2, 0, 1)
    meta = {"dtype": _PIL_DTYPES.get(mode, "uint8"), "reader": "PILReader"}
    note = {"RGBA": "alpha channel dropped", "LA": "alpha channel dropped", "P": "palette expanded",
            "PA": "palette expanded, alpha dropped", "CMYK": "CMYK converted to RGB"}.get(mode)
    return data[:, None], {**meta, **({"note": note} if note else {})}


def _intensity_mode(img: Image.Image) -> Image.Image:
    """Convert a PIL image to a mode whose array values are intensities (see module docstring)."""
    if img.mode in ("P", "PA"):
        palette = np.asarray(img.getpalette() or [0, 0, 0]).reshape(-1, 3)
        gray = bool((palette == palette[:, :1]).all())
        return img.convert("L" if gray else "RGB")
    if img.mode in ("LA", "La"):
        return img.convert("L")
    return img.convert("RGB") if img.mode in _PIL_TO_RGB else img


def _read_nifti(path: Path, expect: int) -> tuple[np.ndarray, dict]:
    """NIfTI via ``NibabelReader``: ``(X, Y[, Z[, 1[, C]]])`` to ``(C, Z, Y, X)``."""
    try:
        header_img = nib.load(path)  # lazy: reads the header, not the voxels
        # nib.load is typed FileBasedImage; a NIfTI file gives a SpatialImage, which has both
        shape, dtype = tuple(int(s) for s in header_img.shape), header_img.get_data_dtype()  # type: ignore[attr-defined]
    except Exception as e:
        raise InputError(path, f"corrupt or unreadable NIfTI file ({_describe(e)})") from e
    if len(shape) < 2 or min(shape) == 0:
        raise InputError(path, f"NIfTI image of shape {shape} is not an image")
    x, y, z, t = (*shape, 1, 1)[:4]
    if t > 1:
        size = "×".join(map(str, shape))
        raise InputError(path, f"is 4D ({size}, {t} volumes); a single image is expected")
    _wrong_dims(path, shape[:3], z, expect, "slices")
    channels = int(np.prod(shape[4:], dtype=int))
    data = _load(path, NibabelReader(), "NIfTI file")
    data = data.reshape(x, y, z, channels).transpose(3, 2, 1, 0)
    return data, {"dtype": np.dtype(dtype).newbyteorder("=").name, "reader": "NibabelReader"}


def _read_dicom(path: Path, expect: int) -> tuple[np.ndarray, dict]:
    """DICOM via ``PydicomReader(swap_ij=False)`` (or ``ITKReader``): to ``(S, F, Rows, Columns)``."""
    ds = _dicom_header(path)
    frames, samples = int(ds.get("NumberOfFrames") or 1), int(ds.get("SamplesPerPixel") or 1)
    expected = (samples, frames, int(ds.Rows), int(ds.Columns))
    if expect == 2 and frames > 1:
        raise InputError(path, f"is a multi-frame DICOM with {frames} frames of {ds.Rows}×{ds.Columns}; "
                               "a single 2D image is expected")
    _wrong_dims(path, expected[1:], frames, expect, "frames")  # a single frame where 3D is expected
    syntax = getattr(ds, "file_meta", {}).get("TransferSyntaxUID")
    if syntax is None or get_decoder(syntax).is_available:
        data = _load(path, PydicomReader(swap_ij=False), "DICOM pixel data")  # (F,) R, C (, S)
        data = data[..., None] if samples == 1 else data
        data = (data[None] if data.ndim == 3 else data).transpose(3, 0, 1, 2)
        reader = "PydicomReader"
    else:
        with _ITK_LOCK:
            data = _load(path, ITKReader(), "DICOM pixel data")  # x, y (, z) (, s)
        data = data[..., None] if samples == 1 else data
        data = (data[:, :, None] if data.ndim == 3 else data).transpose(3, 2, 1, 0)
        reader = "ITKReader"
    if data.shape != expected:
        raise InputError(path, f"decoded pixel data has shape {data.shape}, the header says {expected}")
    return data, {"dtype": _dicom_dtype(ds), "reader": reader, **_dicom_tags(ds)}


def _dicom_header(path: Path) -> pydicom.Dataset:
    try:
        ds = pydicom.dcmread(path, defer_size="1 KB")  # large values (pixels) stay on disk
    except Exception as e:
        raise InputError(path, f"corrupt or unreadable DICOM file ({_describe(e)})") from e
    if not any(tag in ds for tag in _PIXEL_TAGS):
        sop = ds.get("SOPClassUID")
        kind = f" ({sop.name})" if sop is not None else ""
        raise InputError(path, f"DICOM file has no pixel data{kind}; it is not an image")
    if "SegmentSequence" in ds:
        raise InputError(path, "is a DICOM segmentation (SEG), not an image")
    if "Rows" not in ds or "Columns" not in ds:
        raise InputError(path, "DICOM file has pixel data but no Rows/Columns")
    return ds


def _dicom_dtype(ds: pydicom.Dataset) -> str:
    if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
        return "float32" if "FloatPixelData" in ds else "float64"
    bits = int(ds.get("BitsAllocated") or 16)
    return f"{'int' if int(ds.get('PixelRepresentation') or 0) else 'uint'}{bits}" if bits >= 8 else "bool"


def _dicom_tags(ds: pydicom.Dataset) -> dict:
    return {
        "photometric": str(ds.get("PhotometricInterpretation", "")) or None,
        "patient_id": str(ds.get("PatientID", "")).strip() or None,
        "modality": str(ds.get("Modality", "")) or None,
    }


_READERS = {"pil": _read_pil, "nifti": _read_nifti, "dicom": _read_dicom}


def channel_mismatches(infos: Iterable[tuple[str | os.PathLike, dict]]) -> list[InputError]:
    """One InputError per image whose channel count differs from the set's.

    ``infos`` are ``(path, meta)`` pairs from :func:`read_image`. The set's count is the most common
    one (on a tie, the first image's), so ``--skip-bad`` drops the minority.
    """
    infos = list(infos)
    if not infos:
        return []
    counts = Counter(meta["channels"] for _, meta in infos)
    first = infos[0][1]["channels"]
    common = max(counts, key=lambda c: (counts[c], c == first))
    reference = Path(next(p for p, m in infos if m["channels"] == common)).name
    others = f" and {counts[common] - 1} other image(s)" if counts[common] > 1 else ""
    return [
        InputError(p, f"has {m['channels']} channel(s) but {reference}{others} in the same set "
                      f"{'have' if others else 'has'} {common}; all images of a data set need the same "
                      "channel count (convert them, or skip these with --skip-bad)")
        for p, m in infos if m["channels"] != common
    ]


def check_channels(infos: Iterable[tuple[str | os.PathLike, dict]]) -> int | None:
    """Return the channel count shared by all ``(path, meta)`` pairs (None when empty).

    Raises:
        InputError: naming the first image whose count differs, with both counts.
    """
    infos = list(infos)
    errors = channel_mismatches(infos)
    if errors:
        raise errors[0]
    return infos[0][1]["channels"] if infos else None
