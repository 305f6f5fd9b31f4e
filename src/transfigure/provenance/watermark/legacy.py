"""The previous release's watermark (scheme ``legacy-v1``), kept so that images it marked are still found.

New images are marked by :mod:`transfigure.provenance.watermark` (scheme ``tiled-v2``); this module's
``detect_watermark`` is its fallback. Its design, unchanged:

How it works (each choice measured with ``benchmarks/watermark.py``; see the README):

* **Domain.** The luminance is resampled to a *working grid* of about 128x128 (any size and
  aspect; images under 64 px are upsampled) and high-passed (minus a Gaussian blur, sigma 1). The
  mark is a periodic tile of 64x64 working pixels: 32x32 *cells* of 2x2 working pixels (4x4 image
  pixels at 256x256, 8x8 at 512x512), band-limited to the cell grid, i.e. a low-mid-frequency
  pattern that 4:2:0 JPEG 50 and halving the resolution keep.
* **Reading.** The residual inside a centred elliptical *window* (so cropped borders and the
  empty corners of a rotated image are never read) is *folded* onto one tile (all tiles summed:
  a translation becomes a cyclic shift), and the 1024 cell values are read. Each of 268
  *symbols* (204 coded bits, 64 known pilots) is the mean of ~4 cells times keyed +-1 chips.
* **Spread-transform dither modulation (STDM, a QIM).** The embedder moves every symbol to the
  nearest point of a keyed, dithered lattice (step ``DELTA``) whose coset is the bit, iterating on
  the actual output (rounding, clipping, resampling included). Unlike additive spread spectrum
  (measured: fails on textured photos even unattacked at 42 dB), QIM does not suffer from the
  image's own content; its costs are sensitivity to amplitude changes (a gain search) and to any
  change of the image content under the window (which is why the window and the precise
  geometry search matter).
* **Clamped read.** Every channel is clamped to [``READ_LOW`` x mean luminance, ``READ_HIGH``]
  (0.18 x mean, 227) before the luminance is taken, by the embedder and the detector alike. A
  brightness (x -> a x) or contrast (x -> a x + (1 - a) mean) change that clips the image maps this
  read exactly onto the read clamped at (a low + b, a high + b), as long as the clipping happens
  beyond the clamp: the content next to clipped areas (a step to white does not scale with the
  gain), which the mark is read against, is then unchanged, where an unclamped read loses it (the
  largest source of misses under brightness/contrast +20 %). The low clamp follows the mean because
  a contrast change clips dark pixels below about mean / 6; a fixed low clamp starved dark photos.
* **Saturation taper.** The mark fades out towards both clamps (channels 200..224, and 4..16 above
  the low clamp), where the read cannot see it and a brightness or contrast change would clip it,
  and the embedder drives the rest of each symbol's support harder to make up for it. Pure white or
  black areas (a product shot's background) stay untouched.
* **Synchronisation.** The detector looks for the pilots: first at shift 0 on the image as it is (an
  untranslated copy: re-encoded, resized, noisy; a tenth of the next step's time), then at all
  cyclic shifts x 4 half-cell phases x 13 gains (translations, crops at any offset); if
  that fails, under brightness and contrast hypotheses (7 factors 0.75-1.33 each, the clamp moved
  accordingly, the best two refined at the factor their pilots indicate); then centred rotations
  (-6..6 deg) and rescaled centred crops (scale 0.97-1.16, each at 5x5 shifts 1/8 sample apart: an
  odd crop margin off-centres the image by a fraction of a sample), searched on the working-grid
  luminance warped (OpenCV's bicubic, a = -0.75) and then high-passed, every geometry of a line
  search or a refining step in one batch, refined by pattern search to 1/16 deg, 0.1 % and 1/16
  sample and decoded from the luminance warped back at twice the working grid's resolution (box-reduced
  from the full resolution, or the full resolution under 4x the working grid: far less interpolation
  error than warping the working grid); and last, Pillow's default nearest-neighbour
  rotation is undone exactly (rotating an index image tells where every pixel came from) at the
  likely angles, or at every searched angle for images under 3x the working grid, where the
  rotation search's resampling is too coarse. Every candidate's gain is the best of 13 coarse gains
  (6 % apart) refined in 1 % steps around it (a third of the time of all 71 fine gains).
* **Coding and false positives.** The message (payload + 32-bit keyed HMAC check) is encoded with
  a K=7 rate-1/2 convolutional code and decoded by soft Viterbi (:mod:`.coding`), each candidate
  at its pilots' gain and, when that comes close (22+ check bits), at 4 gains around it. Without
  this key's mark, a decoded candidate passes the check with probability exactly 2**-32, and at most
  ``MAX_DECODES`` decodes are checked per image, so the false-positive rate is at most
  ``MAX_DECODES * 2**-32`` (9.3e-9) whatever the image.
* **Channels.** The mark lives in the luminance. Colour images carry it on R, G and B as 0.83,
  1.16, 0.63 per unit of luminance: half way between the same delta on every channel and the luma
  weights' proportion (the least squared error for a luminance change, but a visible green-magenta
  tint in grey areas). That is 0.92 dB more mark at the same PSNR than equal deltas (measured on a
  hard subset: 10 -> 5 missed detections), at a CIEDE2000 of ~0.5 (equal deltas ~0.3, the full
  proportion up to 0.9). JPEG's Y channel uses the luma weights too, so 4:2:0 chroma subsampling
  does not touch the mark. The taper still lowers it per channel.
* **Modes.** Any Pillow mode in, the same out: 16-bit and float modes are scaled; palette images
  are re-quantised to their palette with error diffusion (a fresh adaptive palette if theirs is too
  coarse to hold the mark); alpha is kept. Bilevel (mode '1') images cannot hold it and are refused.

numpy/scipy/Pillow/OpenCV, one core. Measured A/B against the previous release (Pillow's affine
transform and scipy's filters, one geometry per call) on one machine, 512 px: embedding 0.68x its
time, detection 0.18x for a marked image (the shift-0 read), 0.56x for a rotated one and 0.54x when
every search runs (an unmarked image); see the README for the figures.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from typing import Final

import cv2
import numpy as np
import scipy.fft
from PIL import Image

from transfigure.provenance.coding import (
    CHECK_BITS,
    MESSAGE_BITS,
    N_CODED,
    PAYLOAD_BITS,
    check_bits,
    conv_encode,
    viterbi_decode,
)
from transfigure.provenance.keys import derive, resolve_watermark_key
from transfigure.provenance.watermark.decode import DECODE_GAINS, JITTER_MIN_MATCHED, MAX_DECODES, Detection
from transfigure.provenance.watermark.layout import MIN_SIDE
from transfigure.provenance.watermark.nearest import undo_nearest_rotation as _undo_nearest_rotation
from transfigure.provenance.watermark.planes import clamped_luma as _clamped_luma
from transfigure.provenance.watermark.planes import clamped_read as _clamped_read
from transfigure.provenance.watermark.planes import read_channels as _channels
from transfigure.provenance.watermark.planes import read_clamp as _read_clamp

CELLS: Final = 32  # cells per tile side
SAMPLES_PER_CELL: Final = 2  # working pixels per cell side
TILE: Final = CELLS * SAMPLES_PER_CELL  # 64 working pixels
WORK_CELLS: Final = 64  # cells across sqrt(width * height): a ~128x128 working grid
HIGHPASS_SIGMA: Final = 1.0
WINDOW: Final = (0.6, 0.85)
#: Working grids under two tiles (images under ~128 px) hold one tile: read almost all of it.
SMALL_WINDOW: Final = (1.0, 1.5)
N_PILOTS: Final = 64
N_SYMBOLS: Final = N_CODED + N_PILOTS
#: QIM lattice step (working-grid luminance units of a symbol's average); sets the PSNR (~42.6 dB).
DELTA: Final = 14.7
#: Brightness/contrast factors read first (see _valumetric), and the re-reads that refine the best two.
VALUMETRIC_GAINS: Final = tuple(0.75 * 1.1**k for k in range(7))
VALUMETRIC_REFINES: Final = 2
COARSE_GAINS: Final = tuple(0.7 * 1.06**k for k in range(13))
#: The fine gain search: these multiples of the best coarse gain (1 % apart, reaching half way to the next).
GAIN_STEPS: Final = tuple(1.01**k for k in range(-3, 4))
ROTATIONS: Final = tuple(0.5 * k for k in range(-12, 13))
SCALES: Final = tuple(1.0 + 0.01 * k for k in range(-3, 17))
#: The rescaled-crop line search reads each scale at the 5x5 sub-sample shifts this far apart (step, reach).
SCALE_OFFSETS: Final = (0.125, 2)
#: (rotation deg, relative scale, shift samples) steps of the pattern search that refines candidates.
REFINE_STEPS: Final = ((0.25, 0.005, 0.125), (0.125, 0.0025, 0.0625), (0.0625, 0.00125, 0.0625))
#: At most this many angles are tried when undoing a nearest-neighbour rotation ...
MAX_UNDO_ANGLES: Final = 6
#: ... except for images less than this many times the working grid, where every angle of ROTATIONS is.
UNDO_ALL_BELOW: Final = 3.0
#: The decode warps the luminance box-reduced to at least this many times the working grid's resolution
#: (at 512 px: 256 px, a quarter of the full-resolution warp's time; no more misses measured).
DECODE_OVERSAMPLING: Final = 2
#: Images with more pixels are box-reduced before detection (and the nearest-rotation undo is skipped).
LARGE_PIXELS: Final = 4_000_000


# --- keyed layout ---------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class _Layout:
    """Everything the key decides: chips, cell -> symbol map, dithers, pilots, scrambler, check key."""

    check_key: bytes
    chips: np.ndarray  # (1024,) +-1
    symbol_of_cell: np.ndarray  # (1024,) in [0, N_SYMBOLS)
    cells_per_symbol: np.ndarray  # (N_SYMBOLS,)
    dither: np.ndarray  # (N_SYMBOLS,) in [0, 1): lattice offset in units of DELTA
    pilot_bits: np.ndarray  # (N_PILOTS,)
    scramble: np.ndarray  # (MESSAGE_BITS,)
    pilot_fft_conj: np.ndarray  # (N_PILOTS, CELLS, CELLS // 2 + 1): for all-shift correlation
    pilot_cells: np.ndarray  # (N_PILOTS, CELLS * CELLS): each pilot's projection over the cell values

    @property
    def pilot_dither(self) -> np.ndarray:
        return self.dither[N_CODED:]

    @property
    def pilot_sign(self) -> np.ndarray:
        return 1.0 - 2.0 * self.pilot_bits

    @functools.cached_property
    def pilot_sign32(self) -> np.ndarray:
        return self.pilot_sign.astype(np.float32)

    @functools.cached_property
    def pilot_gather(self) -> tuple[np.ndarray, np.ndarray]:
        """(index, weight), each (N_PILOTS, most cells of a pilot): each pilot's cells and their weights
        (chip / cells; 0 pads the pilots with fewer cells), so a projection is a gather, not a dense product."""
        support = [np.flatnonzero(row) for row in self.pilot_cells]
        width = max(len(cells) for cells in support)
        index = np.zeros((N_PILOTS, width), dtype=np.intp)
        weight = np.zeros((N_PILOTS, width), dtype=np.float32)
        for j, cells in enumerate(support):
            index[j, : len(cells)] = cells
            weight[j, : len(cells)] = self.pilot_cells[j, cells]
        return index, weight

    def shifted_pilots(self, bands: np.ndarray, shifts: list[tuple[float, float]]) -> np.ndarray:
        """(N_PILOTS, n bands x n shifts, band-major): each pilot's projection of each tile (given its cell
        band, (n, CELLS, CELLS)) shifted so that each shift moves to its origin (see :func:`_shifted_cells`),
        in single precision (a search, not a decode)."""
        index, weight = self.pilot_gather
        cells = _shifted_cells(bands, shifts, np.complex64)  # (n, shifts, CELLS, CELLS)
        return np.einsum("npk,pk->pn", cells.reshape(-1, CELLS * CELLS)[:, index], weight)

    @functools.cached_property
    def pilot_phase(self) -> np.ndarray:
        """(N_PILOTS, 1) float32: the pilots' dither as a phase (2 pi dither)."""
        return (2 * np.pi * self.pilot_dither).astype(np.float32)[:, None]


