"""The read: how embedder and detector turn an image into channel values, for any geometry.

The luminance (through the clamped read of :mod:`.planes`) is band-passed with an isotropic difference
of Gaussians scaled to the cell size (sigma 0.5 and 0.71 cells: the low-pass keeps the cell band, the
high-pass takes the image's own low frequencies out), and the result ``F`` is sampled at the lattice
points. Cells of 8 px and more are band-passed after halving the resolution (``cv2.pyrDown``) as many
times as they stay at least 4 px: the band is far below the halved Nyquist, so the read stays the same
for any shift to within a few % of the lattice step (measured: 2-8 % at 512 px for odd-pixel shifts), at a
fraction of the cost. Because the band-pass is isotropic and ``F`` is smooth (nothing left above the
cell frequency), reading a rotated, rescaled, flipped or shifted copy is the same operation at other
sampling positions: filter at the copy's cell size, then sample ``F`` (bicubic) where the geometry puts
the lattice. The embedder reads at the identity; a detector that finds the geometry reads what the
embedder wrote, up to the edit's own noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import cv2
import numpy as np

from transfigure.provenance.watermark.layout import TILE

__all__ = ["Geometry", "Planes", "Reading", "band_planes", "bandpass", "block_channels", "level", "read", "sample"]

#: Band-pass of the read: Gaussian low-pass of LOW_SIGMA cells minus the same blurred HIGH_SIGMA cells more.
LOW_SIGMA: Final = 0.5
HIGH_SIGMA: Final = 0.5
#: Blocks whose share of markable pixels (see planes.saturation_taper) is below this carry nothing.
MIN_SUPPORT: Final = 0.3


#: Cells are band-passed at the pyramid level where they are at least this many pixels.
MIN_LEVEL_CELL: Final = 4.0


def level(cell_x: float, cell_y: float) -> int:
    """The pyramid level (resolution halved this many times) a cell size is read at."""
    return (
        max(0, int(math.floor(math.log2(min(cell_x, cell_y) / MIN_LEVEL_CELL))))
        if min(cell_x, cell_y) >= 2 * MIN_LEVEL_CELL
        else 0
    )


def reduce(plane: np.ndarray, times: int) -> np.ndarray:
    for _ in range(times):
        plane = cv2.pyrDown(plane)
    return plane


def bandpass(luma: np.ndarray, cell_x: float, cell_y: float | None = None) -> np.ndarray:
    """``F``: the luminance band-passed for cells of ``cell_x`` by ``cell_y`` pixels (float32), at the
    plane's own resolution (see :func:`band_planes` for the pyramid)."""
    cell_y = cell_x if cell_y is None else cell_y
    values = luma.astype(np.float32, copy=False)
    low = cv2.GaussianBlur(values, (0, 0), LOW_SIGMA * cell_x, sigmaY=LOW_SIGMA * cell_y, borderType=cv2.BORDER_REFLECT)
    # the wider Gaussian as the low-pass blurred again (variances add): a shorter kernel, ~20 % faster, the
    # same to ~1e-3 grey levels
    return low - cv2.GaussianBlur(
        low, (0, 0), HIGH_SIGMA * cell_x, sigmaY=HIGH_SIGMA * cell_y, borderType=cv2.BORDER_REFLECT
    )


def support_plane(taper: np.ndarray, cell_x: float, cell_y: float | None = None) -> np.ndarray:
    """The taper (how much mark each pixel can carry) averaged over about a cell: sampled like ``F``."""
    cell_y = cell_x if cell_y is None else cell_y
    return cv2.GaussianBlur(
        taper.astype(np.float32, copy=False), (0, 0), 0.5 * cell_x, sigmaY=0.5 * cell_y, borderType=cv2.BORDER_REFLECT
    )


@dataclass(frozen=True)
class Planes:
    """The band-passed luminance and the support of an image for one cell size, at pyramid ``level``."""

    band: np.ndarray
    support: np.ndarray
    level: int


def band_planes(
    luma: np.ndarray,
    taper: np.ndarray,
    cell_x: float,
    cell_y: float | None = None,
    pyramid: dict[int, tuple[np.ndarray, np.ndarray]] | None = None,
) -> Planes:
    """The planes a read of cells of ``cell_x`` by ``cell_y`` image pixels samples. ``pyramid``: the
    reduced (luma, taper) per level of these same planes, filled as needed (a search band-passes the one
    image for many cell sizes at the same few levels)."""
    cell_y = cell_x if cell_y is None else cell_y
    lv = level(cell_x, cell_y)
    f = 2.0**-lv
    if pyramid is None:
        reduced_luma, reduced_taper = reduce(luma, lv), reduce(taper, lv)
    else:
        pyramid.setdefault(0, (luma, taper))
        below = max(k for k in pyramid if k <= lv)
        for k in range(below + 1, lv + 1):  # each level from the one below: what reduce(plane, k) computes
            pyramid[k] = (reduce(pyramid[k - 1][0], 1), reduce(pyramid[k - 1][1], 1))
        reduced_luma, reduced_taper = pyramid[lv]
    return Planes(
        bandpass(reduced_luma, cell_x * f, cell_y * f), support_plane(reduced_taper, cell_x * f, cell_y * f), lv
    )


