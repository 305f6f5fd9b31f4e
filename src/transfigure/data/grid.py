"""Image grids: the images of a training step, or an evaluation report, side by side as one PIL image."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def to_uint8(t: torch.Tensor) -> np.ndarray:
    """CxHxW in [-1, 1] -> HxWxC uint8 (grey images repeated to RGB)."""
    t = t.detach().float().cpu().clamp(-1, 1)
    if t.shape[0] == 1:
        t = t.repeat(3, 1, 1)
    return ((t[:3] + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()


def make_grid(rows: list[list[torch.Tensor]], pad: int = 2) -> Image.Image:
    """Tile ``rows`` of CxHxW tensors (all the same size) into one RGB image with white gutters."""
    if not rows or not rows[0]:
        raise ValueError("make_grid needs at least one image")
    h, w = rows[0][0].shape[-2:]
    n_cols = max(len(r) for r in rows)
    canvas = np.full((len(rows) * (h + pad) + pad, n_cols * (w + pad) + pad, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            canvas[y : y + h, x : x + w] = to_uint8(img)
    return Image.fromarray(canvas)


def visuals_grid(visuals: dict[str, torch.Tensor], per_row: int = 3) -> Image.Image:
    """First item of each visual, ``per_row`` per row, in the variant's order (e.g. real_A fake_B rec_A)."""
    images = [v[0] for v in visuals.values()]
    rows = [images[i : i + per_row] for i in range(0, len(images), per_row)]
    return make_grid(rows)
