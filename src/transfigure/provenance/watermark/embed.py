"""Embedding: move every slot's channel value onto its keyed lattice (QIM), block by block.

Each block's three channel values are quantised independently (dither modulation: the lattice of slot
s is DELTA x (integers + dither_s + bit / 2)), so every block carries its bits on its own and any part of
the image, a crop at any offset included, reads as the embedder wrote it. The change is synthesised as
band-limited bumps at the lattice points (the read's own band-pass, its adjoint: the most read for the
least distortion), faded out where the read cannot see it (the saturation taper of :mod:`.planes`) and
driven harder on the rest of a block, and refined by reading the actual output (rounding, clipping and
the neighbours' overlap included) with a secant gain per slot. Blocks that are almost all white or
black carry nothing (the detector weights them out).
"""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Final

import cv2
import numpy as np
from PIL import Image

from transfigure.provenance.keys import resolve_watermark_key
from transfigure.provenance.watermark import planes as pl
from transfigure.provenance.watermark.layout import CHANNELS, CHIPS, DELTA, cell_size, layout
from transfigure.provenance.watermark.read import Geometry, band_planes, bandpass, level, read, reduce
from transfigure.provenance.watermark.sync import read_identity

__all__ = ["embed_watermark"]

ITERATIONS: Final = 3
#: A slot's amplitude never exceeds this many DELTA / (its gain) (a QIM move is at most DELTA / 2): a slot
#: the read barely sees (clipped, at the border) would otherwise soak up the distortion budget.
AMPLITUDE_CAP: Final = 0.75


def _cell_amplitudes(channel_amplitudes: np.ndarray) -> np.ndarray:
    rows, cols = channel_amplitudes.shape[:2]
    return np.einsum("ijk,kab->iajb", channel_amplitudes, CHIPS).reshape(2 * rows, 2 * cols)


