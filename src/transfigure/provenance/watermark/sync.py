"""Synchronisation: finding where the original's lattice lies in the image being checked.

A *geometry* (:class:`~.read.Geometry`) says where every lattice point of the original is in the image:
a 2x2 matrix (a cell step along the lattice's columns and rows, in image pixels: flips, quarter turns,
rotations and rescaling are just other matrices) and the first point's position. The read of
:mod:`.read` is exact for any geometry, so the search only has to find it; the pilots (96 known bits in
every tile) score a candidate by their *fitness* (1 = every pilot on its lattice, ~0 = chance), reported
as *z*, standard deviations of chance for that many pilot instances.

The search is a cascade of families, the likeliest edits first, each screening cheaply and handing only
candidates that stand out from chance (z >= Z_DECODE) to the decoder, which stops at the first keyed
check that matches:

1. **identity**: the image as it was marked (re-encoded, resized back, noisy), at gain 1, then the best
   gain; then **valumetric**: brightness and contrast hypotheses, the read's clamp moved to match
   (screened on the central quarter, the best two refined on the whole);
2. **crop** (and flips, quarter turns): for each cell size a crop kept at its size can have (this image's
   own to twice it, see :func:`crop_cells`), *every* translation at once: the channel values on a dense
   grid (every image pixel for cells of 3-8 px: the pilots show only within ~1/16 cell) are turned into
   phasors exp(2 pi i v / DELTA), folded onto one tile (a crop at any offset is a cyclic shift of it) and
   correlated with the pilot template by FFT; the 8 flips and quarter turns are the same fold read the
   other way round, derived from its one FFT (:func:`_oriented_spectrum`);
3. **resized**: the whole picture resized from a common original size (multiples of 32 to 1024, of 64 to
   2048; the other side a multiple of 8 that rounds to this aspect where one does), keeping its aspect,
   squashed from a square or (a non-square picture) with one side resized from a common aspect: each size
   fixes the lattice (edges stay edges), screened on a central region (28 cells, at least 72 px); as marked,
   and flipped or turned a quarter (screened on a smaller region, the likeliest few again on the full one);
4. **rotated**: the flat corners a rotation leaves give its angle (:func:`.cues.rotation_fill`); a
   translation screen on the turned lattice (flipped or turned a quarter as well: the fill tells the angle
   modulo 90 degrees), and for Pillow's default nearest-neighbour rotation the rotation undone exactly
   (:mod:`.nearest`), from the whole picture size that gives the canvas; then, for a rotation resized
   after (the fill's sides no longer tell the cell), each common original size (on an expanded canvas:
   those of the fill's picture's aspect whose canvas, resized, is the image), a pitch scan at the fill's
   angle (from the picture's own cell), and the nearest-neighbour undo after resizing back to the
   likeliest canvases; each original size in the 8 orientations (flipped or turned a quarter first);
5. **content box**: a picture inside a uniform border (padding, a screenshot, letterbox or pillarbox
   bars), resized: the border's edges where the pixels leave its colour (the cue is cheap and specific,
   so it runs before the scans);
6. **upscaled**: a crop enlarged by a factor its interpolation shows (:func:`.cues.upscale_factors`),
   or by 2: the original pixels lie every ``factor`` pixels, so a translation screen on that grid (on a
   central window) finds any whole-pixel crop offset, for each cell size the original can have had, in the
   8 orientations (a flipped or turned crop enlarged); **halved** (images up to SWEEP_AREA): the same for a crop made half its size, mirrored or not;
7. **scaled**: a crop resized by a factor nothing in the image shows (made smaller, or enlarged without
   an interpolation period): a scan of the lattice pitch in 2.5 % steps, each pitch screened for every
   translation on a central window of 36 cells (small enough that the screen holds to ~1.25 % of scale), the
   two likeliest checked in 0.4 % steps on a larger central region and refined on the whole image;
8. **turned crop**: turned in its own frame and cropped so that no fill is left, then re-encoded (no cue
   gives the angle): the same window screen at every whole degree to 15 each way (it holds to ~0.35
   degree), checked and refined like the scaled family's; a nearest-neighbour rotation cropped about its
   centre undone at the two likeliest angles (:func:`_centre_cropped`);
9. **straightened**: turned about the centre and cropped to the largest upright rectangle inside (kept
   at that size or rescaled), or turned in its own frame, or on an expanded canvas: for every angle to
   16 degrees in 0.4-degree steps the lattice follows (a crop's box at whole pixels, as Pillow takes it),
   screened on a central region; the likeliest few again on a larger one, the best checked at finer
   angles and a pixel each way, and refined; nearest-neighbour rotations undone at the angle the pixels
   copied twice give (:func:`.cues.nearest_rotation`), then at those the screen and the resampling trace
   suggest.

Every candidate decoded counts towards MAX_DECODES, so the false-positive bound holds whatever the search
tries. What the families cannot find, on images larger than SWEEP_AREA (the scans' time is kept for the
small ones, whose other searches are cheap): a crop resized by an unseen factor outside the pitch scan's
range (crops keeping less than ~70 %), and above MIRROR_AREA one mirrored as well. At any size: a rotation
cropped to no fill and re-encoded (JPEG hides the resampling) by an angle more than ~0.35 degree from a whole one; and within its
range, the pitch scan finds a textured photo only where its steps happen to fall within ~0.3 % of the pitch
and an eighth of a cell of the lattice (``benchmarks/watermark_misses.py --sweep``).
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass, field, replace
from typing import Final

import cv2
import numpy as np
import scipy.fft
from PIL import Image

from transfigure.provenance.coding import CHECK_BITS
from transfigure.provenance.keys import resolve_watermark_key
from transfigure.provenance.watermark import cues, nearest
from transfigure.provenance.watermark import legacy as legacy_watermark
from transfigure.provenance.watermark import planes as pl
from transfigure.provenance.watermark.decode import (
    DECODE_GAINS,
    JITTER_MIN_MATCHED,
    MAX_DECODES,
    Decoded,
    Detection,
    binomial_tail,
    decode,
    fitness,
)
from transfigure.provenance.watermark.layout import (
    CELL_SIZES,
    CELLS_ACROSS,
    CHANNELS,
    DELTA,
    TILE,
    Layout,
    cell_size,
    layout,
)
from transfigure.provenance.watermark.read import (
    Geometry,
    Planes,
    Reading,
    band_planes,
    block_channels,
    block_offset,
    block_weights,
    level,
    read,
)

__all__ = ["detect_watermark", "read_identity"]

#: Gains the identity read is screened at (brightness/contrast change the mark's amplitude).
GAINS: Final = np.array([0.7 * 1.03**k for k in range(22)])


@dataclass(frozen=True)
class Candidate:
    geometry: Geometry
    gain: float
    fitness: float
    family: str
    #: the fitness in standard deviations of chance (fitness x sqrt(2 x the pilots' total weight))
    z: float = 0.0
    #: the image as read for this candidate when it is not the one checked (a clamp moved for a
    #: brightness change, a nearest-neighbour rotation undone)
    source: Source | None = field(default=None, compare=False, repr=False)
    #: the geometry in the checked image's pixels, when ``source`` is a rotation undone (what is reported)
    reported: Geometry | None = field(default=None, compare=False, repr=False)
    #: the offset (image pixels) a screen's samples skipped between them where they are sparser than the
    #: offsets it must tell apart (the refine tries it each way); 0 when it sampled every one
    spacing: float = 0.0


#: Screening reads band-pass for cell sizes in steps of this much (log scale): see Source.planes.
COARSE_STEP: Final = 0.05


class Source:
    """The image being checked, as the read needs it: clamped luminance, taper, and band-passed planes
    per cell size (cached: a search reads many geometries at the same scale)."""

    def __init__(
        self, luma: np.ndarray, taper: np.ndarray, channels: np.ndarray | None = None, mean: float | None = None
    ) -> None:
        self.luma, self.taper, self.channels = luma, taper, channels
        self.mean = float(luma.mean()) if mean is None else mean
        self.height, self.width = self.luma.shape
        self._planes: dict[tuple[int, int, float], Planes] = {}
        self._pyramid: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    @classmethod
    def of(cls, channels: np.ndarray) -> Source:
        """The image's own read (clamp at its own mean)."""
        mean, luma = pl.clamped_read(channels)
        return cls(luma, pl.taper_luma(channels, pl.read_clamp(mean)), channels, mean)

    def undone(self, a: float, b: float) -> Source:
        """The read of the image a change x -> a x + b (brightness: b = 0; contrast: b = (1 - a) mean) was
        made from: the clamp mapped where the change took the original's (exact where it clipped beyond
        the clamp), and the taper of the original's values (what the embedder could mark)."""
        assert self.channels is not None
        low, high = pl.read_clamp((self.mean - b) / a)
        return Source(
            pl.clamped_luma(self.channels, (a * low + b, a * high + b)),
            pl.taper_luma(self.channels, (low, high), change=(a, b)),
            self.channels,
            self.mean,
        )

    def planes(self, cell_x: float, cell_y: float, coarse: bool = False) -> Planes:
        """The read's planes for cells of this size (cached to 0.25 %; ``coarse``: band-passed for the
        nearest size in steps of COARSE_STEP (5 %), which changes a read by several % of DELTA: enough to
        screen many hypotheses of nearby scales without filtering the image for each)."""
        step = COARSE_STEP if coarse else 0.0025
        k = (round(math.log(cell_x) / step), round(math.log(cell_y) / step), step)
        if k not in self._planes:
            if coarse:
                cell_x, cell_y = math.exp(k[0] * step), math.exp(k[1] * step)
            self._planes[k] = band_planes(self.luma, self.taper, cell_x, cell_y, self._pyramid)
        return self._planes[k]

    def planes_around(
        self, cell_x: float, cell_y: float, xs: np.ndarray, ys: np.ndarray, windows: Windows | None = None
    ) -> tuple[Planes, tuple[int, int]]:
        """Coarse planes (see :meth:`planes`) for reading at image positions ``xs``, ``ys``, and the image
        position of their first pixel: band-passed over just the window the positions need when that is
        well under the whole image (a screen of central regions; kept in ``windows``, where a later screen
        of a region inside it reuses them), else the whole image's, cached."""
        lv = level(cell_x, cell_y)
        unit = 2**lv
        margin = 3.0 * max(cell_x, cell_y) + 4 * unit  # the band-pass's reach, and the pyramid's
        x0 = max(0, int(math.floor((float(xs.min()) - margin) / unit)) * unit)
        y0 = max(0, int(math.floor((float(ys.min()) - margin) / unit)) * unit)
        x1 = min(self.width, int(math.ceil(float(xs.max()) + margin)))
        y1 = min(self.height, int(math.ceil(float(ys.max()) + margin)))
        if (x1 - x0) * (y1 - y0) > 0.6 * self.width * self.height:
            return self.planes(cell_x, cell_y, coarse=True), (0, 0)
        if windows is not None:
            for (wx0, wy0, wx1, wy1), planes in windows.get((cell_x, cell_y), []):
                if wx0 <= x0 and wy0 <= y0 and x1 <= wx1 and y1 <= wy1:
                    return planes, (wx0, wy0)
        planes = band_planes(self.luma[y0:y1, x0:x1], self.taper[y0:y1, x0:x1], cell_x, cell_y)
        if windows is not None:
            windows.setdefault((cell_x, cell_y), []).append(((x0, y0, x1, y1), planes))
        return planes, (x0, y0)

    def read(self, geometry: Geometry) -> Reading:
        return read(self.planes(*geometry.cell_sizes), geometry)

    @functools.cached_property
    def plain(self) -> np.ndarray:
        """The luminance without the read's clamp, for the cues that read a resampling's trace: the clamp
        flattens bright and dark areas into plateaus whose edges outrank the trace (a crop enlarged by 1.11
        at 256 px: the factor among the readings for 96 of the benchmark's 102 photos clamped, 99 plain)."""
        return self.luma if self.channels is None else pl.clamped_luma(self.channels, None)


#: Band-passed windows by the (coarse) cell size they were band-passed for: ((x0, y0, x1, y1), planes) each
#: (see Source.planes_around; a screen asks for its groups' cell sizes, the same floats each time).
Windows = dict[tuple[float, float], list[tuple[tuple[int, int, int, int], Planes]]]


