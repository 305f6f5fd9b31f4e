"""The side-by-side image report of an evaluation: one row per test image, saved as a PNG grid.

Paired data: input | output | target. Unpaired data: input | translated | reconstructed, first
rows for A -> B -> A, then rows for B -> A -> B. Label maps are drawn in a fixed palette.
"""

from __future__ import annotations

import colorsys
import io

import numpy as np
from PIL import Image, ImageDraw

from transfigure.data.grid import make_grid
from transfigure.data.transforms import to_tensor

#: colour of the "don't care" id 255 in label-map previews
DONTCARE_COLOUR = (0, 0, 0)


def label_palette(n: int) -> np.ndarray:
    """``n`` distinct, deterministic RGB colours (golden-ratio hues, alternating brightness)."""
    colours = []
    for i in range(n):
        r, g, b = colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.65, 0.95 if i % 2 == 0 else 0.7)
        colours.append((int(r * 255), int(g * 255), int(b * 255)))
    return np.asarray(colours, dtype=np.uint8).reshape(-1, 3)


def colourise_labels(label: Image.Image) -> Image.Image:
    """A label map of class ids -> an RGB preview (255 = don't care drawn black)."""
    ids = np.asarray(label).astype(np.int64)
    top = int(ids[ids != 255].max()) + 1 if (ids != 255).any() else 1
    palette = label_palette(max(top, 1))
    rgb = palette[np.clip(ids, 0, top - 1)]
    rgb[ids == 255] = DONTCARE_COLOUR
    return Image.fromarray(rgb.astype(np.uint8))


def _rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I", "I;16"):  # label maps are loaded as mode I (raw class ids)
        return colourise_labels(img)
    return img.convert("RGB")


def report_grid(rows: list[list[Image.Image]], headers: list[str] | None = None, min_tile: int = 128) -> Image.Image:
    """Tile rows of PIL images (one size) into one RGB grid with white gutters.

    Tiles smaller than ``min_tile`` px are enlarged by an integer factor (nearest neighbour, so
    pixels stay visible as they are); ``headers`` label the columns.
    """
    if not rows or not rows[0]:
        raise ValueError("an image report needs at least one row")
    w, h = rows[0][0].size
    scale = max(1, min_tile // max(1, min(w, h)))

    def tile(img: Image.Image) -> Image.Image:
        img = _rgb(img)
        return img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST) if scale > 1 else img

    grid = make_grid([[to_tensor(tile(img)) for img in row] for row in rows])
    if not headers:
        return grid
    band = 14
    canvas = Image.new("RGB", (grid.width, grid.height + band), (255, 255, 255))
    canvas.paste(grid, (0, band))
    draw = ImageDraw.Draw(canvas)
    pad, tile_w = 2, w * scale
    for j, text in enumerate(headers):
        draw.text((pad + j * (tile_w + pad) + 2, 1), text, fill=(0, 0, 0))
    return canvas


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()
