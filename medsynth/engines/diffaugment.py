"""Differentiable augmentation for GANs trained on little data (DiffAugment; Zhao et al., NeurIPS 2020).

The same kind of random, differentiable transform is applied to real and to fake images before the
discriminator sees them, for both the D and the G step, so D cannot overfit the few real images while G
still gets gradients through the transform. Written from the paper's description:

- ``color``: per-sample brightness shift ``U(-0.5, 0.5)``, saturation factor ``U(0, 2)`` around the
  channel mean and contrast factor ``U(0.5, 1.5)`` around the image mean. RGB (dermoscopy) only.
- ``translation``: per-sample integer shift of up to ``translation_ratio * size`` pixels in each axis, with
  zeros filling the vacated border.
- ``cutout``: per-sample square of ``cutout_ratio * size`` pixels set to zero. Unlike the reference code,
  which lets the square hang over the border, the square here always lies inside the image.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

POLICIES = ("color", "translation", "cutout")
COLOR_REFUSED = "colour augmentation changes intensities that carry meaning in CT/X-ray; use translation,cutout"


def parse_policy(policy: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"translation,cutout"`` or ``("translation", "cutout")`` -> ``("translation", "cutout")``; ``""``,
    ``"none"`` or None -> ``()``. (A bundle's ``--diffaugment translation,cutout`` reaches the config as a tuple:
    ``python -m monai.bundle`` parses arguments with ``fire``.)"""
    parts = [] if policy is None else policy.split(",") if isinstance(policy, str) else list(policy)
    names = tuple(str(name).strip().lower() for name in parts if str(name).strip())
    if names in ((), ("none",)):
        return ()
    unknown = [name for name in names if name not in POLICIES]
    if unknown:
        raise ValueError(f"unknown DiffAugment policy {unknown}; valid: {', '.join(POLICIES)} (or 'none')")
    return names


class DiffAugment(nn.Module):
    """``forward(x (B, C, H, W)) -> (B, C, H, W)``: the policies applied in order color, translation, cutout.

    Every op is differentiable in ``x``. Random draws come from ``generator`` (a CPU ``torch.Generator``)
    when given, else from torch's global RNG, so ``torch.manual_seed`` makes them repeatable.
    """

    def __init__(
        self,
        policy: str = "translation,cutout",
        translation_ratio: float = 0.125,
        cutout_ratio: float = 0.5,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        names = parse_policy(policy)
        self.policy = tuple(name for name in POLICIES if name in names)
        self.translation_ratio = translation_ratio
        self.cutout_ratio = cutout_ratio
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if "color" in self.policy and x.shape[1] != 3:
            raise ValueError(f"{COLOR_REFUSED} (input has {x.shape[1]} channel(s), color needs RGB)")
        for name in self.policy:
            x = getattr(self, f"_{name}")(x)
        return x

    def _rand(self, *shape: int, like: torch.Tensor) -> torch.Tensor:
        return torch.rand(shape, generator=self.generator).to(device=like.device, dtype=like.dtype)

    def _randint(self, high: int, size: int, device: torch.device) -> torch.Tensor:
        """``size`` integers uniform in ``[0, high)``."""
        return torch.randint(high, (size,), generator=self.generator).to(device)

    def _color(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        x = x + (self._rand(b, 1, 1, 1, like=x) - 0.5)
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (self._rand(b, 1, 1, 1, like=x) * 2) + mean
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return (x - mean) * (self._rand(b, 1, 1, 1, like=x) + 0.5) + mean

    def _translation(self, x: torch.Tensor) -> torch.Tensor:
        """Shift each sample by integer ``(dy, dx)`` in ``[-s, s]``, ``s = round(ratio * size)``; zeros fill in."""
        b, _, h, w = x.shape
        sy, sx = int(h * self.translation_ratio + 0.5), int(w * self.translation_ratio + 0.5)
        dy = self._randint(2 * sy + 1, b, x.device) - sy
        dx = self._randint(2 * sx + 1, b, x.device) - sx
        return translate(x, dy, dx, pad=(sy, sx))

    def _cutout(self, x: torch.Tensor) -> torch.Tensor:
        """Zero a ``round(ratio * H) x round(ratio * W)`` box at a uniform position inside each sample."""
        b, _, h, w = x.shape
        ch, cw = int(h * self.cutout_ratio + 0.5), int(w * self.cutout_ratio + 0.5)
        top = self._randint(h - ch + 1, b, x.device)
        left = self._randint(w - cw + 1, b, x.device)
        rows = torch.arange(h, device=x.device)[None, :] - top[:, None]  # (B, H)
        cols = torch.arange(w, device=x.device)[None, :] - left[:, None]  # (B, W)
        keep = ~(((rows >= 0) & (rows < ch))[:, :, None] & ((cols >= 0) & (cols < cw))[:, None, :])
        return x * keep[:, None].to(x.dtype)


def translate(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, pad: tuple[int, int] | None = None) -> torch.Tensor:
    """Deterministic twin of the translation policy: ``out[b, :, i, j] = x[b, :, i - dy[b], j - dx[b]]`` or 0.

    ``x`` is ``(B, C, H, W)``, ``dy``/``dx`` are ``(B,)`` integer shifts (positive moves content down/right),
    ``pad`` bounds ``|dy|, |dx|`` (default: their maxima). Implemented as a gather from a zero-padded copy.
    """
    b, _, h, w = x.shape
    py, px = pad if pad is not None else (int(dy.abs().max()), int(dx.abs().max()))
    padded = F.pad(x, [px, px, py, py])
    rows = (torch.arange(h, device=x.device)[None, :] - dy[:, None] + py).clamp(0, h + 2 * py - 1)  # (B, H)
    cols = (torch.arange(w, device=x.device)[None, :] - dx[:, None] + px).clamp(0, w + 2 * px - 1)  # (B, W)
    batch = torch.arange(b, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()
