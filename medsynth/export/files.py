"""One generated image ``(C, H, W)`` in ``[-1, 1]`` -> the bytes of a file that the training chain reads back.

Each format is the exact inverse of :func:`medsynth.data.training.gan_transform` for its modality, so a synthetic
image joins the real ones on the same footing (the tests read every format back through that chain):

* ``dermoscopy`` (and ``other`` with 3 channels): 8-bit RGB PNG, ``round((x + 1) * 127.5)``; the reader divides
  by 255, so an image comes back within ``1 / 127.5``.
* ``xray`` (and ``other`` with 1 channel): 16-bit grey PNG, ``round((x + 1) / 2 * 65535)``; the reader divides by
  the stored bit depth's maximum (65535), so within ``2 / 65535``.
* ``ct``: 2D NIfTI ``.nii.gz`` int16 HU, ``round(low + (x + 1) / 2 * (high - low))`` over the datalist's window;
  the reader maps the window back to ``[-1, 1]``, so within 1 HU (``2 / (high - low)``). Laid out as the real
  lesion ROIs of :mod:`medsynth.data.roi`: the array is ``(X, Y) = (W, H)`` (MONAI's readers yield ``(C, W, H)``
  and ``gan_transform`` transposes back to rows-first), in LPS voxel order (``i`` along the image columns towards
  patient left, ``j`` down the rows towards posterior) with the RAS affine ``diag(-sx, -sy, 1, 1)`` in mm
  (``spacing`` ``(sx, sy)``, 1 mm by default; the generator knows no physical size). ``cal_min/cal_max`` hold
  the window for viewers.

Values outside ``[-1, 1]`` (a generator without ``tanh``) are clipped. The bytes carry no timestamp (gzip
``mtime=0``), so the same image always gives the same file and checksum.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Sequence

import nibabel as nib
import numpy as np
import torch
from PIL import Image
from torch import Tensor

from medsynth.data.roi import DEFAULT_WINDOW
from medsynth.data.training import preset_for
from medsynth.demo.writer import nifti_affine as demo_nifti_affine

FORMATS = {"png8": ".png", "png16": ".png", "nifti": ".nii.gz"}


def file_format(modality: str, channels: int) -> str:
    """``"png8"`` (RGB), ``"png16"`` (grey) or ``"nifti"`` (CT HU) for a modality's images of ``channels``.

    Raises:
        ValueError: for an unknown modality, or channels the modality's reader cannot give back (dermoscopy is
            read as RGB, X-ray and CT as one channel).
    """
    valid = {"dermoscopy": {3: "png8"}, "xray": {1: "png16"}, "ct": {1: "nifti"}, "other": {1: "png16", 3: "png8"}}
    if modality not in valid:
        raise ValueError(f"unknown modality {modality!r}; choose one of {', '.join(valid)}")
    if channels not in valid[modality]:
        raise ValueError(f"{modality} images must have {' or '.join(map(str, valid[modality]))} channel(s), "
                         f"got {channels}")
    return valid[modality][channels]


def reading_preset(modality: str, channels: int) -> str:
    """The :func:`~medsynth.data.transforms.load_preset` modality that reads back what :func:`encode_image` wrote:
    the training one, :func:`~medsynth.data.training.preset_for` (checked against :func:`file_format`)."""
    file_format(modality, channels)
    return preset_for(modality, channels)


def nifti_affine(spacing: float | Sequence[float] = 1.0) -> np.ndarray:
    """RAS affine ``(4, 4)`` of a synthetic ROI array ``(X, Y)`` in LPS voxel order, ``spacing`` ``(sx, sy)`` mm."""
    # numpy's isscalar (a TypeIs) does not narrow float | Sequence[float]
    sx, sy = (float(spacing), float(spacing)) if np.isscalar(spacing) else (float(s) for s in spacing)  # type: ignore[arg-type, union-attr]
    return demo_nifti_affine((sx, sy, 1.0), (0.0, 0.0, 0.0))


def _unit(image: Tensor) -> np.ndarray:
    """``(C, H, W)`` in [-1, 1] -> float64 numpy in [0, 1]."""
    x = torch.as_tensor(image).detach().to("cpu", torch.float64)
    return ((x.clamp(-1.0, 1.0) + 1.0) / 2.0).numpy()


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG")
    return buffer.getvalue()


def encode_image(image: Tensor, modality: str, *, window: Sequence[float] | None = None,
                 spacing: float | Sequence[float] = 1.0, description: str = "medsynth synthetic image, HU") -> bytes:
    """The file bytes of ``image (C, H, W)`` in ``[-1, 1]`` (format: :func:`file_format`; see the module docstring).

    Args:
        window: CT only: the HU ``(low, high)`` that ``[-1, 1]`` spans (default ``roi.DEFAULT_WINDOW``, as the
            CT preset); use the datalist's.
        spacing: CT only: pixel size in mm, one number or ``(sx, sy)`` along the columns and rows.
        description: CT only: the NIfTI ``descrip`` (at most 80 characters are kept).
    """
    if torch.as_tensor(image).dim() != 3:
        raise ValueError(f"image must have shape (C, H, W), got {list(torch.as_tensor(image).shape)}")
    unit = _unit(image)
    kind = file_format(modality, unit.shape[0])
    if kind == "png8":
        return _png(np.rint(unit * 255.0).astype(np.uint8).transpose(1, 2, 0))  # (H, W, 3)
    if kind == "png16":
        return _png(np.rint(unit[0] * 65535.0).astype(np.uint16))  # (H, W), PIL mode "I;16"
    low, high = (float(v) for v in (window if window is not None else DEFAULT_WINDOW))
    if not high > low:
        raise ValueError(f"CT window must be (low, high) with high > low, got {window}")
    hu = np.rint(low + unit[0] * (high - low)).clip(-32768, 32767).astype(np.int16)
    affine = nifti_affine(spacing)
    nifti = nib.Nifti1Image(np.ascontiguousarray(hu.T), affine)  # (H, W) rows-first -> (X, Y) = (W, H)
    nifti.header.set_xyzt_units("mm")
    nifti.header["cal_min"], nifti.header["cal_max"] = low, high
    nifti.header["descrip"] = description.encode()[:79]
    nifti.set_qform(affine, code=1)
    nifti.set_sform(affine, code=1)
    return gzip.compress(nifti.to_bytes(), mtime=0)
