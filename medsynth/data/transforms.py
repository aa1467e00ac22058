"""Modality presets: the deterministic load/intensity/resize chain, and the classic-augmentation arm.

``load_preset(modality)`` is a MONAI dictionary ``Compose`` that yields ``image`` as a float32 tensor
``(C, W, H)`` (``C`` = 1, or 3 for dermoscopy) in ``[0, 1]`` (``range="unit"``) or ``[-1, 1]``
(``"symmetric"``, what GAN generators emit with ``tanh``); ``label`` stays the class index.

* ``ct``: HU -> ``[0, 1]`` through the datalist's window (``ScaleIntensityRanged``, clipped).
* ``dermoscopy``: RGB / 255. No mean/std normalisation by default; ``range="imagenet"`` adds ImageNet's
  channel mean/std for pretrained classifier backbones.
* ``xray``: MONOCHROME1 inverted so bone is bright (:class:`InvertMonochrome1d`), then divided by the
  stored bit depth's maximum (:class:`ScaleStoredBitsd`; DICOM BitsStored, else the PNG's 8/16 bits),
  never by a per-image percentile, so exposure differences survive.

MONAI has no photometric handling in a transform. Of its readers, ``PydicomReader`` returns raw stored
values (its ``prune_metadata=False`` keeps ``00280004`` PhotometricInterpretation in the meta), while
``ITKReader`` (GDCM) already inverts MONOCHROME1 as ``2**BitsStored - 1 - x`` yet leaves ``0028|0004`` =
``MONOCHROME1`` in the meta. :class:`InvertMonochrome1` tells the two apart by the key style, so it never
inverts twice, and rewrites the meta to MONOCHROME2 once the pixels are.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.data import NibabelReader, PILReader, PydicomReader
from monai.transforms import (
    Compose,
    EnsureChannelFirstd,
    EnsureTyped,
    LoadImaged,
    MapTransform,
    NormalizeIntensityd,
    Randomizable,
    ScaleIntensityRanged,
    Transform,
)
from monai.utils import convert_to_tensor

from medsynth.data.readers import SuffixReader

PRESETS = ("ct", "dermoscopy", "xray")
RANGES = ("unit", "symmetric", "imagenet")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_PIL_BITS = {"1": 1, "L": 8, "LA": 8, "P": 8, "RGB": 8, "RGBA": 8, "I;16": 16, "I;16B": 16, "I;16L": 16}


def dicom_tag(meta: Mapping, tag: str) -> Any:
    """Value of DICOM ``tag`` (``"00280004"``) in MONAI meta from PydicomReader or ITKReader, or None."""
    if tag in meta:  # pydicom JSON model: {"vr": "CS", "Value": [...]}
        value = meta[tag]
        return value.get("Value", [None])[0] if isinstance(value, Mapping) else value
    itk_key = f"{tag[:4]}|{tag[4:]}".lower()
    return str(meta[itk_key]).strip() if itk_key in meta else None


def stored_range(meta: Mapping, bits: int | None = None) -> tuple[float, float]:
    """``(low, high)`` values an image can hold: BitsStored (or ``bits``, or the PIL mode's bit depth),
    signedness and RescaleSlope/Intercept, as the readers apply them."""
    bits = bits or dicom_tag(meta, "00280101") or _PIL_BITS.get(str(meta.get("mode")))
    if not bits:
        raise ValueError(f"{meta.get('filename_or_obj', 'image')}: no BitsStored or 8/16-bit mode in its "
                         "metadata; pass bits= to the xray preset")
    bits, signed = int(bits), str(dicom_tag(meta, "00280103")) == "1"
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    slope, intercept = float(dicom_tag(meta, "00281053") or 1), float(dicom_tag(meta, "00281052") or 0)
    return tuple(sorted((lo * slope + intercept, hi * slope + intercept)))


class InvertMonochrome1(Transform):
    """Invert a MONOCHROME1 image ``(C, W, H)`` (``x -> low + high - x`` over :func:`stored_range`).

    Reads the MetaTensor's meta: only pixels from PydicomReader (key ``00280004``) are inverted; ITKReader
    (key ``0028|0004``) has inverted them on reading already. Either way the meta then says MONOCHROME2,
    so applying the transform again changes nothing. Images without that tag pass unchanged.
    """

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        meta = getattr(img, "meta", None)
        if meta is None or str(dicom_tag(meta, "00280004") or "").upper() != "MONOCHROME1":
            return img
        if "00280004" in meta:
            lo, hi = stored_range(meta)
            img = (lo + hi) - img
            meta = img.meta  # type: ignore[attr-defined]  # a MetaTensor's arithmetic gives a MetaTensor; torch says Tensor
            meta["00280004"] = {"vr": "CS", "Value": ["MONOCHROME2"]}
        else:
            meta["0028|0004"] = "MONOCHROME2"
        return img


class ScaleStoredBits(Transform):
    """Map ``(C, W, H)`` from :func:`stored_range` (fixed per file format, not per image) to ``[0, 1]``."""

    def __init__(self, bits: int | None = None) -> None:
        self.bits = bits

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        lo, hi = stored_range(getattr(img, "meta", {}), self.bits)
        return ((img - lo) / (hi - lo)).clamp(0.0, 1.0)


class _PerKeyd(MapTransform):
    """Applies ``self.transform`` to every key: the shared body of the ``…d`` wrappers below."""

    transform: Callable[[torch.Tensor], torch.Tensor]

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.transform(d[key])
        return d


class InvertMonochrome1d(_PerKeyd):
    """Dictionary wrapper of :class:`InvertMonochrome1`."""

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = InvertMonochrome1()


class ScaleStoredBitsd(_PerKeyd):
    """Dictionary wrapper of :class:`ScaleStoredBits`."""

    def __init__(self, keys: KeysCollection, bits: int | None = None, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.transform = ScaleStoredBits(bits)


class ResizeAntialiased(Transform):
    """Resize ``(C, W, H)`` to ``spatial_size``: bilinear, PIL-style (triangle) anti-aliasing when shrinking.

    torch's ``interpolate(antialias=True)`` normalises its weights at the borders. MONAI's
    ``Resize(anti_aliasing=True)`` instead blurs with a zero-padded Gaussian, which darkens the image edges
    (a constant 0.5 image shrunk 2x gets 0.46 along its border, 0.42 in the corners).
    """

    def __init__(self, spatial_size: Sequence[int]) -> None:
        self.spatial_size = tuple(int(s) for s in spatial_size)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        x = convert_to_tensor(img, track_meta=False, dtype=torch.float32)
        if tuple(x.shape[1:]) == self.spatial_size:
            return x
        return F.interpolate(x[None], size=self.spatial_size, mode="bilinear", antialias=True,
                             align_corners=False)[0]


class ResizeAntialiasedd(_PerKeyd):
    """Dictionary wrapper of :class:`ResizeAntialiased`."""

    def __init__(self, keys: KeysCollection, spatial_size: Sequence[int], allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.transform = ResizeAntialiased(spatial_size)


def to_rgb(image):
    """PILReader converter: any PIL mode to 8-bit RGB (drops alpha, expands grey and palettes)."""
    return image.convert("RGB")


def _check(modality: str, range: str) -> None:
    if modality not in PRESETS:
        raise ValueError(f"no preset for modality {modality!r}; choose one of {', '.join(PRESETS)}")
    if range not in RANGES or (range == "imagenet" and modality != "dermoscopy"):
        raise ValueError(f"range must be 'unit' or 'symmetric' (or 'imagenet' for dermoscopy), got {range!r}")


def _intensity(modality: str, keys: list, window: Sequence[float] | None, range: str,
               bits: int | None) -> list:
    low = -1.0 if range == "symmetric" else 0.0
    if modality == "ct":
        from medsynth.data.roi import DEFAULT_WINDOW

        a_min, a_max = window if window is not None else DEFAULT_WINDOW
        return [ScaleIntensityRanged(keys, a_min=a_min, a_max=a_max, b_min=low, b_max=1.0, clip=True)]
    if modality == "dermoscopy":
        out: list[MapTransform] = [ScaleIntensityRanged(keys, a_min=0.0, a_max=255.0, b_min=low, b_max=1.0, clip=True)]
        if range == "imagenet":
            # MONAI types NormalizeIntensityd's subtrahend/divisor as arrays; it forwards them to NormalizeIntensity,
            # which takes a Sequence too
            out.append(NormalizeIntensityd(keys, subtrahend=IMAGENET_MEAN, divisor=IMAGENET_STD,  # type: ignore[arg-type]
                                           channel_wise=True))
        return out
    out = [InvertMonochrome1d(keys), ScaleStoredBitsd(keys, bits=bits)]
    if range == "symmetric":
        out.append(ScaleIntensityRanged(keys, a_min=0.0, a_max=1.0, b_min=-1.0, b_max=1.0))
    return out


def load_preset(
    modality: str,
    *,
    spatial_size: Sequence[int] = (64, 64),
    window: Sequence[float] | None = None,
    keys: Sequence[str] = ("image",),
    range: str = "unit",
    bits: int | None = None,
) -> Compose:
    """Deterministic chain: load, channel first, intensity, resize, float32 tensor ``(C, *spatial_size)``.

    Args:
        modality: ``"ct"``, ``"dermoscopy"`` or ``"xray"`` (the datalist's ``modality``).
        window: CT only, the HU ``(low, high)`` from the datalist (default ``roi.DEFAULT_WINDOW``).
        range: ``"unit"`` [0, 1], ``"symmetric"`` [-1, 1], or for dermoscopy ``"imagenet"``.
        bits: X-ray only: overrides the bit depth read from the file.

    Readers, chosen by the file (:class:`~medsynth.data.readers.SuffixReader`, so no reader is tried and fails
    first): CT NIfTI or pydicom (2D DICOM, rescale -> HU); dermoscopy PIL converted to RGB; X-ray PIL for PNG/JPG,
    pydicom with full metadata for DICOM. Resizing is
    :class:`ResizeAntialiased` (bilinear, anti-aliased when shrinking). Meta is dropped at the end.
    """
    _check(modality, range)
    keys = list(keys)
    readers = {"ct": [SuffixReader({"dicom": PydicomReader(), "nifti": NibabelReader()})],
               "dermoscopy": [PILReader(converter=to_rgb)],
               "xray": [SuffixReader({"pil": PILReader(), "dicom": PydicomReader(prune_metadata=False)})]}[modality]
    return Compose([
        # MONAI types reader as a class or name; LoadImaged documents (and takes) reader instances and lists
        LoadImaged(keys, reader=readers, image_only=True),  # type: ignore[arg-type]
        EnsureChannelFirstd(keys),
        *_intensity(modality, keys, window, range, bits),
        ResizeAntialiasedd(keys, spatial_size),
        EnsureTyped(keys, dtype=torch.float32, track_meta=False),
    ])


class RandTorchIO2Dd(Randomizable, MapTransform):
    """Apply a TorchIO transform to 2D channel-first tensors ``(C, W, H)``, seeded through MONAI.

    MONAI's ``RandTorchIOd`` hands the dict to TorchIO as is: TorchIO needs 4D ``(C, W, H, D)`` and draws
    its parameters from torch's global RNG, so 2D images fail and ``set_random_state`` cannot seed it.
    Here a singleton depth is added and removed, and each call seeds TorchIO from this transform's own
    ``self.R`` inside ``torch.random.fork_rng``, leaving the global RNG alone. Images in ``[-1, 1]``
    (``symmetric=True``) are mapped to [0, 1] around the TorchIO call, so gamma and bias act as on [0, 1].
    """

    def __init__(self, keys: KeysCollection, transform, symmetric: bool = False,
                 allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.transform, self.symmetric, self._seed = transform, symmetric, 0

    def randomize(self, data: object = None) -> None:
        self._seed = int(self.R.randint(0, 2**31 - 1))

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        import torchio as tio

        self.randomize()
        d = dict(data)
        keys = list(self.key_iterator(d))
        images = {}
        for key in keys:
            x = convert_to_tensor(d[key], track_meta=False).float()
            images[key] = tio.ScalarImage(tensor=((x + 1) / 2 if self.symmetric else x)[..., None])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self._seed)
            out = self.transform(tio.Subject(images))
        for key in keys:
            y = out[key].data[..., 0]
            d[key] = (y * 2 - 1 if self.symmetric else y).to(torch.as_tensor(d[key]).dtype)
        return d


def _torchio_transforms(modality: str) -> list:
    """The per-modality TorchIO list; see :func:`classic_augmentation` for the reasoning."""
    import torchio as tio

    elastic = tio.RandomElasticDeformation(num_control_points=7, max_displacement=(3, 3, 0), p=0.3)
    shift = (-3, 3, -3, 3, 0, 0)  # px; TorchIO zeroes 2D images' z scaling and rotation, not z translation
    if modality == "ct":
        return [tio.RandomFlip(axes=(0, 1)), elastic,
                tio.RandomAffine(scales=0.1, degrees=15, translation=shift, isotropic=True,
                                 default_pad_value="minimum", p=0.75)]
    if modality == "dermoscopy":
        return [tio.RandomFlip(axes=(0, 1)), elastic,
                tio.RandomAffine(scales=0.1, degrees=30, isotropic=True, default_pad_value="mean", p=0.75),
                tio.RandomGamma(log_gamma=(-0.15, 0.15), p=0.5)]
    return [tio.RandomFlip(axes=(0,)), elastic,
            tio.RandomAffine(scales=0.1, degrees=10, translation=shift, isotropic=True,
                             default_pad_value="minimum", p=0.75),
            tio.RandomGamma(log_gamma=(-0.3, 0.3), p=0.5), tio.RandomBiasField(coefficients=0.3, p=0.3)]


def classic_augmentation(modality: str, *, seed: int | None = None, keys: Sequence[str] = ("image",),
                         range: str = "unit") -> RandTorchIO2Dd:
    """TorchIO classic augmentation for the ``classic_aug`` arm, on :func:`load_preset` outputs ``(C, W, H)``.

    All modalities: random flips, a small elastic deformation, ``RandomAffine`` (isotropic scale +-10 %,
    in-plane rotation, small shifts). Then per modality:

    * ``ct``: both flips (texture classes have no handedness in a lesion ROI), rotation +-15 deg, shift 3 px.
      No gamma and no bias field: HU are calibrated and the class signal is partly absolute density
      (cyst 0-10 vs metastasis 30-60 HU); a multiplicative bias field is an MR artefact, not a CT one.
    * ``dermoscopy``: both flips, rotation +-30 deg (skin lesions have no orientation), mild gamma (TorchIO
      draws one per channel: a mild white-balance jitter). No bias field: colour variegation across the
      lesion is diagnostic (the C of ABCD) and a smooth field over it could fake or erase it.
    * ``xray``: left-right flip only (upside-down limbs are implausible), rotation +-10 deg, gamma (exposure
      and processing curves vary) and a weak bias field (heel effect, scatter: smooth exposure gradients).

    ``seed`` seeds it (same seed and inputs, same outputs); MONAI's ``set_determinism`` and DataLoader
    workers reseed it like any ``Randomizable``. ``range`` is the preset's: ``"unit"`` or ``"symmetric"``.
    """
    import torchio as tio

    _check(modality, range)
    compose = tio.Compose(_torchio_transforms(modality))
    aug = RandTorchIO2Dd(list(keys), compose, symmetric=range == "symmetric")
    if seed is not None:
        aug.set_random_state(seed)
    return aug
