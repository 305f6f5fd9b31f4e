"""Where the mark lives: the cell lattice, blocks, the tile, and everything the key decides.

Geometry, in the pixels of the image as it was marked:

* **Cells** of ``c0 x c0`` pixels, ``c0 = cell_size(width, height)``: about sqrt(width x height) / 64
  (4 px at 256 x 256, 8 px at 512 x 512, so the mark scales with the image and survives downscaling),
  rounded to one of ``CELL_SIZES`` (whole numbers, about sqrt(2) apart). Lattice point (i, j) sits on
  pixel (x = j c0, y = i c0), the origin on the top-left pixel. Because ``c0`` is whole, a crop at any
  whole-pixel offset keeps the lattice on whole pixels; because it takes few values, a crop kept at its
  size (which no longer says how large the original was) leaves only two or three cell sizes to try.
* **Blocks** of 2 x 2 cells. Each carries three values (*channels*): the block's four cell values
  combined with the chips H = [[+, -], [+, -]], V = [[+, +], [-, -]] and D = [[+, -], [-, +]]. The fourth
  combination (the block mean) is left alone: it is the low-frequency part, which the band-pass read
  barely sees, so marking it would cost the most distortion for the least signal.
* **Tile** of ``TILE x TILE`` blocks (20 x 20 cells): block (bi, bj) is *slot* (bi mod TILE, bj mod TILE,
  channel). Its 300 slots carry the 204 coded bits of the message and 96 known pilot bits, each once per
  tile, in a keyed order, each with a keyed dither (pilots in cancelling pairs: see :func:`layout`). A crop
  keeps whole tiles' worth of slots (a 128 x 128 crop of a 256 x 256 image holds 2.6 tiles), and a
  translation is a cyclic shift of the tile.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Final

import numpy as np

from transfigure.provenance.coding import MESSAGE_BITS, N_CODED, PAYLOAD_BITS, check_bits, conv_encode
from transfigure.provenance.keys import derive

__all__ = [
    "CELL_SIZES",
    "CHANNELS",
    "CHIPS",
    "DELTA",
    "Layout",
    "MIN_SIDE",
    "N_PILOTS",
    "N_SLOTS",
    "PAYLOAD_BYTES",
    "TILE",
    "cell_size",
    "layout",
    "payload_bits",
]

PAYLOAD_BYTES: Final = PAYLOAD_BITS // 8
#: Smallest image side that can carry the mark (robustness is specified from 256 px up).
MIN_SIDE: Final = 32
#: Cells across sqrt(width * height), before rounding the cell size to CELL_SIZES.
CELLS_ACROSS: Final = 64
#: The cell sizes a mark can have (pixels).
CELL_SIZES: Final = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)
TILE: Final = 10
CHANNELS: Final = 3
#: Chips of the H, V and D channels over a block's cells, [channel][row][column].
CHIPS: Final = np.array([[[1, -1], [1, -1]], [[1, 1], [-1, -1]], [[1, -1], [-1, 1]]], dtype=np.float32)
N_SLOTS: Final = TILE * TILE * CHANNELS
N_PILOTS: Final = N_SLOTS - N_CODED
#: QIM lattice step of a channel value (0..255 luminance units through the band-pass read): sets the
#: distortion, ~42.5 dB on typical photos.
DELTA: Final = 1.4


@functools.lru_cache(maxsize=4096)
def cell_size(width: int, height: int) -> int:
    """The cell size ``c0`` (pixels, one of CELL_SIZES) for an image of this size: the nearest to
    sqrt(width * height) / 64 (in ratio) that still fits a whole tile each way (cached: a search asks for
    hundreds of hypothetical originals' cells)."""
    if min(width, height) < MIN_SIDE:
        raise ValueError(
            f"image is {width}x{height}: a watermark needs at least {MIN_SIDE}x{MIN_SIDE} pixels "
            "(robustness is specified from 256x256 up)"
        )
    ideal = math.log(math.sqrt(width * height) / CELLS_ACROSS)
    fits = [c for c in CELL_SIZES if 2 * TILE * c <= min(width, height)] or [1]
    return min(fits, key=lambda c: abs(math.log(c) - ideal))


def payload_bits(payload: bytes) -> np.ndarray:
    if not isinstance(payload, (bytes, bytearray)) or len(payload) != PAYLOAD_BYTES:
        got = f"{len(payload)} bytes" if isinstance(payload, (bytes, bytearray)) else type(payload).__name__
        raise ValueError(f"the watermark payload must be exactly {PAYLOAD_BYTES} bytes (64 bits), got {got}")
    return np.unpackbits(np.frombuffer(bytes(payload), dtype=np.uint8))


@dataclass(frozen=True, eq=False)
class Layout:
    """Everything the key decides. Arrays indexed [tile row, tile column, channel] are per slot."""

    check_key: bytes
    symbol: np.ndarray  # (TILE, TILE, CHANNELS) int: the symbol a slot carries (< N_CODED: coded bit, else pilot)
    dither: np.ndarray  # (TILE, TILE, CHANNELS) in [0, 1): the slot's lattice offset in units of DELTA
    pilot_bits: np.ndarray  # (N_PILOTS,) 0/1
    scramble: np.ndarray  # (MESSAGE_BITS,) 0/1

    @functools.cached_property
    def is_pilot(self) -> np.ndarray:
        return self.symbol >= N_CODED

    @functools.cached_property
    def pilot_sign(self) -> np.ndarray:
        """(TILE, TILE, CHANNELS): +-1 on pilot slots (+1 = bit 0), 0 elsewhere."""
        sign = np.zeros(self.symbol.shape, dtype=np.float64)
        sign[self.is_pilot] = 1.0 - 2.0 * self.pilot_bits[self.symbol[self.is_pilot] - N_CODED]
        return sign

    @functools.cached_property
    def pilot_template(self) -> np.ndarray:
        """(CHANNELS, TILE, TILE) complex: sign x exp(-2 pi i dither) on pilot slots, 0 elsewhere. A pilot's
        phasor exp(2 pi i value / DELTA) times this is +1 where it sits on its lattice."""
        return np.moveaxis(self.pilot_sign * np.exp(-2j * np.pi * self.dither), -1, 0)

    def slot_bits(self, payload: bytes) -> np.ndarray:
        """(TILE, TILE, CHANNELS) 0/1: the bit each slot carries for ``payload``."""
        bits = payload_bits(payload)
        message = np.concatenate([bits, check_bits(self.check_key, bits)]) ^ self.scramble
        symbols = np.concatenate([conv_encode(message), self.pilot_bits])
        return symbols[self.symbol]

    def message(self, decoded: np.ndarray) -> tuple[np.ndarray, int]:
        """(payload bits, check bits matched) of a decoded (still scrambled) message."""
        message = decoded ^ self.scramble
        payload, got = message[:PAYLOAD_BITS], message[PAYLOAD_BITS:]
        return payload, int(np.sum(check_bits(self.check_key, payload) == got))


@functools.lru_cache(maxsize=16)
def layout(key: bytes) -> Layout:
    """The key's layout. Pilots come in pairs on two channels of one block, with the same bit and dithers
    half a step apart, so their template phasors cancel: a field of equal phasors (where the picture is
    smooth every channel value is ~0, its phasor ~1) correlates with no shift of the template, and the
    pilot fitness of an unmarked image is centred on 0 without taking local means."""
    rng = np.random.default_rng(int.from_bytes(derive(key, "watermark2/layout"), "little"))
    symbol = np.full((TILE, TILE, CHANNELS), -1)
    dither = rng.random((TILE, TILE, CHANNELS))
    pilot_bits = np.zeros(N_PILOTS, dtype=np.uint8)
    blocks = rng.permutation(TILE * TILE)[: N_PILOTS // 2]
    for n, block in enumerate(blocks):
        i, j = divmod(int(block), TILE)
        a, b = rng.permutation(CHANNELS)[:2]
        symbol[i, j, a], symbol[i, j, b] = N_CODED + 2 * n, N_CODED + 2 * n + 1
        dither[i, j, b] = (dither[i, j, a] + 0.5) % 1.0
        pilot_bits[2 * n] = pilot_bits[2 * n + 1] = rng.integers(0, 2)
    free = np.flatnonzero(symbol.ravel() < 0)
    symbol.ravel()[free] = rng.permutation(N_CODED)
    return Layout(
        check_key=derive(key, "watermark2/check"),
        symbol=symbol,
        dither=dither,
        pilot_bits=pilot_bits,
        scramble=rng.integers(0, 2, MESSAGE_BITS).astype(np.uint8),
    )
