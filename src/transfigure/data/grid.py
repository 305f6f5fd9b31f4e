"""Image grids: the images of a training step, or an evaluation report, side by side as one PIL image."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

#: tiles smaller than this (px, shorter side) are enlarged by an integer factor, nearest neighbour
MIN_TILE = 128
#: caption text height (px) of labelled grids
CAPTION_SIZE = 16


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


@lru_cache(maxsize=4)
def caption_font(size: int = CAPTION_SIZE) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled scalable font at ``size`` px (its small bitmap font where FreeType is missing)."""
    try:
        return ImageFont.load_default(size=size)
    except (ImportError, OSError):  # Pillow built without FreeType
        return ImageFont.load_default()


def caption(name: str) -> str:
    """``real_A`` -> ``real A``; ``synthesized_image`` -> ``synthesized image``."""
    return name.replace("_", " ")


def labelled_grid(
    rows: Sequence[Sequence[Image.Image]],
    columns: Sequence[str] = (),
    row_labels: Sequence[str] = (),
    *,
    min_tile: int = MIN_TILE,
    pad: int = 4,
    font_size: int = CAPTION_SIZE,
) -> Image.Image:
    """Tile ``rows`` of PIL images (one size) under column captions, each row after its label.

    Tiles whose shorter side is under ``min_tile`` px are enlarged by an integer factor (nearest
    neighbour: the pixels the model made stay visible as they are).
    """
    if not rows or not rows[0]:
        raise ValueError("a grid needs at least one image")
    w, h = rows[0][0].size
    scale = max(1, -(-min_tile // max(1, min(w, h))))  # ceil: tiles at least min_tile
    tw, th = w * scale, h * scale
    font = caption_font(font_size)
    draw_probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def text_size(text: str) -> tuple[int, int]:
        left, top, right, bottom = draw_probe.textbbox((0, 0), text, font=font)
        return right - left, bottom - top

    band = (font_size + 2 * pad) if columns else 0
    margin = (max(text_size(t)[0] for t in row_labels) + 2 * pad) if row_labels else 0
    n_cols = max(len(r) for r in rows)
    width = margin + n_cols * (tw + pad) + pad
    height = band + len(rows) * (th + pad) + pad
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for j, text in enumerate(columns):
        tx = margin + pad + j * (tw + pad) + max(0, (tw - text_size(text)[0]) // 2)
        draw.text((tx, pad), text, fill=(0, 0, 0), font=font)
    for i, row in enumerate(rows):
        y = band + pad + i * (th + pad)
        if i < len(row_labels):
            draw.text((pad, y + (th - font_size) // 2), row_labels[i], fill=(0, 0, 0), font=font)
        for j, img in enumerate(row):
            img = img.convert("RGB")
            if img.size != (tw, th):
                img = img.resize((tw, th), Image.Resampling.NEAREST)
            canvas.paste(img, (margin + pad + j * (tw + pad), y))
    return canvas


def visuals_grid(visuals: dict[str, torch.Tensor], max_rows: int = 4, min_tile: int = MIN_TILE) -> Image.Image:
    """The images of a training step: one column per visual in the variant's order (e.g. real A,
    fake B, rec A, real B, fake A, rec B), one row per sample of the batch (at most ``max_rows``),
    captioned, tiles enlarged to at least ``min_tile`` px."""
    if not visuals:
        raise ValueError("no visuals to draw")
    n = min(max_rows, min(int(v.shape[0]) for v in visuals.values()))
    rows = [[Image.fromarray(to_uint8(v[i])) for v in visuals.values()] for i in range(n)]
    return labelled_grid(rows, [caption(k) for k in visuals], [f"#{i}" for i in range(n)], min_tile=min_tile)
