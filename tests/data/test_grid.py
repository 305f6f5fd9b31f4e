"""Sample grids are captioned (columns: what each image is; rows: the sample) and big enough to read."""

from __future__ import annotations

import numpy as np
import torch

from transfigure.data.grid import CAPTION_SIZE, MIN_TILE, labelled_grid, visuals_grid


def _ink_rows(region: np.ndarray) -> np.ndarray:
    """Indices of the rows of an RGB region holding dark (text) pixels."""
    return np.nonzero((region.min(axis=2) < 100).any(axis=1))[0]


def test_visuals_grid_captions_columns_and_rows_at_a_readable_size():
    torch.manual_seed(0)
    names = ["real_A", "fake_B", "rec_A", "real_B", "fake_A", "rec_B"]
    visuals = {k: torch.rand(2, 3, 32, 32) * 2 - 1 for k in names}
    grid = visuals_grid(visuals)
    arr = np.asarray(grid)
    band = CAPTION_SIZE + 8
    # 32 px tiles are enlarged 4x (nearest), 6 columns, 2 rows (one per sample of the batch)
    assert grid.height == band + 2 * (MIN_TILE + 4) + 4
    assert grid.width > 6 * (MIN_TILE + 4)
    margin = grid.width - 6 * (MIN_TILE + 4) - 4
    assert margin > 0  # the row captions ("#0", "#1") sit in a left margin
    # the caption band holds text of readable height (>= 10 px), over every column
    ink = _ink_rows(arr[:band, margin:])
    assert ink.size and ink.max() - ink.min() + 1 >= 10
    for j in range(6):
        x0 = margin + 4 + j * (MIN_TILE + 4)
        assert (arr[:band, x0 : x0 + MIN_TILE].min(axis=2) < 100).any(), f"column {j} has no caption"
    # row captions in the margin, one per row
    for i in range(2):
        y0 = band + 4 + i * (MIN_TILE + 4)
        assert (arr[y0 : y0 + MIN_TILE, :margin].min(axis=2) < 100).any()
    # a tile is the sample enlarged by whole pixels
    x0, y0 = margin + 4, band + 4
    tile = arr[y0 : y0 + MIN_TILE, x0 : x0 + MIN_TILE]
    assert (tile[::4, ::4] == tile[3::4, 3::4]).all()


def test_visuals_grid_shows_at_most_max_rows_and_keeps_large_tiles():
    visuals = {"real_A": torch.zeros(8, 3, 160, 160), "fake_B": torch.zeros(8, 1, 160, 160)}
    grid = visuals_grid(visuals, max_rows=3)
    assert grid.height == CAPTION_SIZE + 8 + 3 * (160 + 4) + 4


def test_labelled_grid_without_captions_is_only_tiles():
    from PIL import Image

    tiles = [[Image.new("RGB", (64, 64), (10, 20, 30))] * 2]
    grid = labelled_grid(tiles)
    assert grid.size == (2 * (128 + 4) + 4, 128 + 8)
