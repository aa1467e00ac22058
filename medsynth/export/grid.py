"""The sample grid: a batch of generated images tiled into one labelled PIL image (``grid.png``, TensorBoard)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor


def make_grid_image(images: Tensor, nrow: int, row_labels: Sequence[str] | None = None, padding: int = 2,
                    label_width: int | None = None) -> Image.Image:
    """Tile ``images (N, C, H, W)`` in [-1, 1] into a PIL image, ``nrow`` images per row, rows labelled on the left.

    Pixels map linearly from [-1, 1] to [0, 255] (values outside are clipped); ``C`` = 1 gives an "L" image, 3 an
    "RGB" one. Tiles are separated by ``padding`` black pixels. With ``row_labels`` (one per row) a black margin of
    ``label_width`` pixels (default: the widest label in PIL's default font, plus padding) holds them in white.
    Size: ``(margin + nrow * (W + padding) + padding, rows * (H + padding) + padding)``.
    """
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape (N, 1 or 3, H, W), got {list(images.shape)}")
    n, c, h, w = images.shape
    rows = -(-n // nrow)
    if row_labels is not None and len(row_labels) != rows:
        raise ValueError(f"{len(row_labels)} row_labels for {rows} rows")
    pixels = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    grid = torch.zeros(c, rows * (h + padding) + padding, nrow * (w + padding) + padding, dtype=torch.uint8)
    for i in range(n):
        top, left = padding + (i // nrow) * (h + padding), padding + (i % nrow) * (w + padding)
        grid[:, top:top + h, left:left + w] = pixels[i]
    array = grid[0].numpy() if c == 1 else grid.permute(1, 2, 0).numpy()
    image = Image.fromarray(np.ascontiguousarray(array))  # (H, W) uint8 -> "L", (H, W, 3) -> "RGB"
    if row_labels is None:
        return image
    font = ImageFont.load_default()
    measure = ImageDraw.Draw(image)
    if label_width is None:
        label_width = max(int(np.ceil(measure.textlength(str(t), font=font))) for t in row_labels) + 2 * padding
    labelled = Image.new(image.mode, (label_width + image.width, image.height))
    labelled.paste(image, (label_width, 0))
    draw, white = ImageDraw.Draw(labelled), 255 if c == 1 else (255, 255, 255)
    for r, text in enumerate(row_labels):
        _, text_top, _, text_bottom = draw.textbbox((0, 0), str(text), font=font)
        top = padding + r * (h + padding) + int((h - text_bottom - text_top) // 2)  # centred on the row
        draw.text((padding, top), str(text), fill=white, font=font)
    return labelled