@functools.lru_cache(maxsize=16)
def _layout(key: bytes) -> _Layout:
    seed = int.from_bytes(derive(key, "watermark/layout"), "little")
    rng = np.random.default_rng(seed)
    n = CELLS * CELLS
    symbol_of_cell = rng.permutation(np.arange(n) % N_SYMBOLS)
    chips = rng.choice(np.array([-1.0, 1.0]), n)
    counts = np.bincount(symbol_of_cell, minlength=N_SYMBOLS).astype(np.float64)
    dither = rng.random(N_SYMBOLS)
    pilot_bits = rng.integers(0, 2, N_PILOTS).astype(np.uint8)
    scramble = rng.integers(0, 2, MESSAGE_BITS).astype(np.uint8)
    carriers = np.zeros((N_PILOTS, n))
    for j in range(N_PILOTS):
        cells = symbol_of_cell == N_CODED + j
        carriers[j, cells] = chips[cells] / counts[N_CODED + j]
    grid = carriers.reshape(N_PILOTS, CELLS, CELLS)
    return _Layout(
        check_key=derive(key, "watermark/check"),
        chips=chips,
        symbol_of_cell=symbol_of_cell,
        cells_per_symbol=counts,
        dither=dither,
        pilot_bits=pilot_bits,
        scramble=scramble,
        pilot_fft_conj=np.conj(np.fft.rfft2(grid)),
        pilot_cells=carriers,
    )