@functools.lru_cache(maxsize=16)
def _template_fft(lay: Layout, spc: int) -> tuple[np.ndarray, np.ndarray]:
    """FFTs of the pilot template and of the pilot mask laid out on a sample grid of ``spc`` samples per
    cell, the mask's in each of the 8 orientations of :data:`_ORIENTATIONS` (see :func:`_oriented_norms`;
    half spectra of real FFTs; single precision: the weights it sums are good to ~1e-7 of their total and
    the screen only ranks and thresholds them)."""
    period = 2 * TILE * spc
    template = np.zeros((CHANNELS, period, period), dtype=np.complex128)
    template[:, :: 2 * spc, :: 2 * spc] = lay.pilot_template
    mask = np.zeros((period, period))
    mask[:: 2 * spc, :: 2 * spc] = np.abs(lay.pilot_sign).sum(axis=-1)
    masks = []
    for transpose, flip_rows, flip_cols in _ORIENTATIONS:
        oriented = _reversed(mask, 0) if flip_rows else mask
        oriented = _reversed(oriented, 1) if flip_cols else oriented
        masks.append(np.conj(np.fft.rfft2(oriented.T if transpose else oriented)))
    template_fft = np.conj(np.fft.fft2(np.conj(template))).astype(np.complex64)
    return template_fft, np.ascontiguousarray(np.stack(masks), np.complex64)


def _oriented_norms(
    weight_fold: np.ndarray, mask_ffts: np.ndarray, shape: tuple[int, int], orientations: tuple
) -> np.ndarray:
    """The pilots' total weight at each translation of a dense grid of ``shape`` read in each orientation:
    the folded weights W correlated with the pilot mask M. Read the other way round, W's translation t is
    W's own at S(phi(t)) (see :func:`_oriented_weight`: phi reverses the flipped axes, S transposes), so
    its correlation with M is W's with M oriented (M(eps S(y)), eps = -1 on the flipped axes) at S(phi(t)):
    one forward FFT for all 8."""
    index = [_ORIENTATIONS.index(o) for o in orientations]
    spectrum = scipy.fft.rfft2(weight_fold)
    period = weight_fold.shape[0]
    correlated = scipy.fft.irfft2(spectrum[None] * mask_ffts[index], s=(period, period))
    return np.stack([_oriented_weight(c, shape, *o) for c, o in zip(correlated, orientations)])


def _fold(field: np.ndarray, period: int) -> np.ndarray:
    """Sum a plane (h, w) over all positions modulo ``period`` (as if zero padded to whole periods): the
    whole bands of rows first (a contiguous sum), then the columns of that, no padded copy."""
    h, w = field.shape
    whole_rows, whole_cols = h // period * period, w // period * period
    if whole_rows:
        rows = field[:whole_rows].reshape(-1, period, w).sum(axis=0)
    else:
        rows = np.zeros((period, w), field.dtype)
    if h > whole_rows:
        rows[: h - whole_rows] += field[whole_rows:]
    if whole_cols:
        out = rows[:, :whole_cols].reshape(period, -1, period).sum(axis=1)
    else:
        out = np.zeros((period, period), field.dtype)
    if w > whole_cols:
        out[:, : w - whole_cols] += rows[:, whole_cols:]
    return out


#: The 8 flips and quarter turns as operations on a dense grid: (transpose, flip rows, flip columns).
_ORIENTATIONS: Final = tuple((t, fr, fc) for t in (False, True) for fr in (False, True) for fc in (False, True))


def _reversed(spectrum: np.ndarray, axis: int) -> np.ndarray:
    """X[-k] along ``axis`` (the spectrum of the reversed sequence, up to a phase)."""
    negated = (-np.arange(spectrum.shape[axis])) % spectrum.shape[axis]
    return spectrum[negated] if axis == 0 else spectrum[:, negated]