@dataclass(frozen=True)
class Geometry:
    """Where the original's lattice lies in the image being read.

    Lattice point (i0 + r, j0 + k) is at image (x, y) = matrix @ (k, r) + offset, for r < cells[0] and
    k < cells[1]; ``matrix`` = (a, b, c, d) is [[a, b], [c, d]]: a whole cell step along the lattice's
    columns and rows, in image pixels (c0 x the identity for an unedited image; flips, quarter turns,
    rotations and rescaling are all just other matrices).
    """

    matrix: tuple[float, float, float, float]
    offset: tuple[float, float]
    origin: tuple[int, int]
    cells: tuple[int, int]

    @property
    def cell_sizes(self) -> tuple[float, float]:
        """The cell's extent in image pixels along image x and y (for the band-pass)."""
        a, b, c, d = self.matrix
        if abs(b) < 1e-9 and abs(c) < 1e-9:
            return abs(a), abs(d)
        if abs(a) < 1e-9 and abs(d) < 1e-9:  # a quarter turn: lattice columns run along image y
            return abs(b), abs(c)
        size = math.sqrt(abs(a * d - b * c))  # rotated: the band-pass is isotropic
        return size, size

    @staticmethod
    def identity(c0: int, height: int, width: int) -> Geometry:
        return Geometry(
            (float(c0), 0.0, 0.0, float(c0)), (0.0, 0.0), (0, 0), ((height - 1) // c0 + 1, (width - 1) // c0 + 1)
        )


def sample(plane: np.ndarray, geometry: Geometry, interpolation: int = cv2.INTER_CUBIC, lv: int = 0) -> np.ndarray:
    """``plane`` (at pyramid level ``lv``) at the geometry's lattice points, (rows, cols) float32."""
    f = 2.0**-lv  # pyrDown's output pixel k is centred on input pixel 2k
    a, b, c, d = (v * f for v in geometry.matrix)
    matrix = np.array([[a, b, geometry.offset[0] * f], [c, d, geometry.offset[1] * f]], dtype=np.float64)
    rows, cols = geometry.cells
    return cv2.warpAffine(
        plane,
        matrix,
        (cols, rows),
        flags=interpolation | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT if interpolation == cv2.INTER_CUBIC else cv2.BORDER_CONSTANT,
    )


def _quads(cells: np.ndarray, offset: tuple[int, int]) -> np.ndarray:
    """(..., blocks down, 2, blocks across, 2): the cells of each whole block, the first at cell ``offset``."""
    cells = cells[..., offset[0] :, offset[1] :]
    rows, cols = cells.shape[-2] // 2, cells.shape[-1] // 2
    return cells[..., : 2 * rows, : 2 * cols].reshape(*cells.shape[:-2], rows, 2, cols, 2)


def block_channels(cells: np.ndarray, offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    """(..., blocks down, blocks across, CHANNELS): each block's H, V, D values, its cells weighted by the
    CHIPS and averaged; the first block starts at cell ``offset`` (0 or 1 each way). Leading axes are a
    stack of readings. (The chips' sums written out: the same values as an einsum with CHIPS, to the bit,
    and 2-6x faster on the small stacks the screens read.)"""
    quads = _quads(cells, offset)
    c00, c01, c10, c11 = quads[..., 0, :, 0], quads[..., 0, :, 1], quads[..., 1, :, 0], quads[..., 1, :, 1]
    left, right = c00 - c01, c10 - c11
    return np.stack([left + right, (c00 + c01) - (c10 + c11), left - right], axis=-1) * np.float32(0.25)


def block_means(cells: np.ndarray, offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    quads = _quads(cells, offset)
    top, bottom = quads[..., 0, :, 0] + quads[..., 0, :, 1], quads[..., 1, :, 0] + quads[..., 1, :, 1]
    return (top + bottom) * np.float32(0.25)


def block_weights(support_cells: np.ndarray, offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    """(..., blocks down, blocks across, 1): a block's share of markable pixels, 0 under MIN_SUPPORT."""
    support = block_means(support_cells, offset)
    return np.where(support > MIN_SUPPORT, np.clip(support, 0.0, 1.0), 0.0).astype(np.float32)[..., None]


@dataclass(frozen=True)
class Reading:
    """The channel values of the whole blocks a geometry reads, their weights and tile positions."""

    values: np.ndarray  # (blocks down, blocks across, CHANNELS)
    weights: np.ndarray  # (blocks down, blocks across, 1)
    rows: np.ndarray  # (blocks down,) tile row of each block row
    cols: np.ndarray  # (blocks across,) tile column of each block column

    @property
    def slots(self) -> tuple[np.ndarray, np.ndarray]:
        """Index arrays (rows[:, None], cols[None, :]) into per-slot arrays [TILE, TILE, CHANNELS]."""
        return self.rows[:, None], self.cols[None, :]


def block_offset(geometry: Geometry) -> tuple[int, int]:
    """Cells to skip so that reading starts on a whole block (blocks start on even lattice indices)."""
    i0, j0 = geometry.origin
    return i0 % 2, j0 % 2


def read(planes: Planes, geometry: Geometry) -> Reading:
    """The reading of a geometry from the image's planes for this geometry's cell size (:func:`band_planes`)."""
    offset = block_offset(geometry)
    values = block_channels(sample(planes.band, geometry, lv=planes.level), offset)
    weights = block_weights(sample(planes.support, geometry, cv2.INTER_LINEAR, planes.level), offset)
    i0, j0 = geometry.origin
    first = ((i0 + offset[0]) // 2, (j0 + offset[1]) // 2)
    return Reading(
        values,
        weights[: values.shape[0], : values.shape[1]],
        (first[0] + np.arange(values.shape[0])) % TILE,
        (first[1] + np.arange(values.shape[1])) % TILE,
    )