# --- the cell grid: band-limited periodic up/down sampling -------------------------------------------------
_FREQ = np.fft.fftfreq(TILE)
#: the tile spectrum's rows (and columns) that hold the cell band, and their frequencies
_BAND = np.r_[0 : CELLS // 2, TILE - CELLS // 2 : TILE]
_BAND_FREQ = _FREQ[_BAND]


def _cells(tile: np.ndarray) -> np.ndarray:
    """TILE x TILE folded tile -> CELLS x CELLS cell values (keep the cell band of the spectrum)."""
    return np.real(np.fft.ifft2(_cell_band(tile)))


_HALF: Final = CELLS // 2


def _cell_band(tile: np.ndarray) -> np.ndarray:
    """CELLS x CELLS: the cell band of a real TILE x TILE tile's spectrum (OpenCV's DFT: a third of the
    time of numpy's or scipy's at this size)."""
    spectrum = cv2.dft(np.asarray(tile, dtype=np.float64), flags=cv2.DFT_COMPLEX_OUTPUT).view(np.complex128)[..., 0]
    band = np.empty((CELLS, CELLS), dtype=np.complex128)  # the corners of the spectrum: _BAND x _BAND
    band[:_HALF, :_HALF] = spectrum[:_HALF, :_HALF]
    band[:_HALF, _HALF:] = spectrum[:_HALF, TILE - _HALF :]
    band[_HALF:, :_HALF] = spectrum[TILE - _HALF :, :_HALF]
    band[_HALF:, _HALF:] = spectrum[TILE - _HALF :, TILE - _HALF :]
    return band


def _shifted_cells(band: np.ndarray, shifts: list[tuple[float, float]], dtype: type = np.complex128) -> np.ndarray:
    """(len(shifts), CELLS, CELLS): the cell values of a tile (given its cell band, :func:`_cell_band`)
    shifted so that each shift (samples, fractional allowed) moves to its origin: a phase ramp on the band.
    Several bands (n, CELLS, CELLS) give (n, len(shifts), CELLS, CELLS)."""
    shift = np.asarray(shifts, dtype=np.float64)
    row_ramps = np.exp(2j * np.pi * shift[:, 0, None] * _BAND_FREQ).astype(dtype)
    col_ramps = np.exp(2j * np.pi * shift[:, 1, None] * _BAND_FREQ).astype(dtype)
    ramps = row_ramps[:, :, None] * col_ramps[:, None, :]
    shifted = ramps * band.astype(dtype, copy=False)[..., None, :, :]
    return scipy.fft.ifft2(shifted, overwrite_x=True).real


def _fold(values: np.ndarray) -> np.ndarray:
    """Sum an image over all tile positions (modulo TILE): a TILE x TILE array."""
    h, w = values.shape
    ph, pw = -(-h // TILE) * TILE, -(-w // TILE) * TILE
    if (ph, pw) != (h, w):
        padded = np.zeros((ph, pw), dtype=values.dtype)
        padded[:h, :w] = values
        values = padded
    return values.reshape(ph // TILE, TILE, pw // TILE, TILE).sum(axis=(0, 2))


def _wide_window(width: int, height: int) -> bool:
    """Images with a side of 64-127 px (about one tile, not upsampled) are read through the wide window."""
    return TILE <= min(width, height) < 2 * TILE


@functools.lru_cache(maxsize=64)
def _window(h: int, w: int, wide: bool = False) -> np.ndarray:
    """The centred elliptical read-out window (cosine taper from WINDOW[0] to WINDOW[1] of the half-axes).

    Embedder and detector only use what lies inside, so crops of the border and the empty corners
    of a rotated image do not change what is read. Small images (one tile) use a wider window.
    """
    inner, outer = SMALL_WINDOW if wide else WINDOW
    yy = (np.arange(h, dtype=np.float64) - (h - 1) / 2) / (h / 2)
    xx = (np.arange(w, dtype=np.float64) - (w - 1) / 2) / (w / 2)
    r = np.sqrt(yy[:, None] ** 2 + xx[None, :] ** 2)
    ramp = np.clip((outer - r) / (outer - inner), 0.0, 1.0)
    return (0.5 - 0.5 * np.cos(np.pi * ramp)).astype(np.float32)


@functools.lru_cache(maxsize=64)
def _fold_norm(h: int, w: int, wide: bool) -> float:
    """Mean window weight per tile position: folded sums are divided by it (a fixed scalar)."""
    return float(_window(h, w, wide).sum()) / (TILE * TILE)


def _fold_window(values: np.ndarray, wide: bool) -> np.ndarray:
    """The windowed residual folded onto one tile, as a weighted mean."""
    h, w = values.shape
    return _fold((values * _window(h, w, wide)).astype(np.float64)) / _fold_norm(h, w, wide)


def _symbol_values(layout: _Layout, cells: np.ndarray) -> np.ndarray:
    """Each symbol's spread-transform projection: mean of its cells times their chips."""
    weighted = cells.ravel() * layout.chips
    return np.bincount(layout.symbol_of_cell, weighted, N_SYMBOLS) / layout.cells_per_symbol


# --- image planes ----------------------------------------------------------------------------------------
def working_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) of the working grid for an image: ~WORK_CELLS cells across, >= one tile each way."""
    if min(width, height) < MIN_SIDE:
        raise ValueError(
            f"image is {width}x{height}: a watermark needs at least {MIN_SIDE}x{MIN_SIDE} pixels "
            "(robustness is specified from 256x256 up)"
        )
    cell = max(math.sqrt(width * height) / WORK_CELLS, float(SAMPLES_PER_CELL))
    cell = min(cell, min(width, height) * SAMPLES_PER_CELL / TILE)
    return (max(TILE, round(width * SAMPLES_PER_CELL / cell)), max(TILE, round(height * SAMPLES_PER_CELL / cell)))


def _resize_float(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear (antialiased when shrinking) resize of a float32 plane to (width, height)."""
    if (values.shape[1], values.shape[0]) == size:
        return values
    return np.asarray(
        Image.fromarray(values.astype(np.float32, copy=False), "F").resize(size, Image.Resampling.BILINEAR)
    )


#: scipy's gaussian_filter kernel for HIGHPASS_SIGMA (truncated at 4 sigma), computed once.
_HIGHPASS_RADIUS: Final = int(4.0 * HIGHPASS_SIGMA + 0.5)
_HIGHPASS_KERNEL: Final = np.exp(-0.5 * (np.arange(-_HIGHPASS_RADIUS, _HIGHPASS_RADIUS + 1) / HIGHPASS_SIGMA) ** 2)
_HIGHPASS_KERNEL /= _HIGHPASS_KERNEL.sum()


def _highpass(values: np.ndarray) -> np.ndarray:
    """The values minus their Gaussian blur (sigma HIGHPASS_SIGMA, reflected edges): scipy's
    ``gaussian_filter`` as OpenCV's separable filter (3x faster; the same within float rounding)."""
    blurred = cv2.sepFilter2D(values, -1, _HIGHPASS_KERNEL, _HIGHPASS_KERNEL, borderType=cv2.BORDER_REFLECT)
    return values - blurred


def _working_residual(luma: np.ndarray) -> np.ndarray:
    h, w = luma.shape
    return _highpass(_resize_float(luma, working_size(w, h)))


# --- detection --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Candidate:
    fitness: float
    rotation: float
    scale: float
    shift: tuple[float, float]  # working samples: where the tile origin sits in the folded tile
    gain: float


_COARSE_GAINS32: Final = np.asarray(COARSE_GAINS, dtype=np.float32)
_GAIN_STEPS32: Final = np.asarray(GAIN_STEPS, dtype=np.float32)


def _fitness(layout: _Layout, pilot_values: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """Mean pilot agreement per gain: pilot_values (N_PILOTS, ...) -> (n_gains, ...)."""
    rest = pilot_values.shape[1:]
    values = pilot_values.reshape(N_PILOTS, -1).astype(np.float32)
    # gains (n_gains,) apply to every column, gains (n_gains, n) one per column
    inverse = (2 * np.pi / (gains.astype(np.float64) * DELTA)).astype(np.float32).reshape(len(gains), 1, -1)
    phase = inverse * values[None]
    phase -= layout.pilot_phase  # (gains, N_PILOTS, n): 2 pi (value / (gain DELTA) - dither)
    np.cos(phase, out=phase)
    return (layout.pilot_sign32 @ phase).reshape(len(gains), *rest) / np.float32(N_PILOTS)


def _offset_grid(centre: tuple[float, float], step: float, reach: int = 1) -> list[tuple[float, float]]:
    """The (2 reach + 1)^2 shifts ``step`` apart around ``centre``, row by row."""
    offsets = [step * k for k in range(-reach, reach + 1)]
    return [(centre[0] + dy, centre[1] + dx) for dy in offsets for dx in offsets]


def _best_gains(
    layout: _Layout, bands: np.ndarray, geometries: list[tuple[float, float]], shifts: list[tuple[float, float]]
) -> list[list[_Candidate]]:
    """Per band (each read at its geometry, (rotation, scale)) and shift, the candidate at its best gain:
    the best of the coarse gains (6 % apart), then 1 % steps around it."""
    # pilot projections of each shifted tile (single precision: a search, not a decode)
    pilots = layout.shifted_pilots(bands, shifts)
    coarse = _COARSE_GAINS32[np.argmax(_fitness(layout, pilots, _COARSE_GAINS32), axis=0)]  # (columns,)
    gains = np.multiply.outer(_GAIN_STEPS32, coarse)  # (steps, columns)
    fit = _fitness(layout, pilots, gains)
    best = np.argmax(fit, axis=0)
    cols = np.arange(fit.shape[1])
    fitness = fit[best, cols].reshape(len(bands), len(shifts)).tolist()
    gain = gains[best, cols].reshape(len(bands), len(shifts)).tolist()
    return [
        [_Candidate(f, rotation, scale, t, g) for f, g, t in zip(fs, gs, shifts)]
        for (rotation, scale), fs, gs in zip(geometries, fitness, gain)
    ]


def _best_shifts(
    layout: _Layout,
    bands: np.ndarray,
    shifts: list[tuple[float, float]],
    geometries: list[tuple[float, float]] | None = None,
) -> list[_Candidate]:
    """Per band, its best candidate over ``shifts`` (see :func:`_best_gains`; unwarped bands by default)."""
    found = _best_gains(layout, bands, geometries or [(0.0, 1.0)] * len(bands), shifts)
    return [max(cands, key=lambda c: c.fitness) for cands in found]


class _Search:
    """Pilot search over shifts, gains and centred rotations/scales of one image's working residual."""

    def __init__(self, layout: _Layout, residual: np.ndarray, wide: bool, luma: np.ndarray | None = None) -> None:
        self.layout = layout
        self.wide = wide
        self.residual = residual.astype(np.float32)
        #: the working-grid luminance the residual was high-passed from: warped before the high-pass
        self.luma = luma
        self.h, self.w = residual.shape
        self._bands: dict[tuple[float, float], np.ndarray] = {}

    # geometry ------------------------------------------------------------------------------------------
    @functools.cached_property
    def unwarped_tile(self) -> np.ndarray:
        """The folded (windowed) residual as it is."""
        return _fold_window(self.residual, self.wide)

    def band(self, rotation: float, scale: float) -> np.ndarray:
        """Cell band of the folded (windowed) residual warped back by (rotation, scale) about the centre."""
        key = (round(rotation, 6), round(scale, 6))
        if key not in self._bands:
            if rotation == 0.0 and scale == 1.0:
                tile = self.unwarped_tile
            else:  # warp the luminance, then high-pass: far less interpolation error than warping the residual
                if self.luma is None:
                    raise ValueError("a warped read needs the working-grid luminance (_Search(..., luma=...))")
                # (only the part the window reads, and the high-pass's reach around it: identical there)
                y0, y1, x0, x1 = _window_box(self.h, self.w, self.wide)
                values = np.zeros((self.h, self.w), dtype=np.float32)
                values[y0:y1, x0:x1] = _highpass(_warp_plane(self.luma, rotation, scale, (x0, y0, x1, y1)))
                tile = _fold_window(values, self.wide)
            self._bands[key] = _cell_band(tile)
        return self._bands[key]

    def bands(self, geometries: list[tuple[float, float]]) -> np.ndarray:
        """(len(geometries), CELLS, CELLS): :meth:`band` at each (rotation, scale)."""
        return np.stack([self.band(rotation, scale) for rotation, scale in geometries])

    def candidates(self, rotation: float, scale: float, shifts: list[tuple[float, float]]) -> list[_Candidate]:
        """Candidates (best pilot fitness over the gains: coarse, then 1 % steps) at one geometry and several shifts."""
        return self.evaluate([(rotation, scale)], shifts)[0]

    def evaluate(
        self, geometries: list[tuple[float, float]], shifts: list[tuple[float, float]]
    ) -> list[list[_Candidate]]:
        """:meth:`candidates` at several (rotation, scale) geometries (the same shifts at each) in one batch:
        one transform and one fitness for all of them (the per-call overheads were a third of the search's time)."""
        return _best_gains(self.layout, self.bands(geometries), geometries, shifts)

    def candidate(self, rotation: float, scale: float, shift: tuple[float, float]) -> _Candidate:
        return self.candidates(rotation, scale, [shift])[0]

    # searches ------------------------------------------------------------------------------------------
    def all_shifts(self, n_best: int) -> list[_Candidate]:
        """The unwarped image: every cyclic shift (1024 cells x 4 half-cell phases) x coarse gains."""
        tile = self.unwarped_tile
        found: list[tuple[float, float, float]] = []
        for py in (0, 1):
            for px in (0, 1):
                cells = _cells(np.roll(tile, (-py, -px), axis=(0, 1)))
                corr = np.fft.irfft2(np.fft.rfft2(cells)[None] * self.layout.pilot_fft_conj, s=(CELLS, CELLS))
                best = _fitness(self.layout, corr, _COARSE_GAINS32).max(axis=0).ravel()
                for idx in np.argsort(best)[::-1][:n_best]:
                    sy, sx = divmod(int(idx), CELLS)
                    found.append(
                        (float(best[idx]), float(sy * SAMPLES_PER_CELL + py), float(sx * SAMPLES_PER_CELL + px))
                    )
        found.sort(reverse=True)
        return [self.refine(self.candidate(0.0, 1.0, (dy, dx)), geometry=False) for _, dy, dx in found[:n_best]]

    def best_offset(
        self, rotation: float, scale: float, centre: tuple[float, float], step: float, reach: int = 1
    ) -> _Candidate:
        """The best of the (2 reach + 1)^2 sub-sample shifts around ``centre`` (spacing ``step``)."""
        return self.best_offsets([(rotation, scale)], centre, step, reach)[0]

    def best_offsets(
        self, geometries: list[tuple[float, float]], centre: tuple[float, float], step: float, reach: int = 1
    ) -> list[_Candidate]:
        """:meth:`best_offset` at each (rotation, scale), in one batch."""
        return _best_shifts(self.layout, self.bands(geometries), _offset_grid(centre, step, reach), geometries)

    def line_searches(self, n_best: int) -> list[_Candidate]:
        """Centred rotations at scale 1 and centred rescaled crops at rotation 0, each at 9 sub-sample offsets."""
        cands = self.best_offsets([(r, 1.0) for r in ROTATIONS if r != 0.0], (0.0, 0.0), 0.25)
        # a crop of an odd number of pixels off-centres the rescaled image by a fraction of a sample, and
        # the pilots only show within ~1/16 sample of it on a photo with little room for the mark
        cands += self.best_offsets([(0.0, s) for s in SCALES if s != 1.0], (0.0, 0.0), *SCALE_OFFSETS)
        cands.sort(key=lambda c: c.fitness, reverse=True)
        return cands[:n_best]

    def refine(self, cand: _Candidate, geometry: bool = True) -> _Candidate:
        """Pattern search: halve the steps of rotation, scale and sub-sample shift while the fitness improves."""
        best = cand
        for step_r, step_s, step_t in REFINE_STEPS:
            geometries = [(best.rotation, best.scale)]
            if geometry:
                geometries += [
                    (best.rotation + step_r, best.scale),
                    (best.rotation - step_r, best.scale),
                    (best.rotation, best.scale * (1 + step_s)),
                    (best.rotation, best.scale * (1 - step_s)),
                ]
            best = max([best, *self.best_offsets(geometries, best.shift, step_t)], key=lambda c: c.fitness)
        return best

    # decoding ------------------------------------------------------------------------------------------
    def decode(self, cand: _Candidate) -> tuple[bool, np.ndarray, int, int]:
        """(check passed, payload bits, check bits matched, coded bit errors) for one candidate."""
        lay = self.layout
        values = _symbol_values(lay, _shifted_cells(self.band(cand.rotation, cand.scale), [cand.shift])[0])
        soft = np.cos(2 * np.pi * (values[:N_CODED] / (cand.gain * DELTA) - lay.dither[:N_CODED]))
        message = viterbi_decode(soft, MESSAGE_BITS) ^ lay.scramble
        payload_bits, got_check = message[:PAYLOAD_BITS], message[PAYLOAD_BITS:]
        matched = int(np.sum(check_bits(lay.check_key, payload_bits) == got_check))
        recoded = 1.0 - 2.0 * conv_encode(message ^ lay.scramble)
        bit_errors = int(np.sum(np.sign(soft) != recoded))
        return matched == CHECK_BITS, payload_bits, matched, bit_errors


def _undo_angles(estimates: list[float]) -> list[float]:
    """Angles worth undoing: each rotation estimate and the multiples of 0.5 deg within 0.6 deg of it."""
    angles: list[float] = []
    for r in estimates:
        if abs(r) < 0.4:
            continue
        nearby = [k / 2 for k in range(math.ceil((r - 0.6) * 2), math.floor((r + 0.6) * 2) + 1) if k != 0]
        for a in [*nearby, r]:
            if all(abs(a - b) > 0.01 for b in angles):
                angles.append(a)
    return angles[:MAX_UNDO_ANGLES]


def _binomial_tail(n: int, k: int) -> float:
    """P(Binomial(n, 1/2) >= k)."""
    return sum(math.comb(n, i) for i in range(k, n + 1)) / 2.0**n


def detect_watermark(
    image: Image.Image,
    key: bytes | None = None,
    searches: bool = True,
    read: tuple[np.ndarray, float, np.ndarray] | None = None,
) -> Detection:
    """Look for a watermark of ``key`` (default: ``$TRANSFIGURE_WATERMARK_KEY`` / development key).
    ``searches=False`` stops after the untranslated, translated and brightness/contrast reads (the
    rotation and rescaled-crop searches are skipped: a quarter of the worst-case time). ``read``: the
    image's channels, mean and clamped luminance (``planes.read_channels`` and ``clamped_read``) when the
    caller has them (used unless the image is reduced first).

    Survives re-encoding (JPEG, WebP), resizing, noise, brightness/contrast changes, translations,
    centred rotations up to +-6 deg and centred crops rescaled to the original size (scale up to
    1.16). ``detected`` is True only when the keyed check matches; see :class:`Detection` for the
    statistics. Images over ``LARGE_PIXELS`` are box-reduced first (the working grid is ~128 px).

    Raises:
        ValueError: the image is smaller than 32x32.
    """
    key = resolve_watermark_key(key)
    layout = _layout(key)
    work = working_size(image.width, image.height)
    large = image.width * image.height > LARGE_PIXELS
    if read is not None and not large:
        channels, mean, luma = read
    else:
        channels = _channels(_reduced(image) if large else image)
        mean, luma = _clamped_read(channels)
    wide = _wide_window(image.width, image.height)
    work_luma = _resize_float(luma, work)
    search = _Search(layout, _highpass(work_luma), wide, work_luma)
    decoded: list[tuple[_Candidate, bool, np.ndarray, int, int]] = []

    tried: set[tuple[int, float, float, tuple[float, float], float]] = set()

    def try_candidates(searcher: _Search, cands: list[_Candidate], geometry: tuple[float, float] | None = None) -> bool:
        for cand in cands:
            for factor in DECODE_GAINS:  # the pilots' gain is an estimate: decode at a few around it
                if len(decoded) >= MAX_DECODES:
                    return False
                trial = replace(cand, gain=cand.gain * factor)
                key = (id(searcher), trial.rotation, trial.scale, trial.shift, round(trial.gain, 9))
                if key in tried:  # (the unmoved read below is often also the all-shift search's best)
                    break
                tried.add(key)
                ok, bits, matched, errors = searcher.decode(trial)
                if geometry is not None:  # read after undoing a warp (rotation, scale): report the warp
                    trial = replace(trial, rotation=geometry[0], scale=geometry[1])
                decoded.append((trial, ok, bits, matched, errors))
                if ok:
                    return True
                if factor == 1.0 and matched < JITTER_MIN_MATCHED:
                    break  # nowhere near: not worth the other gains
        return False

    # the image as it was marked (not translated: the usual case of a generated image that was re-encoded,
    # resized, brightened or made noisy) is read first, at shift 0 only: a tenth of the all-shift search
    if try_candidates(search, [search.candidate(0.0, 1.0, (0.0, 0.0))]):
        return _result(decoded)
    first = search.all_shifts(n_best=2)
    if try_candidates(search, first):
        return _result(decoded)
    # a brightness or contrast change that clipped: read again with the clamp moved where it took the read's
    if try_candidates(*_valumetric(layout, channels, mean, work, wide, first)) or not searches:
        return _result(decoded)
    coarse = search.line_searches(n_best=3)

    @functools.cache
    def decode_luma() -> np.ndarray:
        factor = int(min(image.width / work[0], image.height / work[1]) // DECODE_OVERSAMPLING)
        return luma if factor < 2 else np.asarray(Image.fromarray(luma, "F").reduce(factor))

    def decode_warped(cand: _Candidate) -> bool:
        if large:
            return try_candidates(search, [cand])
        # decode the geometry from the luma warped back at (at least) twice the working grid's
        # resolution: much less interpolation error than warping the working grid
        warped = _Search(layout, _working_residual(_warp_plane(decode_luma(), cand.rotation, cand.scale)), wide)
        refined = warped.refine(warped.best_offset(0.0, 1.0, cand.shift, 0.25), geometry=False)
        return try_candidates(warped, [refined], (cand.rotation, cand.scale))

    # the best line-search candidate first (usually the geometry: the others are refined only if it fails),
    # then the better of the other two refined
    cands = [search.refine(coarse[0])]
    if decode_warped(cands[0]):
        return _result(decoded)
    cands.append(max((search.refine(c) for c in coarse[1:]), key=lambda c: c.fitness))
    if decode_warped(cands[1]) or large:
        return _result(decoded)
    # maybe a nearest-neighbour rotation (Pillow's default): undo it exactly at likely angles, read again
    screened: list[tuple[_Candidate, float, _Search]] = []
    angles = _undo_angles([c.rotation for c in cands] + [c.rotation for c in coarse])
    if max(image.width / work[0], image.height / work[1]) < UNDO_ALL_BELOW:
        # on a working grid reduced less than this the line search's resampling is too coarse: screen every angle
        angles = [*angles, *(r for r in ROTATIONS if r != 0.0 and all(abs(r - a) > 0.01 for a in angles))]
    restored = [_Search(layout, _working_residual(_undo_nearest_rotation(luma, angle)), wide) for angle in angles]
    if restored:  # screened in one batch: the best of 3x3 sub-sample shifts of each
        bands = np.stack([searcher.band(0.0, 1.0) for searcher in restored])
        screened = list(zip(_best_shifts(layout, bands, _offset_grid((0.0, 0.0), 0.25)), angles, restored))
    for cand, angle, searcher in sorted(screened, key=lambda t: t[0].fitness, reverse=True)[:2]:
        if try_candidates(searcher, [searcher.refine(cand, geometry=False)], (angle, 1.0)):
            break
    return _result(decoded)


def _valumetric(
    layout: _Layout, channels: np.ndarray, mean: float, work: tuple[int, int], wide: bool, first: list[_Candidate]
) -> tuple[_Search, list[_Candidate]]:
    """The best read under a brightness (x -> a x) or contrast (x -> a x + (1 - a) mean) change.

    A change that clipped part of the image leaves the read exact only if the read clamps where the
    change took the embedder's clamp: (a low + b, a high + b). Both hypotheses are screened on a coarse
    grid of factors ``a`` at shift 0 and the first read's best shifts; the two best are refined by
    re-reading (at full resolution) at the factor their pilots indicate (the gain), which is exact once
    the clamp is right.
    """
    shifts = list(dict.fromkeys([(0.0, 0.0), *(c.shift for c in first)]))  # an untranslated image, or where sync was

    def clamp(a: float, contrast: bool) -> tuple[float, float]:
        # brightness: the mean was scaled by a; contrast: the mean stayed and b = (1 - a) mean
        original_mean, b = (mean, (1.0 - a) * mean) if contrast else (mean / a, 0.0)
        low, high = _read_clamp(original_mean)
        return (a * low + b, a * high + b)

    # the coarse grid is screened on the channels resized to the working grid, then clamped (nearly
    # the same read, at a fraction of the cost), all hypotheses in one batch
    small = np.stack(
        [_resize_float(np.ascontiguousarray(channels[..., c]), work) for c in range(channels.shape[2])], axis=-1
    )
    hypotheses = [(a, contrast) for a in VALUMETRIC_GAINS for contrast in (False, True)]
    bands = np.stack(
        [
            _cell_band(_fold_window(_highpass(_clamped_luma(small, clamp(a, contrast))), wide))
            for a, contrast in hypotheses
        ]
    )
    coarse = sorted(zip(_best_shifts(layout, bands, shifts), hypotheses), key=lambda t: t[0].fitness, reverse=True)

    def read(a: float, contrast: bool) -> tuple[_Candidate, _Search]:
        # the refining re-reads clamp at full resolution
        searcher = _Search(layout, _highpass(_resize_float(_clamped_luma(channels, clamp(a, contrast)), work)), wide)
        return max(searcher.candidates(0.0, 1.0, shifts), key=lambda c: c.fitness), searcher

    best: tuple[_Candidate, _Search] | None = None
    for cand, (_, contrast) in coarse[:2]:
        for _ in range(VALUMETRIC_REFINES):
            cand, searcher = read(cand.gain, contrast)
            if best is None or cand.fitness > best[0].fitness:
                best = (cand, searcher)
    assert best is not None
    cand, searcher = best
    return searcher, [searcher.refine(cand, geometry=False)]


def _warp_plane(
    values: np.ndarray, rotation: float, scale: float, box: tuple[int, int, int, int] | None = None
) -> np.ndarray:
    """Sample a plane at centre + scale * R(rotation) (u - centre) for every output pixel u (bicubic,
    OpenCV's Keys kernel a = -0.75; edges replicated), or only for the pixels of ``box`` = (left, top,
    right, bottom). Pixel u's centre is u + 0.5; the centre is (w / 2, h / 2)."""
    h, w = values.shape
    x0, y0, x1, y1 = box or (0, 0, w, h)
    theta = math.radians(rotation)
    c, s = scale * math.cos(theta), scale * math.sin(theta)
    a, b, d, e = c, s, -s, c  # x_in = a x + b y + ..., y_in = d x + e y + ... (x = column)
    cx, cy = w / 2.0, h / 2.0
    # output pixel (x, y) of the box has its centre at (x0 + x + 0.5, y0 + y + 0.5); OpenCV indexes pixel centres
    tx = cx + a * (x0 + 0.5 - cx) + b * (y0 + 0.5 - cy) - 0.5
    ty = cy + d * (x0 + 0.5 - cx) + e * (y0 + 0.5 - cy) - 0.5
    matrix = np.array([[a, b, tx], [d, e, ty]], dtype=np.float64)
    return cv2.warpAffine(
        values.astype(np.float32, copy=False),
        matrix,
        (x1 - x0, y1 - y0),
        flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )


@functools.lru_cache(maxsize=64)
def _window_box(h: int, w: int, wide: bool) -> tuple[int, int, int, int]:
    """(top, bottom, left, right): the window's support plus the high-pass's reach (its kernel radius)."""
    reach = _HIGHPASS_RADIUS
    rows, cols = np.nonzero(_window(h, w, wide))
    return (
        max(0, int(rows.min()) - reach),
        min(h, int(rows.max()) + 1 + reach),
        max(0, int(cols.min()) - reach),
        min(w, int(cols.max()) + 1 + reach),
    )


def _reduced(image: Image.Image) -> Image.Image:
    """A large image box-reduced to at most ~LARGE_PIXELS (the detector only needs the working grid)."""
    factor = math.ceil(math.sqrt(image.width * image.height / LARGE_PIXELS))
    if image.mode in ("P", "1", "PA", "La", "LAB"):
        image = image.convert("RGBA" if "A" in image.mode else "RGB")
    return image.reduce(factor)


def _result(decoded: list[tuple[_Candidate, bool, np.ndarray, int, int]]) -> Detection:
    n = max(1, len(decoded))
    cand, ok, bits, matched, errors = max(decoded, key=lambda d: (d[1], d[3], d[0].fitness))
    p_value = min(1.0, n * _binomial_tail(CHECK_BITS, matched))
    raw = np.packbits(bits).tobytes()
    return Detection(
        detected=ok,
        payload=raw if ok else None,
        bit_errors=errors,
        p_value=p_value,
        confidence=1.0 - p_value,
        check_bits_matched=matched,
        candidates=len(decoded),
        pilot_score=round(cand.fitness, 4),
        rotation_deg=round(cand.rotation, 3),
        scale=round(cand.scale, 4),
        shift=cand.shift,
        gain=round(cand.gain, 4),
        scheme="legacy-v1",
        raw_payload=raw,
    )
