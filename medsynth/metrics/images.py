"""The one image pipeline of every metric, for real and synthetic images alike.

1. **Read** with :func:`medsynth.data.readers.read_image` (PNG/JPG/TIFF, NIfTI, DICOM): float32 ``(C, H, W)``.
2. **Scale to [0, 1] in float**, by what the file stores (:func:`to_unit_range`):

   ===============================  =========================================================
   stored pixels                    scaling
   ===============================  =========================================================
   bool                             as is (0 or 1)
   uint8                            ``/ 255`` (a window is never applied to 8-bit images)
   CT (NIfTI int16/float, DICOM     ``(x - low) / (high - low)``, clipped, with the HU window
   Modality CT), any non-uint8      (``--window``, else the real datalist's ``window``);
   image when a window is given     required for signed and CT images
   other unsigned (uint16 …)        ``/ (2^BitsStored - 1)`` for DICOM, ``/ dtype max`` otherwise
   float without a window           as is, if already within [0, 1]
   ===============================  =========================================================

   then ``1 - x`` for DICOM ``MONOCHROME1`` (unless GDCM inverted it on reading), then clip to [0, 1].
   No 8-bit quantization.
3. **Channels**: 1-channel images are replicated to 3 for extractors that take RGB.
4. **Resize** (:func:`resize`) to the extractor's input size with one filter: bilinear interpolation with
   antialiasing (``torch.nn.functional.interpolate(mode="bilinear", antialias=True,
   align_corners=False)``) in float32. Upsampling (a 64×64 ROI to Inception's 299×299) equals
   pytorch-fid's own in-network bilinear resize (to float rounding); downsampling is antialiased, where
   pytorch-fid's would alias.

``legacy=True`` reproduces pytorch-fid's PNG pipeline instead: after step 2 every pixel is quantized to
8 bits (``round(255 x) / 255``, what writing an 8-bit PNG and ``PIL.Image.convert("RGB")`` +
``ToTensor`` give) and the resize is pytorch-fid's, without antialiasing. On 8-bit PNG folders the two
modes differ only when images are downsampled.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from medsynth.errors import InputError

FILTER = "bilinear, antialias=True, align_corners=False (torch.nn.functional.interpolate, float32)"
LEGACY_FILTER = "8-bit quantization, then bilinear without antialiasing (pytorch-fid)"


def load_unit_image(path: str | os.PathLike, window: Sequence[float] | None = None) -> np.ndarray:
    """Read one image and scale it to [0, 1]: float32 ``(C, H, W)`` (steps 1–2 of the module docstring)."""
    from medsynth.data.readers import read_image

    array, meta = read_image(path)
    return to_unit_range(array, meta, window=window, path=path)


def to_unit_range(array: np.ndarray, meta: dict, window: Sequence[float] | None = None,
                  path: str | os.PathLike | None = None) -> np.ndarray:
    """Scale ``array (C, H, W)`` as stored (``meta`` from ``read_image``) to float32 [0, 1]."""
    dtype = np.dtype(meta.get("dtype", "float32"))
    is_ct = meta.get("modality") == "CT" or dtype.kind == "i"
    x = np.asarray(array, dtype=np.float32)
    if dtype == np.bool_:
        pass
    elif dtype == np.uint8:
        x = x / 255.0
    elif window is not None:
        low, high = float(window[0]), float(window[1])
        x = (x - low) / (high - low)
    elif is_ct:
        raise InputError(path, f"stored as {dtype} {'CT' if meta.get('modality') == 'CT' else ''} values "
                               "(e.g. HU); give a window: --window LOW,HIGH or a datalist 'window'")
    elif dtype.kind == "u":
        x = x / float(2 ** _bits_stored(path, meta, dtype) - 1)
    elif x.size and (x.min() < -1e-6 or x.max() > 1 + 1e-6):
        raise InputError(path, f"float pixels span [{x.min():g}, {x.max():g}], not [0, 1]; give a window "
                               "(--window LOW,HIGH) to scale them")
    if meta.get("photometric") == "MONOCHROME1" and meta.get("reader") != "ITKReader":
        x = 1.0 - x  # ITKReader (GDCM) has inverted MONOCHROME1 on reading already (see data/transforms.py)
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def _bits_stored(path: str | os.PathLike | None, meta: dict, dtype: np.dtype) -> int:
    """DICOM BitsStored (e.g. 12 of 16), else the dtype's bit depth."""
    if path is not None and meta.get("reader") in ("PydicomReader", "ITKReader"):
        import pydicom

        bits = pydicom.dcmread(path, stop_before_pixels=True).get("BitsStored")
        if bits:
            return int(bits)
    return 8 * dtype.itemsize


def quantize_8bit(images: torch.Tensor) -> torch.Tensor:
    """``round(255 x) / 255`` (legacy mode): what an 8-bit PNG of the [0, 1] image holds."""
    return torch.round(images * 255.0) / 255.0


def match_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """``(B, C, H, W)`` to ``(B, channels, H, W)``: 1 -> 3 by replication; other counts must already match."""
    if images.shape[1] == channels:
        return images
    if images.shape[1] == 1:
        return images.expand(-1, channels, -1, -1)
    raise ValueError(f"images have {images.shape[1]} channels; the feature extractor takes {channels}")


def resize(images: torch.Tensor, size: Sequence[int], antialias: bool = True) -> torch.Tensor:
    """Resize ``(B, C, H, W)`` to ``size = (H', W')`` with the documented bilinear filter."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    return F.interpolate(images, size=tuple(size), mode="bilinear", align_corners=False, antialias=antialias)


def prepare_batch(images: torch.Tensor, channels: int, size: Sequence[int] | None,
                  legacy: bool = False) -> torch.Tensor:
    """Steps 3–4 (and legacy quantization) for a batch ``(B, C, H, W)`` in [0, 1]: ready for an extractor."""
    images = images.float()
    if legacy:
        images = quantize_8bit(images)
    images = match_channels(images, channels)
    return images if size is None else resize(images, size, antialias=not legacy)