def _pattern(cell_amplitudes: np.ndarray, shape: tuple[int, int], c0: int) -> np.ndarray:
    """The luminance change that puts these amplitudes at the lattice points: band-limited bumps, the
    adjoint of the read (band-pass at the read's pyramid level, brought up to full resolution)."""
    lv = level(c0, c0)
    small = [shape]
    for _ in range(lv):
        small.append(((small[-1][0] + 1) // 2, (small[-1][1] + 1) // 2))
    step = c0 / 2**lv
    impulses = np.zeros(small[-1], dtype=np.float32)
    rows = min(cell_amplitudes.shape[0], (shape[0] - 1) // c0 + 1)
    cols = min(cell_amplitudes.shape[1], (shape[1] - 1) // c0 + 1)
    ys, xs = np.arange(rows) * step, np.arange(cols) * step
    if step == int(step):
        impulses[: rows * int(step) : int(step), : cols * int(step) : int(step)] = cell_amplitudes[:rows, :cols]
    else:  # lattice points between pixels: split each impulse bilinearly
        y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
        fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
        a = cell_amplitudes[:rows, :cols]
        for dy, wy in ((0, 1 - fy), (1, fy)):
            for dx, wx in ((0, 1 - fx), (1, fx)):
                yy, xx = np.minimum(y0 + dy, impulses.shape[0] - 1), np.minimum(x0 + dx, impulses.shape[1] - 1)
                np.add.at(impulses, (yy[:, None], xx[None, :]), (a * wy * wx).astype(np.float32))
    pattern = bandpass(impulses, step) * np.float32(step * step)
    for size in reversed(small[:-1]):
        pattern = cv2.pyrUp(pattern, dstsize=(size[1], size[0]))
    return pattern


@functools.lru_cache(maxsize=64)
def _channel_gain(height: int, width: int, c0: int) -> np.ndarray:
    """(CHANNELS,): how much a unit amplitude moves its own channel value (random +-1 probe patterns)."""
    geometry = Geometry.identity(c0, height, width)
    rng = np.random.default_rng(0)
    rows, cols = geometry.cells[0] // 2, geometry.cells[1] // 2
    ones = np.ones((height, width), dtype=np.float32)
    gains = []
    for k in range(CHANNELS):
        probe = np.zeros((rows, cols, CHANNELS), dtype=np.float32)
        probe[..., k] = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), (rows, cols))
        response = read(band_planes(_pattern(_cell_amplitudes(probe), (height, width), c0), ones, c0), geometry).values
        r, c = response.shape[:2]
        gains.append(float((response[..., k] * probe[:r, :c, k]).sum() / (probe[:r, :c, k] ** 2).sum()))
    return np.array(gains, dtype=np.float32)


def embed_watermark(image: Image.Image, payload: bytes, key: bytes | None = None) -> Image.Image:
    """Return a copy of ``image`` (same size and mode) carrying ``payload`` (8 bytes) under ``key``.

    ``key`` defaults to ``$TRANSFIGURE_WATERMARK_KEY`` (else the development key, with a warning).
    The PSNR to the input is at least ``MIN_PSNR`` (42.2 dB; typically ~42.5 dB) on the marked channels.

    Raises:
        ValueError: payload not 8 bytes, image smaller than 32x32, or a mode Pillow cannot round-trip.
    """
    key = resolve_watermark_key(key)
    lay = layout(key)
    bits = lay.slot_bits(payload)
    width, height = image.size
    c0 = cell_size(width, height)
    planes = pl.planes(image)
    original = planes.values
    clamp = pl.read_clamp(float(planes.luma(original).mean()))
    geometry = Geometry.identity(c0, height, width)
    taper = pl.saturation_taper(original, clamp)
    if taper.shape[2] == 3:
        taper = taper * pl.CHANNEL_SHARE
    first_planes = band_planes(pl.clamped_luma(original, clamp), pl.clamped_luma(taper, None), c0)
    lv = first_planes.level

    def reading(values: np.ndarray):  # the support (from the original's taper) stays
        band = bandpass(reduce(pl.clamped_luma(values, clamp), lv), c0 / 2**lv)
        return read(replace(first_planes, band=band), geometry)

    first = read(first_planes, geometry)
    slots = first.slots
    offset = (lay.dither[slots] + bits[slots] / 2.0) * DELTA
    values = first.values
    target = np.round((values - offset) / DELTA) * DELTA + offset
    live = (first.weights > 0).astype(np.float32)
    nominal = _channel_gain(height, width, c0) * np.maximum(first.weights, np.float32(0.3))
    gain = np.broadcast_to(nominal, values.shape).astype(np.float32)
    cap = AMPLITUDE_CAP * DELTA / nominal
    amplitudes = np.zeros(values.shape, dtype=np.float32)
    pattern = np.zeros_like(original)
    marked = original
    previous: tuple[np.ndarray, np.ndarray] | None = None
    for iteration in range(ITERATIONS):
        if previous is not None:  # per-slot secant gain: what the last change of amplitude really moved
            moved = amplitudes - previous[1]
            ok = np.abs(moved) > 1e-3
            secant = (values - previous[0]) / np.where(ok, moved, 1.0)
            gain = np.clip(np.where(ok, secant, gain), 0.3 * nominal, 2.0 * nominal).astype(np.float32)
        previous = (values, amplitudes.copy())
        amplitudes = np.clip(amplitudes + live * (target - values) / gain, -cap, cap)
        pattern = _pattern(_cell_amplitudes(amplitudes), (height, width), c0)[..., None] * taper
        marked = planes.finish(original + pattern)
        if iteration < ITERATIONS - 1:
            values = reading(marked).values
    marked = pl.limit_distortion(planes, marked, pattern)
    out = planes.rebuild(marked)
    if planes.fallback is not None and not _carries(out, key, payload):
        out = planes.fallback(marked)  # the palette was too coarse for the mark: use a fresh one
    return out


def _carries(image: Image.Image, key: bytes, payload: bytes) -> bool:
    """Whether ``image`` reads back (as it is) as ``payload``."""
    found = read_identity(image, key)
    return found is not None and found == payload