def _oriented_spectrum(
    spectrum: np.ndarray, shape: tuple[int, int], transpose: bool, flip_rows: bool, flip_cols: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 2-D FFTs (H, V, D; each P x P) of the folded channel phasors of a dense grid (channel arrays of ``shape``)
    read the other way round, from the FFT of its own folds. A flip reverses the grid (on the fold: a
    reversal and a roll by the grid's length modulo the period: the spectrum reversed and turned in phase)
    and negates the channels whose chips it reverses (a conjugate phasor: the spectrum conjugated and
    reversed on both axes); a transpose swaps H and V."""
    h, v, d = spectrum
    rows, cols = shape
    period = spectrum.shape[-1]
    k = np.arange(period)

    def conj(x: np.ndarray) -> np.ndarray:
        return np.conj(_reversed(_reversed(x, 0), 1))

    if transpose:
        h, v, d = v.T, h.T, d.T
        rows, cols = cols, rows
    if flip_rows:
        phase = np.exp(-2j * np.pi * k * (rows % period - 1) / period).astype(np.complex64)[:, None]
        h, v, d = (phase * _reversed(x, 0) for x in (h, conj(v), conj(d)))
    if flip_cols:
        phase = np.exp(-2j * np.pi * k * (cols % period - 1) / period).astype(np.complex64)[None, :]
        h, v, d = (phase * _reversed(x, 1) for x in (conj(h), v, conj(d)))
    return h, v, d


def _oriented_weight(
    weight: np.ndarray, shape: tuple[int, int], transpose: bool, flip_rows: bool, flip_cols: bool
) -> np.ndarray:
    """The folded weights (P, P) of a dense grid of ``shape`` read the other way round (see
    :func:`_oriented_spectrum`)."""
    rows, cols = shape
    period = weight.shape[0]
    if transpose:
        weight, rows, cols = weight.T, cols, rows
    if flip_rows:
        weight = np.roll(weight[::-1], rows % period, axis=0)
    if flip_cols:
        weight = np.roll(weight[:, ::-1], cols % period, axis=1)
    return weight


def _oriented_affine(
    affine: np.ndarray, shape: tuple[int, int], transpose: bool, flip_rows: bool, flip_cols: bool
) -> np.ndarray:
    """The dense-grid affine (image = step @ (u, v) + origin) of the grid read the other way round."""
    step, origin = affine[:, :2].copy(), affine[:, 2].copy()
    rows, cols = shape
    if transpose:
        step = step[:, ::-1]
        rows, cols = cols, rows
    if flip_rows:
        origin = origin + step[:, 1] * (rows - 1)
        step[:, 1] = -step[:, 1]
    if flip_cols:
        origin = origin + step[:, 0] * (cols - 1)
        step[:, 0] = -step[:, 0]
    return np.column_stack([step, origin])


def dense_grid(
    source: Source,
    matrix: np.ndarray,
    spc: int,
    anchor: tuple[float, float] = (0.0, 0.0),
    coarse: bool = False,
    region: tuple[int, int, int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(band samples, support samples, affine) on a grid of ``spc`` samples per cell along the lattice
    ``matrix`` (a cell step in image pixels along lattice columns and rows), covering the image (or the
    ``region`` (x0, y0, x1, y1) of it), with a sample on image position ``anchor`` (``coarse``: see
    Source.planes)."""
    cell_x, cell_y = Geometry(tuple(matrix.ravel()), (0.0, 0.0), (0, 0), (1, 1)).cell_sizes
    planes = source.planes(cell_x, cell_y, coarse=coarse)
    band, support = planes.band, planes.support
    f = 2.0**-planes.level
    step = matrix / spc
    one_to_one = all(abs(v - e) <= 1e-8 for v, e in zip((step * f).ravel().tolist(), (1.0, 0.0, 0.0, 1.0)))
    if one_to_one and anchor == (0.0, 0.0) and region is None:  # a sample per pixel: itself
        return band, support, np.array([[1.0 / f, 0.0, 0.0], [0.0, 1.0 / f, 0.0]])
    step = step * f
    x0, y0, x1, y1 = region or (0, 0, source.width, source.height)
    corners = np.array([[x0, y0], [x1 - 1, y0], [x0, y1 - 1], [x1 - 1, y1 - 1]], dtype=np.float64)
    base = np.array(anchor, dtype=np.float64) * f
    uv = (corners * f - base) @ np.linalg.inv(step).T
    lo, hi = np.floor(uv.min(axis=0)), np.ceil(uv.max(axis=0))
    cols, rows = int(hi[0] - lo[0]) + 1, int(hi[1] - lo[1]) + 1
    affine = np.column_stack([step, step @ lo + base])
    flags = cv2.WARP_INVERSE_MAP
    return (
        cv2.warpAffine(band, affine, (cols, rows), flags=cv2.INTER_CUBIC | flags, borderMode=cv2.BORDER_CONSTANT),
        cv2.warpAffine(support, affine, (cols, rows), flags=cv2.INTER_LINEAR | flags, borderMode=cv2.BORDER_CONSTANT),
        affine / f,
    )


def dense_screen(
    source: Source,
    lay: Layout,
    matrix: np.ndarray,
    spc: int,
    gains: tuple[float, ...],
    family: str,
    keep: int = 3,
    orientations: tuple = _ORIENTATIONS,
    anchor: tuple[float, float] = (0.0, 0.0),
    coarse: bool = False,
    region: tuple[int, int, int, int] | None = None,
) -> list[Candidate]:
    """Every translation of the lattice ``matrix`` on a grid of ``spc`` samples per cell (over the image or
    its ``region``), in each of the 8 flips and quarter turns: the pilot fitness of each, by one FFT
    correlation of the folded channel phasors with the pilot template. Returns the ``keep`` best
    (geometries on the sample grid, read over the region; see :func:`refine` and :func:`_extended`)."""
    dense, sup, affine = dense_grid(source, matrix, spc, anchor, coarse, region)
    s = spc
    # the chips' sums (H, V, D: see block_channels) from the differences and sums of horizontal neighbours
    across, along = dense[:, :-s] - dense[:, s:], dense[:, :-s] + dense[:, s:]
    channels = (across[:-s] + across[s:], along[:-s] - along[s:], across[:-s] - across[s:])
    pairs = sup[:, :-s] + sup[:, s:]
    weight = (pairs[:-s] + pairs[s:]) * np.float32(0.25)
    weight = np.minimum(cv2.threshold(weight, 0.3, 0.0, cv2.THRESH_TOZERO)[1], np.float32(1.0), out=weight)
    period = 2 * TILE * spc
    template_fft, mask_fft = _template_fft(lay, spc)
    found: list[Candidate] = []
    # every orientation's transforms as one stack (one FFT call each way: the per-call overhead was most of
    # a screen of 8 orientations): the pilots' total weight at each translation ...
    norms = _oriented_norms(_fold(weight, period), mask_fft, weight.shape, orientations)
    peaks = norms.reshape(len(orientations), -1).max(axis=1)
    valid = norms > (0.05 * np.maximum(peaks, 1e-9))[:, None, None]
    safe_norms = np.where(valid, norms, 1.0)
    correlations = np.empty((len(orientations), period, period), np.complex64)
    for gain in gains:
        scale = np.float32(0.25 * 2 * np.pi / (gain * DELTA))
        # weighted phasors of each channel, folded as real and imaginary planes (the field is large, its
        # fold small)
        phasor_fold = np.empty((CHANNELS, period, period), np.complex64)
        for k, values in enumerate(channels):
            real, imag = cv2.polarToCart(weight, values * scale)
            phasor_fold[k].real = _fold(real, period)
            phasor_fold[k].imag = _fold(imag, period)
        spectrum = scipy.fft.fft2(phasor_fold)
        # ... and the pilots' correlation with the template
        for n, orientation in enumerate(orientations):
            h, v, d = _oriented_spectrum(spectrum, weight.shape, *orientation)
            correlations[n] = h * template_fft[0] + v * template_fft[1] + d * template_fft[2]
        fits = np.where(valid, np.real(scipy.fft.ifft2(correlations)) / safe_norms, -1.0)
        for n, orientation in enumerate(orientations):
            norm = norms[n]
            aff = _oriented_affine(affine, dense.shape, *orientation)
            step, origin = aff[:, :2], aff[:, 2]
            rows, cols = dense.shape[::-1] if orientation[0] else dense.shape  # the oriented dense grid's size
            flat = fits[n].ravel()
            for _ in range(keep):  # the best few (a selection is slow on the many -1 of invalid shifts)
                idx = int(np.argmax(flat))
                sv, su = divmod(idx, period)
                # tile block (0, 0) has its first cell at dense sample (su, sv) (mod the period): lattice point
                # (0, 0) mod 2 TILE. Read from the first lattice point inside the grid.
                j0, i0 = -(su // spc), -(sv // spc)
                first = np.array([su % spc, sv % spc], dtype=np.float64)
                offset = step @ first + origin
                geometry = Geometry(
                    tuple((step * spc).ravel()),
                    (float(offset[0]), float(offset[1])),
                    (i0, j0),
                    ((rows - 1 - int(first[1])) // spc + 1, (cols - 1 - int(first[0])) // spc + 1),
                )
                fit_value = float(flat[idx])
                z = fit_value * math.sqrt(2.0 * max(float(norm.ravel()[idx]), 0.0))
                found.append(Candidate(geometry, float(gain), fit_value, family, z))
                flat[idx] = -np.inf
    found.sort(key=lambda c: c.z, reverse=True)
    return found[:keep]


def _turn(radians: float) -> np.ndarray:
    """The matrix turning a lattice by ``radians`` counter-clockwise on screen (as Pillow's ``rotate``; image
    y runs down)."""
    cos, sin = math.cos(radians), math.sin(radians)
    return np.array([[cos, sin], [-sin, cos]])


def _moved(
    geometry: Geometry,
    dx: float,
    dy: float,
    turn: float = 0.0,
    scale: float = 1.0,
    centre: tuple[float, float] = (0.0, 0.0),
) -> Geometry:
    """The geometry shifted by (dx, dy) pixels and turned by ``turn`` degrees (counter-clockwise on screen)
    and scaled by ``scale`` about ``centre``."""
    a, b, c, d = geometry.matrix
    ox, oy = geometry.offset
    if turn or scale != 1.0:
        t = math.radians(turn)
        rot = scale * _turn(t)
        m = rot @ np.array([[a, b], [c, d]])
        o = np.array(centre) + rot @ (np.array([ox, oy]) - np.array(centre))
        a, b, c, d = (float(v) for v in m.ravel())
        ox, oy = float(o[0]), float(o[1])
    return replace(geometry, matrix=(a, b, c, d), offset=(ox + dx, oy + dy))


def refine(
    source: Source, lay: Layout, cand: Candidate, step: float, levels: int = 3, turn: float = 0.0, scale: float = 0.0
) -> Candidate:
    """Pattern search on the exact read: the lattice offset in steps of ``step`` image pixels (and, when
    given, its rotation in steps of ``turn`` degrees and scale in steps of ``scale``, about the image's
    centre), halved ``levels`` times, and the gain, while the pilot fitness improves."""
    src = cand.source or source
    best = cand
    centre = ((src.width - 1) / 2.0, (src.height - 1) / 2.0)
    gains = np.array([best.gain * f for f in (0.94, 0.97, 1.0, 1.03, 1.06)])
    reading = src.read(best.geometry)
    fits = fitness(lay, reading, gains)
    k = int(np.argmax(fits))
    best = replace(best, gain=float(gains[k]), fitness=float(fits[k]))
    gains = np.array([best.gain * f for f in (0.98, 1.0, 1.02)])
    for halving in range(levels):
        f = 2.0**-halving
        trials = (
            [
                _moved(best.geometry, dx * step * f, dy * step * f)
                for dx in (-1, 0, 1)
                for dy in (-1, 0, 1)
                if (dx, dy) != (0, 0)
            ]
            if step
            else []
        )
        if turn:
            trials += [_moved(best.geometry, 0, 0, t * turn * f, 1.0, centre) for t in (-1, 1)]
        if scale:
            trials += [_moved(best.geometry, 0, 0, 0.0, 1.0 + k * scale * f, centre) for k in (-1, 1)]
        for geometry in trials:
            trial = src.read(geometry)
            fits = fitness(lay, trial, gains)
            k = int(np.argmax(fits))
            if fits[k] > best.fitness:
                best = replace(best, geometry=geometry, gain=float(gains[k]), fitness=float(fits[k]))
                reading = trial
    return replace(best, z=best.fitness * math.sqrt(2.0 * _pilot_weight(lay, reading)))


def _pilot_weight(lay: Layout, reading: Reading) -> float:
    """The total weight of a reading's pilot instances (chance fitness has deviation 1 / sqrt(2 x this))."""
    return float(np.sum(np.broadcast_to(reading.weights, reading.values.shape) * np.abs(lay.pilot_sign[reading.slots])))


class _Decoder:
    """Decodes candidates within the false-positive budget (MAX_DECODES per image)."""

    def __init__(self, source: Source, lay: Layout) -> None:
        self.source = source
        self.lay = lay
        self.decoded: list[tuple[Candidate, Decoded]] = []
        self.tried: set[tuple] = set()

    def __call__(self, cand: Candidate) -> bool:
        source = cand.source or self.source
        reading = source.read(cand.geometry)
        for factor in DECODE_GAINS:
            if len(self.decoded) >= MAX_DECODES:
                return False
            gain = cand.gain * factor
            key = (id(source), cand.geometry, round(gain, 6))
            if key in self.tried:
                break
            self.tried.add(key)
            result = decode(self.lay, reading, gain)
            self.decoded.append((replace(cand, gain=gain), result))
            if result.ok:
                return True
            if factor == 1.0 and result.matched < JITTER_MIN_MATCHED:
                break
        return False

    def result(self) -> Detection:
        if not self.decoded:
            return Detection(False, None, None, 1.0, 0.0)
        cand, best = max(self.decoded, key=lambda cd: (cd[1].ok, cd[1].matched, cd[0].fitness))
        p_value = min(1.0, len(self.decoded) * binomial_tail(CHECK_BITS, best.matched))
        raw = np.packbits(best.payload_bits).tobytes()
        g = cand.reported or cand.geometry
        a, b, c, d = g.matrix
        flipped = (a * d - b * c) < 0
        c0_image = math.sqrt(abs(a * d - b * c))
        # counter-clockwise on screen (as Pillow's rotate): the lattice's columns run along (cos, -sin)
        rotation = math.degrees(math.atan2(-c, a)) if not flipped else math.degrees(math.atan2(c, -a))
        # where the original's top-left pixel (lattice point (0, 0)) lies in the image; the mark repeats
        # every tile, so a crop tells it only modulo the tile: the first lattice point of the read that
        # is (0, 0) modulo the tile
        period = 2 * TILE
        r, k = (-g.origin[0]) % period, (-g.origin[1]) % period
        top_left = (g.offset[0] + a * k + b * r, g.offset[1] + c * k + d * r)
        # plain Python numbers and booleans: the report is serialised as JSON
        return Detection(
            detected=bool(best.ok),
            payload=raw if best.ok else None,
            bit_errors=int(best.bit_errors),
            p_value=float(p_value),
            confidence=float(1.0 - p_value),
            check_bits_matched=int(best.matched),
            candidates=len(self.decoded),
            pilot_score=round(float(best.fitness), 4),
            rotation_deg=round(float(rotation), 3),
            scale=round(float(c0_image), 4),
            shift=(round(float(top_left[0]), 3), round(float(top_left[1]), 3)),
            gain=round(float(cand.gain), 4),
            flipped=bool(flipped),
            raw_payload=raw,
        )


#: A screened candidate is refined and decoded only this many standard deviations above chance
#: (unmarked photos reach ~5 over a whole search).
Z_DECODE: Final = 6.0
#: Each family decodes at most this many of its candidates.
PER_FAMILY: Final = 2


def detect_watermark(image: Image.Image, key: bytes | None = None, *, legacy: bool = True) -> Detection:
    """Look for a watermark of ``key`` (default: ``$TRANSFIGURE_WATERMARK_KEY`` / development key).

    Finds the mark in the image as it is and after the edits people make: re-encoding (JPEG, WebP),
    resizing (also squashed from a square), noise, brightness and contrast, crops at any offset kept at
    their size or enlarged, reframing, padding and screenshots, flips, quarter turns and rotations (with or
    without the corners, or straightened). ``detected`` is True only when the keyed check matches; see
    :class:`Detection` for the statistics. With ``legacy`` (default), an image without this release's mark
    is also read by the previous release's detector (its untranslated, translated and brightness/contrast
    stages), so marks made before it are still found.

    Raises:
        ValueError: the image is smaller than 32x32.
    """
    key = resolve_watermark_key(key)
    lay = layout(key)
    width, height = image.size
    cell_size(width, height)  # size check
    channels = pl.read_channels(image)
    source = Source.of(channels)
    decoder = _Decoder(source, lay)
    for cand in _cascade(source, lay):
        if decoder(cand) or len(decoder.decoded) >= MAX_DECODES:
            break
    found = decoder.result()
    if found.detected or not legacy:
        return found
    # (the previous release's read is this one's: the same channels, clamp and luminance)
    old = legacy_watermark.detect_watermark(image, key, searches=False, read=(channels, source.mean, source.luma))
    if not old.detected:
        return found
    # the false-positive bound counts every decode of both detectors
    tried = found.candidates + old.candidates
    p_value = min(1.0, tried * binomial_tail(CHECK_BITS, old.check_bits_matched))
    return replace(old, candidates=tried, p_value=p_value, confidence=1.0 - p_value)


def read_identity(image: Image.Image, key: bytes) -> bytes | None:
    """The payload of an image read as it is (no search), if its check passes at gain 1."""
    source = Source.of(pl.read_channels(image))
    found = decode(
        layout(resolve_watermark_key(key)),
        source.read(Geometry.identity(cell_size(*image.size), image.height, image.width)),
        1.0,
    )
    return np.packbits(found.payload_bits).tobytes() if found.ok else None


def _best(cands: list[Candidate], limit: int = PER_FAMILY, z: float = Z_DECODE) -> list[Candidate]:
    """The strongest distinct candidates above ``z``."""
    out: list[Candidate] = []
    for cand in sorted(cands, key=lambda c: c.z, reverse=True):
        if cand.z < z or len(out) >= limit:
            break
        out.append(cand)
    return out


def _reading_z(lay: Layout, reading: Reading, gains: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fitness, z) per gain of a reading (z: in standard deviations of chance)."""
    fits = fitness(lay, reading, gains)
    return fits, fits * math.sqrt(2.0 * _pilot_weight(lay, reading))


def _as_marked(source: Source, lay: Layout):
    """The image as it was marked (re-encoded, resized back, noisy): the identity at gain 1, then the best
    gain, then brightness and contrast hypotheses."""
    c0 = cell_size(source.width, source.height)
    identity = Geometry.identity(c0, source.height, source.width)
    yield Candidate(identity, 1.0, 1.0, "identity")
    fits, zs = _reading_z(lay, source.read(identity), GAINS)
    k = int(np.argmax(fits))
    yield Candidate(identity, float(GAINS[k]), float(fits[k]), "identity", float(zs[k]))
    yield from _valumetric(source, lay, identity)


def _cropped(source: Source, lay: Layout):
    """Crops at any offset, flips and quarter turns at the marked scale: the cell sizes from this image's own
    to twice it (a crop to half of each side), every whole-pixel translation at once."""
    cands = [
        c
        for cell in crop_cells(source.width, source.height)
        for c in dense_screen(source, lay, np.eye(2) * cell, _whole_pixel_spc(cell), (1.0,), "crop")
    ]
    for cand in _best(cands):
        cell = int(round(cand.geometry.cell_sizes[0]))
        spacing = cell / _whole_pixel_spc(cell)  # offsets between the samples: refined from half the spacing
        yield refine(source, lay, cand, 0.0 if spacing == 1 else spacing / 2, levels=2)


def _turned(source: Source, lay: Layout):
    """Rotated with a fill in the corners, whose edges give the angle."""
    rotation = cues.rotation_fill(source.channels) if source.channels is not None else None
    if rotation is not None:
        yield from _rotated(source, lay, rotation)


def _framed(source: Source, lay: Layout):
    """The picture inside a uniform border (padding, a screenshot): the picture resized."""
    for box in cues.content_boxes(source.channels) if source.channels is not None else []:
        yield from _resized(source, lay, box)


def _cascade(source: Source, lay: Layout):
    """Candidate geometries, the likeliest edits first (see FAMILIES); each family screens cheaply and
    yields only what stands out from chance."""
    for _, family in FAMILIES:
        yield from family(source, lay)


def crop_cells(width: int, height: int) -> list[int]:
    """The cell sizes an image kept at its size after a crop (to down to half of each side) can have."""
    own = math.sqrt(width * height) / CELLS_ACROSS
    return [c for c in CELL_SIZES if own / 1.2 <= c <= 2.4 * own and 2 * TILE * c <= 2 * max(width, height)]


def _whole_pixel_spc(cell: int) -> int:
    """Samples per cell for a translation screen: every pixel for cells of 3 to 8 px (the pilots only
    show within ~1/16 cell), every other pixel above; every half pixel for 2 px cells (a picture halved
    puts its lattice between pixels)."""
    return 2 * cell if cell <= 2 else cell if cell < 12 else cell // 2


#: Brightness and contrast factors whose clamp is tried (see planes: the read is exact once the clamp
#: moves with the change).
VALUMETRIC: Final = (0.8, 0.9, 1.12, 1.25)
#: A hypothesis is re-read at the gain its pilots show only from this z (a brightness change's first read
#: scores 5 and more on the benchmark's photos; an unmarked image's up to ~3).
VALUMETRIC_REREAD_Z: Final = 2.0


def _valumetric(source: Source, lay: Layout, geometry: Geometry):
    """The identity read with the clamp moved where a brightness (x -> a x) or contrast
    (x -> a x + (1 - a) mean) change took it; the two best hypotheses."""
    if source.channels is None:
        return
    # screened on the central quarter of the image (a quarter of the cost; where a picture has its subject),
    # the best two refined on the whole
    c0 = int(geometry.matrix[0])
    y0, x0 = (source.height // 4) // (2 * c0) * 2 * c0, (source.width // 4) // (2 * c0) * 2 * c0
    y1, x1 = y0 + source.height // 2, x0 + source.width // 2
    small = Source(source.luma, source.taper, np.ascontiguousarray(source.channels[y0:y1, x0:x1]), source.mean)
    small_geometry = Geometry.identity(c0, y1 - y0, x1 - x0)
    small_geometry = replace(small_geometry, origin=(y0 // c0, x0 // c0))

    def offset(a: float, contrast: bool) -> float:  # b of x -> a x + b: contrast keeps the mean
        return (1.0 - a) * source.mean if contrast else 0.0

    screened = []
    for a in VALUMETRIC:
        for contrast in (False, True):
            gains = np.array([a * g for g in (0.96, 1.0, 1.04)])
            _, zs = _reading_z(lay, small.undone(a, offset(a, contrast)).read(small_geometry), gains)
            screened.append((float(zs.max()), a, contrast))
    screened.sort(key=lambda t: t[0], reverse=True)
    # the best two refined: re-read where the gain the pilots show puts the clamp (exact once right: a white
    # background the clamp clipped is where a darkening moved it, to a grey level)
    found = []
    fine = np.array([1.01**k for k in range(-4, 5)])
    for _, a, contrast in screened[:2]:
        for _ in range(2):
            hypothesis = source.undone(a, offset(a, contrast))
            fits, zs = _reading_z(lay, hypothesis.read(geometry), a * fine)
            k = int(np.argmax(fits))
            a = float(a * fine[k])
            if zs[k] < VALUMETRIC_REREAD_Z:  # chance (no mark): the gain it suggests means nothing
                break
        found.append(Candidate(geometry, a, float(fits[k]), "valumetric", float(zs[k]), hypothesis))
    yield from _best(found, z=3.0)


#: Original sizes tried for a resized whole image: the common ones (multiples of 32 up to 1024, of 64 up
#: to 2048).
ORIGINAL_SIZES: Final = tuple(range(128, 1025, 32)) + tuple(range(1088, 2049, 64))
#: The central region (cells each way) a resize hypothesis is screened on: a few hundred cells (a region
#: smaller than that misses pictures whose centre is flat or clipped, such as a face against the sky);
#: a picture inside a border is screened on up to BOX_SCREEN_CELLS (a screenshot's is small and re-encoded).
SCREEN_CELLS: Final = 28
BOX_SCREEN_CELLS: Final = 48
#: ... and on at least SCREEN_PIXELS each way: a picture resized under ~160-200 px has cells under 2.6 px, whose
#: mark the resize has mostly filtered away, so 28 of them are too few (flip vertical + resize 0.6 of a
#: 256 x 192 facade, 154 x 115: 15 of 18 found on 28 cells, 18 on 40).
SCREEN_PIXELS: Final = 72
#: A picture in a border is refined from this z on: its few hypotheses (the border's edges fix the lattice)
#: leave chance little room, and a small picture scores low before refining.
BOX_SCREEN_Z: Final = 4.0
#: The central region a straightening hypothesis is screened on: many angles, each screened coarse.
TURN_SCREEN_CELLS: Final = 20


#: A resized picture may have been flipped or turned a quarter as well (before or after: the two commute):
#: the other 7 ways are screened on a central region this share of the upright one's (the planes it
#: band-passed serve them), and the likeliest few of them again on the upright one's region.
ORIENTED_SCREEN_SHARE: Final = 0.6
ORIENTED_KEEP: Final = 4


def _resized(source: Source, lay: Layout, box: tuple[int, int, int, int] | None = None):
    """The whole picture (of ``box``, default the image) resized from a common original size, keeping its
    aspect or squashed from a square, as marked or (the whole image) flipped or turned a quarter: each
    original size puts the lattice exactly (edges stay edges), screened on the cells of a central region
    (where a picture has its subject)."""
    x0, y0, x1, y1 = box or (0, 0, source.width, source.height)
    # a resized picture is a whole number of pixels; a found border's edges are good to about a pixel
    extents = (
        [(round(x1 - x0), round(y1 - y0))]
        if box is None
        else [(round(x1 - x0) + d, round((round(x1 - x0) + d) * (y1 - y0) / (x1 - x0))) for d in (0, -1, 1)]
    )
    upright: list[Geometry] = []
    oriented: list[Geometry] = []
    for (w, h), w0, h0 in _original_sizes(extents, exclude_own=box is None):
        sx, sy = w / w0, h / h0
        # a picture in a border as it was (its 3 extents' hypotheses in 8 orientations: +50 % of a framed
        # picture's time)
        for n, g in enumerate(_orientations(w0, h0)[: 1 if box else None]):
            (oriented if n else upright).append(_through_resize(g, sx, sy, x0, y0))
    cells = BOX_SCREEN_CELLS if box else SCREEN_CELLS
    windows: Windows = {}
    fits, zs = screen_geometries(source, lay, [_screened(g, cells) for g in upright], (1.0, 0.95), windows)
    found = [Candidate(g, 1.0, float(f), "resized", float(z)) for g, f, z in zip(upright, fits, zs)]
    for cand in _best(found, z=BOX_SCREEN_Z if box else Z_DECODE):  # as marked: decoded before the others
        yield refine(source, lay, cand, 1.0 if box else 0.25, levels=4 if box else 2, scale=0.002)
    if not oriented:
        return
    small = [_screened(g, cells, ORIENTED_SCREEN_SHARE) for g in oriented]
    zs = screen_geometries(source, lay, small, windows=windows)[1]
    again = [oriented[k] for k in np.argsort(zs)[::-1][:ORIENTED_KEEP]]
    fits, zs = screen_geometries(source, lay, [_screened(g, cells) for g in again], (1.0, 0.95), windows)
    found = [Candidate(g, 1.0, float(f), "resized", float(z)) for g, f, z in zip(again, fits, zs)]
    for cand in _best(found):
        yield refine(source, lay, cand, 0.25, levels=2, scale=0.002)


#: Aspects (width / height) of the originals a squash (one side resized) is tried from.
SQUASHED_ASPECTS: Final = (1.0, 4 / 3, 3 / 4, 3 / 2, 2 / 3, 16 / 9, 9 / 16, 5 / 4, 4 / 5, 2.0, 1 / 2)


def _original_sizes(extents: list[tuple[int, int]], exclude_own: bool):
    """((w, h), w0, h0): each picture extent with the common original sizes it may have been resized
    from, keeping its aspect; and for a non-square picture, from a square, or squashed (one side kept)
    from a picture of a common aspect. (Each anisotropic size is a band-pass of its own, ~1 ms at 512 px:
    a square picture, the usual generated one, is not tried as squashed.)"""
    for w, h in extents:
        sizes = {(s, _other_side(s, w, h)) for s in ORIGINAL_SIZES}
        if w != h:
            sizes |= {(s, s) for s in ORIGINAL_SIZES}
            sizes |= {(w, round(w / a)) for a in SQUASHED_ASPECTS} | {(round(h * a), h) for a in SQUASHED_ASPECTS}
        if exclude_own:
            sizes.discard((w, h))
        for w0, h0 in sorted(sizes):
            if 0.25 <= w / w0 <= 4 and 0.25 <= h / h0 <= 4 and min(w0, h0) >= 32:
                yield (w, h), w0, h0


def _other_side(side: int, w: int, h: int) -> int:
    """The height of a ``side`` px wide original resized to w x h: the aspect's, unless the heights whose
    resize rounds to these sides include a multiple of 8, the most even of those then (a common size: the
    aspect alone is a pixel or two off once a small picture's sides are rounded; 800 x 533 stays itself)."""
    exact = side * h / w
    if exact == int(exact) or w < 2:
        return max(1, round(exact))
    low, high = math.ceil((h - 0.5) * side / (w + 0.5)), math.floor((h + 0.5) * side / (w - 0.5))
    even = [v for v in range(low, high + 1) if v > 0 and v % 8 == 0]
    return max(even, key=lambda v: (v & -v, -abs(v - exact))) if even else max(1, round(exact))


def screen_geometries(
    source: Source,
    lay: Layout,
    geometries: list[Geometry],
    gains: tuple[float, ...] = (1.0,),
    windows: Windows | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(fitness, z) of many geometries (each read in full; keep them small, see :func:`_central`) at their
    best of ``gains``: the reads batched by plane, one remap each (a search screens hundreds; ``windows``:
    see Source.planes_around)."""
    fits = np.full(len(geometries), -1.0)
    zs = np.full(len(geometries), -1.0)
    groups: dict[tuple[int, int, float], list[int]] = {}
    for n, geometry in enumerate(geometries):
        cx, cy = geometry.cell_sizes
        groups.setdefault((round(math.log(cx) / COARSE_STEP), round(math.log(cy) / COARSE_STEP)), []).append(n)
    for (kx, ky), members in groups.items():
        cell_x, cell_y = math.exp(kx * COARSE_STEP), math.exp(ky * COARSE_STEP)
        group = [geometries[n] for n in members]
        count = len(group)
        extents = np.array([g.cells for g in group])  # (members, 2): rows, cols
        rows, cols = (int(v) for v in extents.max(axis=0))
        r, k = _index_grid(rows, cols)
        a, b, c, d = (v[:, None, None] for v in np.array([g.matrix for g in group], np.float32).T)
        ox, oy = (v[:, None, None] for v in np.array([g.offset for g in group], np.float32).T)
        maps_x = (a * k + b * r + ox).reshape(count * rows, cols)
        maps_y = (c * k + d * r + oy).reshape(count * rows, cols)
        planes, (x0, y0) = source.planes_around(cell_x, cell_y, maps_x, maps_y, windows)
        f = 2.0**-planes.level
        maps_x = (maps_x - np.float32(x0)) * np.float32(f)
        maps_y = (maps_y - np.float32(y0)) * np.float32(f)
        band = cv2.remap(planes.band, maps_x, maps_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        support = cv2.remap(planes.support, maps_x, maps_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        band, support = band.reshape(count, rows, cols), support.reshape(count, rows, cols)
        # the fitness of every member at once: equal-sized reads stacked (blocks from their first whole one,
        # members with fewer cells weighted out beyond them)
        nby, nbx = (rows - 1) // 2, (cols - 1) // 2
        offsets = np.array([block_offset(g) for g in group])  # (members, 2)
        stack_v = np.empty((count, nby, nbx, 3), np.float32)
        stack_w = np.empty((count, nby, nbx, 1), np.float32)
        for off in {(int(i), int(j)) for i, j in offsets}:
            sel = np.flatnonzero((offsets[:, 0] == off[0]) & (offsets[:, 1] == off[1]))
            window = (sel, slice(off[0], off[0] + 2 * nby), slice(off[1], off[1] + 2 * nbx))
            stack_v[sel] = block_channels(band[window])
            stack_w[sel] = block_weights(support[window])
        whole = (extents - offsets) // 2
        stack_w *= (
            (np.arange(nby)[None, :, None] < whole[:, 0, None, None])
            & (np.arange(nbx)[None, None, :] < whole[:, 1, None, None])
        )[..., None]
        first = (np.array([g.origin for g in group]) + offsets) // 2
        slots = (
            ((first[:, 0:1] + np.arange(nby)) % TILE)[:, :, None],
            ((first[:, 1:2] + np.arange(nbx)) % TILE)[:, None, :],
        )
        sign = lay.pilot_sign[slots]  # (members, nby, nbx, 3)
        weight = stack_w * np.abs(sign)
        total = weight.sum(axis=(1, 2, 3))
        dither = lay.dither[slots]
        best_fit = np.full(count, -1.0)
        for gain in gains:
            agreement = np.cos((2 * np.pi) * (stack_v / np.float32(gain * DELTA) - dither)) * sign * stack_w
            best_fit = np.maximum(best_fit, agreement.sum(axis=(1, 2, 3)) / np.maximum(total, 1e-9))
        fits[members] = best_fit
        zs[members] = best_fit * np.sqrt((2.0 * total).astype(np.float64))
    return fits, zs


@functools.lru_cache(maxsize=256)
def _index_grid(rows: int, cols: int) -> np.ndarray:
    """(2, rows, cols) float32: every lattice point's row and column (read-only, shared by the screens)."""
    grid = np.mgrid[0:rows, 0:cols].astype(np.float32)
    grid.flags.writeable = False
    return grid


def _through_resize(geometry: Geometry, sx: float, sy: float, x0: float = 0.0, y0: float = 0.0) -> Geometry:
    """A lattice on a picture, in the pixels of that picture resized by (sx, sy) and placed at (x0, y0):
    Pillow's resize maps pixel centres, x' = (x + 0.5) s - 0.5."""
    a, b, c, d = geometry.matrix
    offset = (x0 + (geometry.offset[0] + 0.5) * sx - 0.5, y0 + (geometry.offset[1] + 0.5) * sy - 0.5)
    return replace(geometry, matrix=(a * sx, b * sx, c * sy, d * sy), offset=offset)


def _screened(geometry: Geometry, cells: int = SCREEN_CELLS, share: float = 1.0) -> Geometry:
    """The central region a resize hypothesis is screened on: ``share`` of ``cells`` each way, or of
    SCREEN_PIXELS where its cells are smaller than that allows."""
    return _central(geometry, int(share * max(cells, math.ceil(SCREEN_PIXELS / min(geometry.cell_sizes)))))


def _central(geometry: Geometry, cells: int) -> Geometry:
    """The same lattice read only over a central ``cells`` x ``cells`` region (starting on a whole block)."""
    rows, cols = geometry.cells
    di, dj = max(0, (rows - cells) // 4 * 2), max(0, (cols - cells) // 4 * 2)
    a, b, c, d = geometry.matrix
    i0, j0 = geometry.origin
    return Geometry(
        geometry.matrix,
        (geometry.offset[0] + a * dj + b * di, geometry.offset[1] + c * dj + d * di),
        (i0 + di, j0 + dj),
        (min(rows, cells), min(cols, cells)),
    )


def _rotated(source: Source, lay: Layout, rotation: cues.Rotation):
    """A rotation by the fill's angle: the lattice turned, every translation screened; and, for Pillow's
    default nearest-neighbour rotation, the rotation undone exactly (resized after: resized back to the
    likeliest original sizes first)."""
    w0 = rotation.width or rotation.height or source.width
    h0 = rotation.height or rotation.width or source.height
    if min(w0, h0) < _least_side(source.width, source.height):  # implausible sides: the image's own size
        w0, h0 = source.width, source.height
    theta = math.radians(rotation.angle)
    turn = _turn(theta)
    cells = sorted({cell_size(round(w0), round(h0))} | set(crop_cells(round(w0), round(h0))[:1]))
    found = []
    for cell in cells:  # (also flipped or turned a quarter before: the fill's angle is modulo 90 degrees)
        found += dense_screen(source, lay, turn * cell, 4, (1.0,), "rotated")
    for cand in _best(found):
        yield refine(source, lay, cand, 0.25, levels=3, turn=0.05)
    yield from _unrotated(source, lay, rotation, w0, h0)
    # resized after turning: the fill's sides are the original's resized, so its cell is unknown; a common
    # original size fixes the lattice (turned about the centre, the canvas (its own, or the one ``expand``
    # gives it) resized to this image), as for a whole picture resized; else the lattice pitch scanned at
    # the fill's angle (the pitch to this image's own cell is the original's: its cell rounded to
    # CELL_SIZES, or less on an expanded canvas)
    width, height = source.width, source.height
    sizes = [(w0, h0, False) for _, w0, h0 in _original_sizes([(width, height)], exclude_own=True)]
    sides = _shown_sides(rotation, width, height)
    if sides[0] and sides[1]:  # on an expanded canvas: originals of the fill's picture's aspect
        sizes += _expanded_originals(width, height, rotation.angle, (sides[0], sides[1]))
    geometries = [
        _turned_lattice(turn, (w0, h0), _canvas_box((w0, h0), rotation.angle, expanded), (width, height))
        for w0, h0, expanded in sizes
    ]
    windows: Windows = {}
    fits, zs = screen_geometries(source, lay, [_screened(g) for g in geometries], windows=windows)
    found = [Candidate(g, 1.0, float(f), "rotated", float(z)) for g, f, z in zip(geometries, fits, zs)]
    for cand in _best(found):
        yield refine(source, lay, cand, 0.25, levels=2, turn=0.05, scale=0.002)
    # flipped or turned a quarter before (a mirrored selfie levelled and downsized): the 7 other ways of each
    # size, as the resized family screens them
    oriented = [
        _turned_oriented(g, (w0, h0), rotation.angle, _canvas_box((w0, h0), rotation.angle, expanded), (width, height))
        for w0, h0, expanded in sizes
        for g in _orientations(w0, h0)[1:]
    ]
    small = [_screened(g, SCREEN_CELLS, ORIENTED_SCREEN_SHARE) for g in oriented]
    likely = np.argsort(screen_geometries(source, lay, small, windows=windows)[1])[::-1][:ORIENTED_KEEP]
    fits2, zs2 = screen_geometries(source, lay, [_screened(oriented[k]) for k in likely], windows=windows)
    found = [Candidate(oriented[k], 1.0, float(f), "rotated", float(z)) for k, f, z in zip(likely, fits2, zs2)]
    for cand in _best(found):
        yield refine(source, lay, cand, 0.25, levels=2, turn=0.05, scale=0.002)
    ways = len(_ORIENTATIONS) - 1
    turned_first = int(likely[int(np.argmax(zs2))]) // ways if len(likely) else None  # (its size's index)
    # (from the picture's own cell where the fill's sides say the canvas is notably larger: expanded; the
    # sides of a picture on its own canvas are a pixel or two off the image's, which would only move the
    # pitches)
    shown = [side / own for side, own in zip(sides, (width, height)) if side]
    area = math.prod(shown) if len(shown) == 2 else shown[0] ** 2 if shown else 1.0
    found = _pitch_scan(source, lay, TURNED_PITCHES, "rotated", _ORIENTATIONS[:1], turn, area if area < 0.9 else None)
    yield from _checked(source, lay, found, "rotated")
    # the undo at the two likeliest sizes upright and the likeliest in another way (a picture flipped or
    # turned a quarter first), each made smaller by down to half (restoring a larger original costs its area)
    small_enough = [k for k in range(len(sizes)) if sizes[k][0] * sizes[k][1] <= 4 * width * height]
    ranked = [k for k in np.argsort(zs)[::-1].tolist() if k in small_enough][:RESIZED_UNDO_SIZES]
    if turned_first is not None and turned_first in small_enough and turned_first not in ranked:
        ranked.append(turned_first)
    yield from _resized_back(source, lay, rotation.angle, [sizes[k] for k in ranked])


def _turned_oriented(
    geometry: Geometry,
    size: tuple[int, int],
    angle: float,
    box: tuple[float, float, float, float],
    out: tuple[int, int],
) -> Geometry:
    """A lattice on a ``size`` picture (any of its orientations), after the picture is turned by ``angle``
    about its centre, the ``box`` of the turned frame kept and resized to ``out`` (see :func:`_turned_lattice`,
    the upright one's)."""
    w0, h0 = size
    left, top, right, bottom = box
    turned = _moved(geometry, -left, -top, angle, 1.0, ((w0 - 1) / 2.0, (h0 - 1) / 2.0))
    return _through_resize(turned, out[0] / (right - left), out[1] / (bottom - top))


def _canvas_box(size: tuple[int, int], angle: float, expanded: bool) -> tuple[float, float, float, float]:
    """The canvas of a ``size`` picture rotated by ``angle``, as a box of the turned frame: the picture's own
    (same canvas), or the one ``expand`` gives, centred on it."""
    w0, h0 = size
    if not expanded:
        return (0.0, 0.0, float(w0), float(h0))
    cw, ch = nearest.expanded_size(size, angle)
    return ((w0 - cw) / 2.0, (h0 - ch) / 2.0, (w0 + cw) / 2.0, (h0 + ch) / 2.0)


def _least_side(width: int, height: int) -> float:
    """The shortest picture side a fill can plausibly show in a ``width`` x ``height`` image: 32 px and 0.4 of
    its shorter side (a dark edge of the picture's own can end the fill's side early)."""
    return max(32.0, 0.4 * min(width, height))


def _shown_sides(rotation: cues.Rotation, width: int, height: int) -> tuple[float | None, float | None]:
    """The picture's (width, height) the fill shows, each only where plausible (see :func:`_least_side`)."""
    least = _least_side(width, height)
    w, h = (side if side is not None and side >= least else None for side in (rotation.width, rotation.height))
    return w, h


def _expanded_originals(
    width: int, height: int, angle: float, picture: tuple[float, float]
) -> list[tuple[int, int, bool]]:
    """(w, h, True): the common original sizes of the aspect of the fill's ``picture`` (w, h) whose canvas
    after an expanded rotation by ``angle``, resized as the picture says (its width to the original's), is
    this image to within EXPANDED_MATCH of each side (none for a rotation on the same canvas)."""
    out = []
    for _, w0, h0 in _original_sizes([(round(picture[0]), round(picture[1]))], exclude_own=False):
        scale = picture[0] / w0
        cw, ch = nearest.expanded_size((w0, h0), angle)
        if max(abs(cw * scale / width - 1.0), abs(ch * scale / height - 1.0)) <= EXPANDED_MATCH:
            out.append((w0, h0, True))
    return out


#: An expanded canvas's original matches the image when its canvas, resized, is within this share of each
#: side (the fill tells the picture's sides to a pixel or two).
EXPANDED_MATCH: Final = 0.015


#: A rotation resized after is scanned at pitches from TURNED_PITCHES[0] to [1] times the image's own cell.
TURNED_PITCHES: Final = (0.8, 1.25)
#: ... and, as a nearest-neighbour rotation, resized back to this many of the likeliest original sizes
#: (upright; and the likeliest in another orientation) and undone there.
RESIZED_UNDO_SIZES: Final = 2
#: ... restoring the whole picture only where its central region restored alone scores this z (the
#: hypotheses are speculative: an unmarked picture's would restore a picture each at chance's 2).
RESIZED_UNDO_Z: Final = 4.0


def _resized_back(source: Source, lay: Layout, angle: float, sizes: list[tuple[int, int, bool]]):
    """Pillow's nearest-neighbour rotation resized after: its half-pixel jitter hides the mark from the
    screens on textured photos, and the resize keeps it from being undone as it is. Resized back to the
    rotation's canvas (each of ``sizes``: (w, h, expanded), the original's size, or the canvas ``expand``
    gives it), it is undone there, up to the resize's blur, at the fill's angle as people type it (whole,
    half and tenth degrees); the candidate reports its geometry in this image's pixels."""
    angles = list(dict.fromkeys([float(round(angle)), round(angle * 2) / 2, round(angle, 1)]))
    found = []
    backs: dict[tuple[int, int], Source] = {}
    for w0, h0, expanded in sizes:
        for a in angles:
            canvas = nearest.expanded_size((w0, h0), a) if expanded else (w0, h0)
            if canvas not in backs:
                planes = (source.luma, source.taper)
                backs[canvas] = Source(*(cv2.resize(p, canvas, interpolation=cv2.INTER_CUBIC) for p in planes))
            cand = _undone(backs[canvas], lay, a, (w0, h0), "rotated", gate=RESIZED_UNDO_Z)
            if cand is not None and cand.reported is not None:
                sx, sy = source.width / canvas[0], source.height / canvas[1]
                found.append(replace(cand, reported=_through_resize(cand.reported, sx, sy)))
    yield from _best(found, limit=1, z=4.0)


def _unrotated(source: Source, lay: Layout, rotation: cues.Rotation, w0: float, h0: float):
    """Undo a nearest-neighbour rotation (Pillow's default) at the likely angles used: the fill's angle
    rounded to tenths and halves of a degree (a rough one: every half degree around it), from the picture
    size the fill suggests (on an expanded canvas: the whole size nearest it that gives this canvas) or
    this image's; then the identity read of what that restores."""
    angles = [round(rotation.angle * 2) / 2, round(rotation.angle, 1)]
    if rotation.spread:  # a rough angle (sides bent by a dark picture): the whole and half degrees around it
        reach = rotation.spread / 2 + 0.25
        angles += [
            a / 2 for a in range(math.ceil(2 * (rotation.angle - reach)), math.floor(2 * (rotation.angle + reach)) + 1)
        ]
    angles = list(dict.fromkeys(angles))
    found = []
    image_size = (source.width, source.height)
    for angle in angles:
        expanded = nearest.original_sizes(image_size, angle, (w0, h0))[:1] or [(round(w0), round(h0))]
        for size in dict.fromkeys([*expanded, image_size]):
            if (cand := _undone(source, lay, angle, size, "unrotated")) is not None:
                found.append(cand)
    yield from _best(found, limit=1, z=4.0)


#: An enlarged (or halved) crop's hypotheses are screened on a central window of this many cells (the read
#: of the whole image costs 2-3x more), and the best two refined and decoded from this z: with scale and
#: phase exact a marked crop's screen scores 4-30; chance reaches 4 on half the unmarked photos, where
#: the refine and decode cost ~2 ms and the keyed check bounds the false positives.
UPSCALED_CELLS: Final = 44
UPSCALED_Z: Final = 4.0
#: The strongest peak's first reading is also screened in the 7 other orientations, on every other
#: original pixel (a mirrored or turned crop enlarged: ~3 ms at 512 px; every pixel cost ~11, all three
#: likeliest readings ~18, with the same crops found).
TURNED_FACTORS: Final = 1


def _upscaled(source: Source, lay: Layout):
    """A crop enlarged by a factor its interpolation shows (or by 2): the picture's original pixels are every
    ``factor`` pixels from the edges (edges stay edges), so the crop's width in original pixels is a whole
    number near width / factor; read on that grid, every whole-pixel crop offset is exact.

    An interpolation period of p pixels says p / k for some k (an enlargement by 5/3 and one by 5/4 both
    repeat every 5 pixels), so each peak the cue gives is read both ways (its fundamental and its alias),
    and each reading also halved (a harmonic's), at the cell of an original of this image's size (a crop
    enlarged back); the strongest peak's readings, and the fundamental of the strongest that stands out only
    from its neighbourhood of the spectrum (see :class:`.cues.Enlargement`), also at the cells of any
    original the crop was cut from (enlarged to another size). Then the strongest reading at this image's
    cell in the 7 other flips and quarter turns (a mirrored or turned crop enlarged back)."""
    width, height = source.width, source.height
    own = cell_size(width, height)
    # the cue's readings, and an enlargement by 2 (its interpolation is symmetric: it shows nothing)
    readings = cues.upscale_factors(source.plain)
    factors = [r.factor for r in readings]
    # the likeliest: the strongest peak both ways it reads; the strongest isolated one's fundamental
    ranked, isolated = ([r.factor for r in readings if r.isolated == kind] for kind in (False, True))
    likeliest = list(dict.fromkeys(ranked[:2] + isolated[:1]))
    # a peak at a harmonic of the period reads twice the factor (an enlargement by 1.11 shows 2.22)
    factors += [f / 2 for f in factors if f / 2 > 1.02 and all(abs(f / 2 - g) > 0.01 for g in factors)]
    if all(abs(f - 2.0) > 0.01 for f in factors):
        factors.append(2.0)
    screens: dict[int, list[int]] = {}
    turned: set[int] = set()  # crop widths screened at the image's own cell in the other orientations too
    for factor in factors:
        for wc in _crop_widths(width, factor):
            hc = max(1, round(height * wc / width))
            cells = [own] + (crop_cells(wc, hc) if factor in likeliest else [])
            screens.setdefault(wc, []).extend(cells)  # (each cell screened once: _on_original_pixels)
            if factor in likeliest[:TURNED_FACTORS]:
                turned.add(wc)
    found = [
        cand
        for wc, cells in screens.items()
        for cand in _on_original_pixels(source, lay, wc, cells, "upscaled", _ORIENTATIONS[:1], UPSCALED_CELLS)
    ]
    for cand in _best(found, z=UPSCALED_Z):
        yield refine(source, lay, cand, cand.spacing, levels=1)
    # then the crop flipped or turned first, at the strongest reading and the image's own cell
    found = [
        cand
        for wc in turned
        for cand in _on_original_pixels(source, lay, wc, [own], "upscaled", _ORIENTATIONS[1:], UPSCALED_CELLS, True)
    ]
    for cand in _best(found, z=UPSCALED_Z):
        yield refine(source, lay, cand, cand.spacing, levels=1)


def _crop_widths(width: int, factor: float) -> list[int]:
    """The whole crop widths (in original pixels, 32 and more) an enlargement by ``factor`` to ``width`` can
    have come from: the cue's factor is good to ~0.1 %, which leaves one whole number or two."""
    if factor == 2.0 and width % 2 == 0:
        return [width // 2]
    lo, hi = width / factor * (1 - 0.001), width / factor * (1 + 0.001)
    widths = list(range(math.ceil(lo), math.floor(hi) + 1)) or [math.floor(width / factor), math.ceil(width / factor)]
    return [w for w in widths if w >= 32]


def _on_original_pixels(
    source: Source,
    lay: Layout,
    wc: int,
    cells: list[int],
    family: str,
    orientations: tuple,
    window: int | None = None,
    sparse: bool = False,
) -> list[Candidate]:
    """Translation screens of a crop ``wc`` original pixels wide resized to this image's width (its height in
    proportion): the original pixels' centres lie at (u + 0.5) x scale - 0.5 (edges stay edges), so a grid
    of one sample per original pixel holds every whole-pixel crop offset exactly (every other pixel for cells
    of 12 px and more, as in the crop screen: the screen still shows a pixel off, and the candidates carry
    that pixel as their ``spacing`` for the refine), for each cell size; on a central ``window`` of that
    many cells when given (the scale and the samples' phase are exact, so a part of the image tells the
    translation; the candidates read the whole image). ``sparse``: half the samples each way for cells of
    8 px and more (a pixel between them: a quarter of the cost, for a screen of the less likely
    orientations)."""
    width, height = source.width, source.height
    sx = width / wc
    hc = max(1, round(height / sx))
    sy = height / hc
    found: list[Candidate] = []
    for cell in dict.fromkeys(cells):
        spc = min(cell, _whole_pixel_spc(cell))
        spc = spc // 2 if sparse and cell >= 8 else spc  # a pixel off is then an eighth of a cell at most
        matrix = np.array([[cell * sx, 0.0], [0.0, cell * sy]])
        region = None
        if window is not None and (side := math.ceil(window * cell * max(sx, sy)) + 8) < max(width, height):
            region = _central_region(width, height, side)
        screened = dense_screen(
            source,
            lay,
            matrix,
            spc,
            (1.0,),
            family,
            orientations=orientations,
            anchor=((sx - 1) / 2, (sy - 1) / 2),
            coarse=True,
            region=region,
        )
        spacing = (cell / spc - 1) * sx  # every other original pixel: one pixel between the samples
        if region is not None:
            screened = [replace(c, geometry=_extended(c.geometry, width, height)) for c in screened]
        found += [replace(c, spacing=spacing) for c in screened]
    return found


#: Pictures up to this many pixels are also screened as halves of a crop one pixel wider or narrower.
HALVED_BOTH_AREA: Final = 160 * 160


def _halved(source: Source, lay: Layout):
    """A crop keeping 70 % and more (or a mirrored one) halved, on images up to SWEEP_AREA: the original
    pixels are every half pixel (a quarter pixel off the output's), which no pitch scan's samples hit;
    screened on that grid for each cell size the crop's original can have had, on a central window like the
    enlarged crops'. (Halving leaves no interpolation period to show.)"""
    width, height = source.width, source.height
    if width * height > SWEEP_AREA:
        return
    # the cells of an original the crop kept 70 % and more of (2 x this image's size over its own cell)
    own = 2 * math.sqrt(width * height) / CELLS_ACROSS
    cells = [c for c in CELL_SIZES if own / 1.2 <= c <= 1.5 * own]
    # a crop of odd width halved rounds its size; on a small picture (cheap screens) both neighbours too
    widths = [2 * width] + ([2 * width + 1, 2 * width - 1] if width * height <= HALVED_BOTH_AREA else [])
    found = [
        cand
        for wc in widths
        for cand in _on_original_pixels(
            source, lay, wc, cells, "halved", (_ORIENTATIONS[0], _ORIENTATIONS[1]), UPSCALED_CELLS
        )
    ]
    for cand in _best(found, z=UPSCALED_Z):
        yield refine(source, lay, cand, 0.125, levels=2, scale=0.002)


#: A crop resized by a factor nothing in the image shows (made smaller, or enlarged where the interpolation
#: leaves no period) is searched at lattice pitches from SCALED_PITCHES[0] to [1] times the image's own cell
#: (the pitch is the original's cell x output / crop width: 1.0-1.43 for crops keeping 70-100 % of each side
#: of a 256 or 512 px original, whatever size they were resized to), in steps of SCALED_STEP (log scale),
#: each screened for every translation on a central window of SCALED_CELLS cells: there the screen holds
#: to about 1.25 % of scale (z ~10 at the right pitch, ~7 at 1.25 % off; chance reaches ~4.5 over the
#: scan). The scan costs about the same at any image size, so images up to SWEEP_AREA, whose other
#: searches are cheap, also get crops keeping 60-70 % (SMALL_SCALED_PITCHES: below that, the benchmark's
#: crops enlarged by 1.5 or 2 are found by their interpolation or not at all); images up to MIRROR_AREA a
#: mirrored copy too (a selfie's).
SCALED_PITCHES: Final = (0.95, 1.45)
SMALL_SCALED_PITCHES: Final = (0.84, 2.05)
SCALED_STEP: Final = 0.025
#: 36 cells and 4 samples a cell fill two tiles' fold (the screen's FFT) without padding.
SCALED_CELLS: Final = 36
#: The best SCALED_KEEP window screens from SCALED_Z standard deviations of chance are checked on a larger
#: central region of SCALED_CHECK_CELLS cells, in scale steps of SCALED_CHECK_STEP and offsets of an eighth
#: of a cell (what the scan's steps and samples leave), and refined on the whole image from there.
SCALED_Z: Final = 3.8
SCALED_KEEP: Final = 2
SCALED_CHECK_CELLS: Final = 44
SCALED_CHECK_STEP: Final = 0.004


def _central_region(width: int, height: int, side: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the central ``side`` x ``side`` pixels of an image (all of an axis shorter than
    that)."""
    x0, y0 = max(0, (width - side) // 2), max(0, (height - side) // 2)
    return x0, y0, min(width, x0 + side), min(height, y0 + side)


def _central_window(source: Source, side: int) -> tuple[Source, int, int]:
    """The central ``side`` x ``side`` pixels of ``source`` as a source of their own, with its top-left
    corner in the image."""
    x0, y0, x1, y1 = _central_region(source.width, source.height, side)
    window = (slice(y0, y1), slice(x0, x1))
    return Source(source.luma[window], source.taper[window]), x0, y0


def _scaled(source: Source, lay: Layout):
    """A crop resized by an unknown factor: a scan of the lattice pitch, each pitch screened for every
    translation (and a mirror) on a central window; the likeliest checked in scale and offset on a larger
    central region, and refined on the whole image."""
    area = source.width * source.height
    small = area <= SWEEP_AREA
    # as is; mirrored (a selfie's), on pictures up to MIRROR_AREA
    orientations = (_ORIENTATIONS[0], _ORIENTATIONS[1]) if area <= MIRROR_AREA else _ORIENTATIONS[:1]
    found = _pitch_scan(source, lay, SMALL_SCALED_PITCHES if small else SCALED_PITCHES, "scaled", orientations)
    yield from _checked(source, lay, found, "scaled")


def _pitch_scan(
    source: Source,
    lay: Layout,
    ratios: tuple[float, float],
    family: str,
    orientations: tuple,
    turn: np.ndarray | None = None,
    picture: float | None = None,
) -> list[Candidate]:
    """Window screens of the lattice at pitches from ``ratios[0]`` to ``[1]`` times this image's own cell in
    SCALED_STEP steps (turned by ``turn``, when given), the best of each (see _scaled). ``picture``: the
    share of the image's area a picture inside it takes (a rotation's on an expanded canvas), whose own
    cell is smaller: the scan starts at ``ratios[0]`` times that one where it is."""
    own = math.sqrt(source.width * source.height) / CELLS_ACROSS
    lo, hi = (math.log(own * r) for r in ratios)
    if picture is not None:
        lo = min(lo, math.log(own * math.sqrt(picture) * ratios[0]))
    found: list[Candidate] = []
    windows: dict[int, tuple[Source, int, int]] = {}
    for pitch in np.exp(np.arange(lo, hi + 1e-9, SCALED_STEP)):
        if pitch < 1.5:
            continue
        # one window per band-pass step (its planes are shared), sized for that step's largest pitch
        key = round(math.log(pitch) / COARSE_STEP)
        if key not in windows:
            windows[key] = _central_window(
                source, int(math.ceil(SCALED_CELLS * math.exp((key + 0.5) * COARSE_STEP))) + 8
            )
        sub, x0, y0 = windows[key]
        matrix = (np.eye(2) if turn is None else turn) * pitch
        screened = dense_screen(sub, lay, matrix, 4, (1.0,), family, 1, orientations, coarse=True)
        # in the image's pixels (the read's extent is set for the likeliest, see _extended)
        found += [replace(c, geometry=_moved(c.geometry, x0, y0)) for c in screened]
    return found


def _checked(source: Source, lay: Layout, found: list[Candidate], family: str, turned: bool = False):
    """The likeliest window screens of a scan (SCALED_KEEP from SCALED_Z), each checked on a larger central
    region in scale (``turned``: in angle, TURN_CHECK_STEP) and offset, and refined on the whole image."""
    width, height = source.width, source.height
    centre = ((width - 1) / 2.0, (height - 1) / 2.0)
    checked = []
    for cand in _best(found, limit=SCALED_KEEP, z=SCALED_Z):
        cand = replace(cand, geometry=_extended(cand.geometry, width, height))
        step = cand.geometry.cell_sizes[0] / 8
        trials = [
            _moved(
                cand.geometry,
                dx * step,
                dy * step,
                k * TURN_CHECK_STEP if turned else 0.0,
                1.0 if turned else 1.0 + k * SCALED_CHECK_STEP,
                centre,
            )
            for k in range(-3, 4)
            for dx, dy in ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))
        ]
        fits, zs = screen_geometries(source, lay, [_central(g, SCALED_CHECK_CELLS) for g in trials])
        k = int(np.argmax(zs))
        checked.append(Candidate(trials[k], 1.0, float(fits[k]), family, float(zs[k])))
    for cand in _best(checked):
        pitch = cand.geometry.cell_sizes[0]
        if turned:
            yield refine(source, lay, cand, pitch / 16, levels=2, turn=0.05)
        else:
            yield refine(source, lay, cand, pitch / 16, levels=3, scale=0.004)


#: A picture turned in its own frame whose corners were then cropped away (and re-encoded: no fill, no
#: resampling trace) is searched at every TURN_SCAN_STEP degrees up to TURN_SCAN_MAX each way, each angle
#: screened for every translation on the scan's central window (which holds to about +-0.35 degree): to 15,
#: where a crop to 80 % of a square still leaves no fill (rotate 15 + crop 80 % + JPEG 75: 0 of 12 found with
#: the scan to 12, 10-11 of 12 to 15, at 256 and 512 px).
TURN_SCAN_STEP: Final = 1.0
TURN_SCAN_MAX: Final = 15.0
#: The scan's window, in cells: a fifth over SCALED_CELLS on images up to SWEEP_AREA (rotate 10 + crop 80 % +
#: JPEG 75 at 256 px: 0.90 found, 0.82 with SCALED_CELLS, 0.83 with the whole image), SCALED_CELLS above (as
#: many found at 512 px, 0.94, at three quarters of the time).
TURN_SCAN_CELLS: Final = (1.2 * SCALED_CELLS, SCALED_CELLS)
#: Angle steps (degrees) of the check of a turned scan's likeliest (+-3 steps: what the scan's step leaves).
TURN_CHECK_STEP: Final = 0.12


def _turned_crop(source: Source, lay: Layout):
    """A rotation cropped to no fill: a scan of the angle (see TURN_SCAN_STEP) at the cell sizes of a crop
    keeping 70 % and more; the likeliest checked and refined like the scaled family's; a nearest-neighbour
    rotation cropped about its centre undone at the likeliest angles (TURN_UNDO_ANGLES)."""
    width, height = source.width, source.height
    own = math.sqrt(width * height) / CELLS_ACROSS
    small = width * height <= SWEEP_AREA
    window = TURN_SCAN_CELLS[0] if small else TURN_SCAN_CELLS[1]
    cells = [c for c in CELL_SIZES if own / 1.05 <= c <= 1.45 * own]
    found: list[Candidate] = []
    for cell in cells:
        sub, x0, y0 = _central_window(source, int(math.ceil(window * cell)) + 8)
        for turn in np.arange(TURN_SCAN_STEP, TURN_SCAN_MAX + 1e-9, TURN_SCAN_STEP):
            for angle in (math.radians(turn), -math.radians(turn)):
                rot = _turn(angle)
                screened = dense_screen(sub, lay, rot * cell, 4, (1.0,), "turned", 1, _ORIENTATIONS[:1], coarse=True)
                found += [replace(c, geometry=_moved(c.geometry, x0, y0)) for c in screened]
    yield from _checked(source, lay, found, "turned", turned=True)
    ranked = sorted(found, key=lambda c: c.z, reverse=True)
    angles = list(dict.fromkeys(round(_angle(c.geometry)) for c in ranked))[:TURN_UNDO_ANGLES]
    undone = [c for angle in angles for c in _centre_cropped(source, lay, angle, cells, None if small else window)]
    yield from _best(undone, limit=1, z=Z_DECODE if small else TURN_UNDO_Z)


#: A nearest-neighbour rotation cropped about its centre is undone at the angle scan's likeliest whole
#: angles, this many (the nearest pixel's half-pixel jitter is an eighth of a 4 px cell, which the scan's
#: screen does not tolerate on textured photos: rotate 10 + crop 80 % + JPEG 75 at 256 px, the undo reads
#: z 8-23 on every photo the scan missed, and the scan ranks the true angle first on 6 of 10 of them; at
#: 512 px the true angle is second on 2 of the 6 it missed, both found by the undo).
TURN_UNDO_ANGLES: Final = 2
#: A window screen of one lattice phase (large images) decodes from this z (chance reaches ~4).
TURN_UNDO_Z: Final = 5.0


def _centre_cropped(
    source: Source, lay: Layout, angle: float, cells: list[int], window: float | None = None
) -> list[Candidate]:
    """A nearest-neighbour ``rotate(angle)`` (same canvas) of a picture of even width and height (every
    common size), then cropped about its centre to this image, restored exactly, and screened for every
    translation at each of ``cells``. Which source pixel each image pixel copies depends on the crop's
    position from the rotation's centre, which for a centred crop is fixed up to the parity of the
    original's sides: any even size large enough restores the same picture moved by whole pixels (by
    half the difference of the sides).

    Screened at every whole pixel over the whole picture; or (``window``, for large images) only at the
    lattice phases an original of a common size gives, one sample a cell on a central window of that many
    cells, restored alone (the whole picture only for a candidate from TURN_UNDO_Z): a fraction of the
    cost."""
    width, height = source.width, source.height
    t = math.radians(abs(angle))
    w0, h0 = (
        2 * math.ceil((width * math.cos(t) + height * math.sin(t)) / 2 + 1),
        2 * math.ceil((width * math.sin(t) + height * math.cos(t)) / 2 + 1),
    )
    box = _centred_box((w0, h0), (width, height))

    def undone(cand: Candidate, picture: Source) -> Candidate:
        geometry = _extended(cand.geometry, w0, h0)
        reported = _turned_back(geometry, angle, (w0, h0), box, (width, height))
        return replace(cand, geometry=geometry, source=picture, reported=reported)

    if window is None:
        restored = nearest.unrotate(source.luma, source.taper, angle, (w0, h0), box)
        if restored is None:
            return []
        picture = Source(*restored)
        return [
            undone(cand, picture)
            for cell in cells
            for cand in dense_screen(
                picture, lay, np.eye(2) * cell, _whole_pixel_spc(cell), (1.0,), "turned", 1, _ORIENTATIONS[:1]
            )
        ]
    # the window and the band-pass's reach around it
    x0, y0, x1, y1 = _central_region(w0, h0, math.ceil((window + 6) * max(cells)) + 16)
    part = nearest.unrotate(source.luma, source.taper, angle, (w0, h0), box, (x0, y0, x1, y1))
    if part is None:
        return []
    part_source, whole = Source(*part), None
    found = []
    for cell in cells:
        # the original's pixel u is the picture's u + (w0 - W) / 2: for a common W (ORIGINAL_SIZES) its lattice
        # lies at one of a few phases modulo the cell (one for cells dividing 16)
        phases = [
            sorted({((side - size) // 2 - start) % cell for size in ORIGINAL_SIZES if extent <= size <= 2 * extent})
            for side, extent, start in ((w0, width, x0), (h0, height, y0))
        ]
        region = _central_region(x1 - x0, y1 - y0, math.ceil(window * cell) + 8)
        for anchor in itertools.product(*phases):
            for cand in dense_screen(
                part_source, lay, np.eye(2) * cell, 1, (1.0,), "turned", 1, _ORIENTATIONS[:1], anchor, region=region
            ):
                if cand.z >= TURN_UNDO_Z:
                    whole = whole or Source(*nearest.unrotate(source.luma, source.taper, angle, (w0, h0), box))
                    found.append(undone(replace(cand, geometry=_moved(cand.geometry, x0, y0)), whole))
    return found


def _extended(geometry: Geometry, width: int, height: int) -> Geometry:
    """The same lattice read over the whole image (a geometry found on a window of it)."""
    a, b, c, d = geometry.matrix
    m = np.array([[a, b], [c, d]])
    offset = np.array(geometry.offset)
    corners = np.array([[0, 0], [width - 1, 0], [0, height - 1], [width - 1, height - 1]], dtype=np.float64)
    kr = (corners - offset) @ np.linalg.inv(m).T  # lattice (column, row) of each corner
    lo, hi = np.ceil(kr.min(axis=0) - 1e-6).astype(int), np.floor(kr.max(axis=0) + 1e-6).astype(int)
    start = m @ lo + offset
    i0, j0 = geometry.origin
    return Geometry(
        geometry.matrix,
        (float(start[0]), float(start[1])),
        (i0 + int(lo[1]), j0 + int(lo[0])),
        (int(hi[1] - lo[1]) + 1, int(hi[0] - lo[0]) + 1),
    )


#: Angles (degrees) a straightened picture is searched at: every TURN_STEP up to MAX_TURN each way.
MAX_TURN: Final = 16.0
TURN_STEP: Final = 0.4


def _straightened(source: Source, lay: Layout):
    """A picture turned about its centre and cropped to the largest upright rectangle of its aspect inside
    (a "straighten" tool), kept at that size or rescaled to the original's, or turned in its own frame
    (corners cut off), or on a canvas expanded to hold it: for each angle the original's size follows, so
    the lattice is known but for the angle; screened on a central region, where a small error of angle
    moves the lattice least. (The corners' fill, when the rotation cue reads it, gives the angle directly.)"""
    width, height = source.width, source.height
    hypotheses = [
        (sign * turn, kind)
        for turn in np.arange(TURN_STEP, MAX_TURN + 1e-9, TURN_STEP)
        for sign in (1.0, -1.0)
        for kind in STRAIGHTENED
    ]
    geometries = [_straightening(width, height, angle, kind) for angle, kind in hypotheses]
    kept = [n for n, g in enumerate(geometries) if g is not None]
    fits, zs = screen_geometries(source, lay, [_central(geometries[n], TURN_SCREEN_CELLS) for n in kept])
    found = [Candidate(geometries[n], 1.0, float(f), "straightened", float(z)) for n, f, z in zip(kept, fits, zs)]
    # a central region this small misses pictures whose centre is flat or white, the angle grid is coarse for
    # the whole picture, and a crop's whole pixels move its box by up to a pixel from the angle's: the
    # likeliest few screened again on a larger region, the best of those at finer angles and a pixel each
    # way (STRAIGHTENED_CHECK), then refined
    likeliest = [int(n) for n in np.argsort(-zs)[:STRAIGHTENED_RECHECK]]
    checked = []
    if likeliest:
        fits2, zs2 = screen_geometries(
            source, lay, [_central(geometries[kept[n]], SCALED_CHECK_CELLS) for n in likeliest]
        )
        found += [replace(found[n], fitness=float(fits2[k]), z=float(zs2[k])) for k, n in enumerate(likeliest)]
        angle, kind = hypotheses[kept[likeliest[int(np.argmax(zs2))]]]
        trials = [
            g
            for step in range(-STRAIGHTENED_CHECK[0], STRAIGHTENED_CHECK[0] + 1)
            for delta in ((-1, 0, 1) if kind in ("kept", "rescaled") else (0,))
            if (g := _straightening(width, height, angle + step * STRAIGHTENED_CHECK[1], kind, delta)) is not None
        ]
        fits3, zs3 = screen_geometries(source, lay, [_central(g, STRAIGHTENED_CHECK[2]) for g in trials])
        k = int(np.argmax(zs3))
        checked.append(Candidate(trials[k], 1.0, float(fits3[k]), "straightened", float(zs3[k])))
    refined = [
        refine(source, lay, cand, 0.25, levels=3, turn=0.1, scale=0.002)
        for cand in _best(checked, limit=1, z=3.5) + _best(found, limit=1, z=3.5)
    ]
    yield from _best(refined)
    # Pillow's default rotation copies the nearest pixel (half a pixel of jitter the read does not take):
    # undo it exactly for the best angles, rounded as people type them
    found.sort(key=lambda c: c.z, reverse=True)
    # (the nearest-neighbour duplicates' angle, good to ~0.05 degree: the half degree it is on, else its
    # tenth; then the screen's likeliest angles and the resampling trace's, whose sign it cannot tell)
    copied = [a for a, _ in cues.nearest_rotation(source.channels, 1)] if source.channels is not None else []
    exact = [round(t * 2) / 2 if abs(t * 2 - round(t * 2)) <= 0.2 else round(t, 1) for t in copied]
    likely = [_angle(c.geometry) for c in sorted(refined, key=lambda c: c.z, reverse=True)]
    likely += [a * sign for a in cues.rotation_traces(source.luma, 2) for sign in (1, -1)]
    likely += [_angle(c.geometry) for c in found[:3]]
    budget = 6 if width * height <= 400 * 400 else 3  # each undo is a rotation of an index image
    angles = list(dict.fromkeys([*exact, *(a for t in likely for a in (round(t), round(t * 2) / 2) if a)]))[:budget]
    undone = []
    for angle in angles:
        if (cand := _undone(source, lay, angle, (width, height), "straightened")) is not None:  # corners cut off
            undone.append(cand)
        for w0, h0 in _inner_originals(width, height, angle):
            box = _centred_box((w0, h0), (width, height))
            if (cand := _undone(source, lay, angle, (w0, h0), "straightened", box)) is not None:
                undone.append(cand)
    yield from _best(undone, limit=1, z=4.0)
    # a small image (cheap to undo) whose rotation left no fill the cue reads (dark corners) and no trace:
    # every whole degree, each restored picture screened on a central region first
    if width * height <= SWEEP_AREA:
        for angle in (sign * d for d in range(1, SWEEP_TURN + 1) for sign in (1, -1)):
            if angle in angles:
                continue
            cand = _undone(source, lay, angle, (width, height), "straightened", gate=3.0)
            if cand is not None and cand.z >= 4.0:
                yield cand


#: A straightened picture's hypotheses: kept at the inner rectangle's size, rescaled to the original's, not
#: cropped (its corners cut off: a rotation whose fill the cue missed, such as on a picture with a dark
#: frame), or on a canvas expanded to hold the whole turned picture (Pillow's expand: w c + h s wide).
STRAIGHTENED: Final = ("kept", "rescaled", "cut", "expanded")
#: The straightened screen's STRAIGHTENED_RECHECK likeliest are screened again on SCALED_CHECK_CELLS; the
#: best of those is checked at +-STRAIGHTENED_CHECK[0] angle steps of [1] degrees (the screen's grid is
#: TURN_STEP), its box a pixel each way, on a central region of [2] cells.
STRAIGHTENED_RECHECK: Final = 6
STRAIGHTENED_CHECK: Final = (2, 0.1, 32)


def _straightening(width: int, height: int, angle: float, kind: str, delta: int = 0) -> Geometry | None:
    """The lattice of a picture of this image's aspect turned by ``angle`` degrees about its centre and
    straightened the STRAIGHTENED ``kind`` of way, giving this image: the crop's whole pixels as a crop
    takes them (the box ``delta`` pixels wider than the angle gives, for the screen's neighbours); None when
    the original would be smaller than 32 px."""
    t = math.radians(abs(angle))
    rot = _turn(math.radians(angle))
    share = _inner_share(width / height, t)
    if kind == "kept":  # the original the inner rectangle came from
        size = (round(width / share) + delta, round(height / share) + delta)
        box = _centred_box(size, (width, height))
    elif kind == "rescaled":
        size = (width, height)
        box = _centred_box(size, (int(width * share) + delta, int(height * share) + delta))
    elif kind == "cut":
        size, box = (width, height), (0.0, 0.0, width, height)
    else:
        cos, sin = math.cos(t), math.sin(t)
        size = (
            round((width * cos - height * sin) / (cos * cos - sin * sin)),
            round((height * cos - width * sin) / (cos * cos - sin * sin)),
        )
        box = _centred_box(size, (width, height), whole=False)
    if min(size) < 32 or box[2] <= box[0] or box[3] <= box[1]:
        return None
    return _turned_lattice(rot, size, box, (width, height))


def _centred_box(
    size: tuple[int, int], inner: tuple[int, int], whole: bool = True
) -> tuple[float, float, float, float]:
    """The ``inner`` box about the centre of a picture of ``size`` (``whole``: at whole pixels, as a crop
    takes it, the odd pixel of the margins on the right and bottom)."""
    (w, h), (cw, ch) = size, inner
    left, top = ((w - cw) // 2, (h - ch) // 2) if whole else ((w - cw) / 2, (h - ch) / 2)
    return (left, top, left + cw, top + ch)


def _turned_lattice(
    rot: np.ndarray, size: tuple[int, int], box: tuple[float, float, float, float], out: tuple[int, int]
) -> Geometry:
    """The lattice of a ``size`` original turned by ``rot`` about its centre (as Pillow turns: pixel corners at
    whole coordinates), the ``box`` of the turned frame kept and resized to ``out``: lattice point (i, j) is
    the original's pixel (j c0, i c0)."""
    w0, h0 = size
    c0 = cell_size(w0, h0)
    left, top, right, bottom = box
    sx, sy = out[0] / (right - left), out[1] / (bottom - top)
    (a, b), (c, d) = rot.tolist()
    # (scalar arithmetic: the straightened family builds hundreds of these per image, and 2 x 2 numpy
    # products cost more than the rest of it)
    cx, cy = w0 / 2.0, h0 / 2.0
    offset = (
        sx * (cx + a * (0.5 - cx) + b * (0.5 - cy) - left) - 0.5,
        sy * (cy + c * (0.5 - cx) + d * (0.5 - cy) - top) - 0.5,
    )
    return Geometry(
        (sx * a * c0, sx * b * c0, sy * c * c0, sy * d * c0),
        offset,
        (0, 0),
        ((h0 - 1) // c0 + 1, (w0 - 1) // c0 + 1),
    )


def _inner_originals(width: int, height: int, angle: float) -> list[tuple[int, int]]:
    """The sizes (w0, h0) whose largest inner rectangle of their own aspect, turned by ``angle`` degrees, is
    ``width`` x ``height`` pixels (whole pixels, rounded down: see attacks.inner_rectangle). The crop's aspect
    is the original's only to a pixel, so both sides are searched: one to three sizes match, of which the
    two nearest the crop's aspect are kept (each is an undo)."""
    t = math.radians(abs(angle))
    k = _inner_share(width / height, t)
    sizes = [
        (w0, h0)
        for w0 in range(math.ceil(width / k) - 2, math.ceil((width + 1) / k) + 2)
        for h0 in range(math.ceil(height / k) - 2, math.ceil((height + 1) / k) + 2)
        if min(w0, h0) >= 32 and (int(w0 * (share := _inner_share(w0 / h0, t))), int(h0 * share)) == (width, height)
    ]
    return sorted(sizes, key=lambda s: abs(math.log(s[0] * height / (s[1] * width))))[:2]


def _inner_share(aspect: float, t: float) -> float:
    """The largest rectangle of aspect ``aspect`` (width / height) inside one of that aspect turned by ``t``
    radians, as a share of its sides (see attacks.inner_rectangle)."""
    return min(aspect / (aspect * math.cos(t) + math.sin(t)), 1.0 / (aspect * math.sin(t) + math.cos(t)))


#: Images up to this many pixels (whose other searches are cheap) have a nearest-neighbour rotation undone at
#: every whole degree to SWEEP_TURN each way, the pitch scan's wider range (see _scaled) and the angle scan's
#: larger window (see TURN_SCAN_CELLS).
SWEEP_AREA: Final = 300 * 300
#: Pictures up to this many pixels are also pitch-scanned mirrored (a mirrored crop resized is found by
#: nothing else; a mirrored whole picture resized is, by the resized family; above this the mirror costs
#: ~4 % of a 512 px unmarked picture's time, over its speed budget).
MIRROR_AREA: Final = 400 * 400
SWEEP_TURN: Final = 10


#: The search's families in the order they run: (name, candidates(source, layout)).
FAMILIES: Final = (
    ("as marked", _as_marked),
    ("crop", _cropped),
    ("resized", lambda source, lay: _resized(source, lay)),
    ("rotated", _turned),
    ("framed", _framed),
    ("upscaled", _upscaled),
    ("halved", _halved),
    ("scaled", _scaled),
    ("turned crop", _turned_crop),
    ("straightened", _straightened),
)


def _angle(geometry: Geometry) -> float:
    """The counter-clockwise rotation (degrees) of a geometry's lattice columns."""
    a, _, c, _ = geometry.matrix
    return math.degrees(math.atan2(-c, a))


#: An undone rotation's central region (SCREEN_CELLS cells and the band-pass's reach) is restored and read
#: first; the whole picture only from this z (a marked picture's region reads ~10-20 once undone right;
#: each whole undo costs ~4 ms at 512 px, most of a straightened search's time on an unmarked picture).
UNDO_SCREEN_Z: Final = 2.0


def _undone(
    source: Source,
    lay: Layout,
    angle: float,
    size: tuple[int, int],
    family: str,
    box: tuple[int, int, int, int] | None = None,
    gate: float = UNDO_SCREEN_Z,
) -> Candidate | None:
    """The identity read of the ``size`` (w, h) picture a nearest-neighbour ``rotate(angle)`` (expanded, or
    cropped to ``box``) turned into this image, restored exactly; None when no such rotation gives this
    image's size, or when the picture's central region, restored alone, scores under ``gate`` deviations of
    chance. The candidate reports its geometry in this image's pixels."""
    w0, h0 = size
    c0 = cell_size(w0, h0)
    # the restored picture as marked, or flipped or turned a quarter (before the rotation): its centre
    # region's bounding box, in each orientation the same
    geometries = _orientations(w0, h0)
    central = [_central(g, SCREEN_CELLS) for g in geometries]
    reach = 3 * c0 + 16  # the band-pass's and the pyramid's
    corners = np.array([_corners(g) for g in central]).reshape(-1, 2)
    x0, y0 = (max(0, int(v) - reach) for v in corners.min(axis=0))
    x1, y1 = (int(v) + reach + 1 for v in corners.max(axis=0))
    window = (x0, y0, min(w0, x1), min(h0, y1))
    part = nearest.unrotate(source.luma, source.taper, angle, size, box, window)
    if part is None:
        return None
    zs = screen_geometries(Source(*part), lay, [_moved(g, -x0, -y0) for g in central])[1]
    k = int(np.argmax(zs))
    if zs[k] < gate:
        return None
    geometry = geometries[k]
    picture = Source(*nearest.unrotate(source.luma, source.taper, angle, size, box))
    fits, zs = _reading_z(lay, picture.read(geometry), np.array([1.0]))
    reported = _turned_back(geometry, angle, size, box, (source.width, source.height))
    return Candidate(geometry, 1.0, float(fits[0]), family, float(zs[0]), picture, reported)


@functools.lru_cache(maxsize=1024)
def _orientations(width: int, height: int) -> tuple[Geometry, ...]:
    """The lattice of an image of this size marked as it is, flipped, or turned a quarter (the 8 ways): as
    marked first."""
    out = []
    for transpose, flip_x, flip_y in _ORIENTATIONS:
        w0, h0 = (height, width) if transpose else (width, height)  # the original's size
        c0 = float(cell_size(w0, h0))
        # image x = a column + b row + ox: a transpose swaps the matrix's columns; a flip of the image's x
        # negates the matrix's row and starts at the far side
        sx, sy = (-c0 if flip_x else c0), (-c0 if flip_y else c0)
        matrix = (0.0, sx, sy, 0.0) if transpose else (sx, 0.0, 0.0, sy)
        offset = (float(width - 1) if flip_x else 0.0, float(height - 1) if flip_y else 0.0)
        out.append(Geometry(matrix, offset, (0, 0), ((h0 - 1) // int(c0) + 1, (w0 - 1) // int(c0) + 1)))
    return tuple(out)


def _corners(geometry: Geometry) -> list[tuple[float, float]]:
    """The image positions of a geometry's four corner lattice points."""
    a, b, c, d = geometry.matrix
    rows, cols = geometry.cells
    return [
        (geometry.offset[0] + a * k + b * r, geometry.offset[1] + c * k + d * r)
        for k in (0, cols - 1)
        for r in (0, rows - 1)
    ]


def _turned_back(
    geometry: Geometry,
    angle: float,
    size: tuple[int, int],
    box: tuple[int, int, int, int] | None,
    image_size: tuple[int, int],
) -> Geometry:
    """A geometry on a picture of ``size`` restored from a nearest-neighbour ``rotate(angle)`` (expanded, or
    cropped to ``box``), in the rotated image's pixels. Pillow turns about the centres (pixel corners at
    whole coordinates): the picture's centre lands on the canvas's, or on the uncropped frame's for a crop
    to ``box``."""
    turn = _turn(math.radians(angle))
    centre = np.array(size) / 2.0
    canvas = centre - np.array(box[:2]) if box else np.array(image_size) / 2.0
    offset = turn @ (np.array(geometry.offset) + 0.5 - centre) + canvas - 0.5
    return replace(
        geometry,
        matrix=tuple(float(v) for v in (turn @ np.array(geometry.matrix).reshape(2, 2)).ravel()),
        offset=(float(offset[0]), float(offset[1])),
    )
