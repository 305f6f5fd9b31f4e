"""Decoding a reading: soft QIM values, pilot fitness, Viterbi, the keyed check, and the result.

A slot instance with channel value v says cos(2 pi (v / (gain DELTA) - dither)): +1 on the lattice of bit
0, -1 on that of bit 1, ~0 when it is unrelated to the mark. A symbol's soft value is the weighted sum
over all its instances in the reading (every tile the image holds; blocks that could not be marked weigh
nothing, and each instance counts as much as the pilots around it agree: see LOCAL_BLOCKS). The pilots'
mean agreement is the *fitness* of a geometry and gain (1 = every pilot on its lattice, ~0 = noise). The
204 coded soft values go to the Viterbi decoder (:mod:`..coding`); the result counts only if its 32 keyed
check bits match, which without this key's mark happens with probability 2**-32 per decoded candidate,
whatever the image.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import cv2
import numpy as np

from transfigure.provenance.coding import CHECK_BITS, MESSAGE_BITS, N_CODED, conv_encode, viterbi_decode
from transfigure.provenance.watermark.layout import DELTA, N_SLOTS, Layout
from transfigure.provenance.watermark.read import Reading

__all__ = ["DECODE_GAINS", "JITTER_MIN_MATCHED", "MAX_DECODES", "Decoded", "Detection", "decode", "fitness"]

#: At most this many candidates are decoded per image: the false-positive bound is MAX_DECODES * 2**-32.
MAX_DECODES: Final = 40
#: Each candidate is decoded at these multiples of its gain (until one passes the check) ...
DECODE_GAINS: Final = (1.0, 0.98, 1.02, 0.96, 1.04)
#: ... when the first decode matched at least this many check bits (16 is chance; 22+ has p = 0.025).
JITTER_MIN_MATCHED: Final = 22


def fitness(lay: Layout, reading: Reading, gains: np.ndarray) -> np.ndarray:
    """(len(gains),): the weighted mean pilot agreement of a reading at each gain (centred on 0 for an
    unmarked image: the pilots' template cancels in pairs, see layout.layout)."""
    slots = reading.slots
    sign = np.broadcast_to(lay.pilot_sign[slots], reading.values.shape)
    weights = np.broadcast_to(reading.weights, sign.shape)
    total = float(np.sum(weights * np.abs(sign)))
    if total <= 0:
        return np.zeros(len(gains))
    mask = (weights * np.abs(sign)) > 0
    ws = (weights * sign)[mask]
    values = reading.values[mask] / np.float32(DELTA)
    dither = np.broadcast_to(lay.dither[slots], sign.shape)[mask]
    angle = (2 * np.pi) * (values[None, :] / np.asarray(gains, dtype=np.float32)[:, None] - dither[None, :])
    return np.cos(angle) @ ws / total


@dataclass(frozen=True)
class Decoded:
    ok: bool
    payload_bits: np.ndarray
    matched: int
    bit_errors: int
    fitness: float


#: A coded instance's soft value is weighted by how well the pilots around it agree: their weighted mean
#: agreement under a Gaussian of this many blocks (none where it is below 0). A crop's reads go wrong near its
#: edges (the band-pass reaches ~3 cells), a product shot's fade out towards white: on the benchmark's
#: photos read at their true geometry, 13 more decoded (crops 50 and 60 % of bags on white) and 1 fewer.
LOCAL_BLOCKS: Final = 2.0


def _local_agreement(soft: np.ndarray, weights: np.ndarray, pilot_sign: np.ndarray) -> np.ndarray:
    """(blocks down, blocks across, 1): the pilots' weighted mean agreement around each block, from 0."""
    size = 2 * math.ceil(4 * LOCAL_BLOCKS) + 1  # (truncated at 4 sigma)

    def blur(plane: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(plane, (size, size), LOCAL_BLOCKS, borderType=cv2.BORDER_CONSTANT)

    agreement = blur((soft * pilot_sign * weights).sum(axis=-1))
    total = blur((np.abs(pilot_sign) * weights).sum(axis=-1))
    local = np.where(total > 1e-9, agreement / np.maximum(total, 1e-9), 0.0)
    return np.maximum(local, 0.0)[..., None]


def decode(lay: Layout, reading: Reading, gain: float) -> Decoded:
    """Decode a reading at ``gain`` (coded instances weighted by their pilots' local agreement; the fitness
    reported unweighted)."""
    values = reading.values / (gain * DELTA)
    slots = reading.slots
    soft = np.cos(2 * np.pi * (values - lay.dither[slots]))
    weights = np.broadcast_to(reading.weights, soft.shape)
    symbols = np.broadcast_to(lay.symbol[slots], soft.shape)
    pilot_sign = np.broadcast_to(lay.pilot_sign[slots], soft.shape)
    local = weights * _local_agreement(soft, weights, pilot_sign)
    sums = np.bincount(symbols.ravel(), (soft * weights).ravel(), N_SLOTS)
    totals = np.bincount(symbols.ravel(), weights.ravel(), N_SLOTS)
    pilots = sums[N_CODED:] * (1.0 - 2.0 * lay.pilot_bits)
    fit = float(pilots.sum() / max(totals[N_CODED:].sum(), 1e-9))
    coded = np.bincount(symbols.ravel(), (soft * local).ravel(), N_SLOTS)[:N_CODED]
    decoded = viterbi_decode(coded, MESSAGE_BITS)
    payload, matched = lay.message(decoded)
    recoded = 1.0 - 2.0 * conv_encode(decoded)
    heard = totals[:N_CODED] > 0
    bit_errors = int(np.sum((np.sign(coded) != recoded) & heard))
    return Decoded(matched == CHECK_BITS, payload, matched, bit_errors, fit)


def binomial_tail(n: int, k: int) -> float:
    """P(Binomial(n, 1/2) >= k)."""
    return sum(math.comb(n, i) for i in range(k, n + 1)) / 2.0**n


@dataclass(frozen=True)
class Detection:
    """Result of :func:`detect_watermark`.

    Attributes:
        detected: a watermark of this key was found (its 32-bit keyed check matched).
        payload: the 8-byte payload when detected, else None.
        bit_errors: coded bits whose hard decision disagrees with the decoded codeword; a margin
            indicator (0 for a pristine image). None when nothing was decoded.
        p_value: upper bound on the probability of a result at least this strong in an image
            without this key's watermark (Bonferroni over the candidates decoded).
        confidence: ``1 - p_value``.
        check_bits_matched: keyed check bits (of 32) matched by the best candidate.
        candidates: candidates decoded (the Bonferroni factor).
        pilot_score: mean pilot agreement of the best candidate (1 = perfect, ~0 = noise).
        rotation_deg, scale, shift, gain: the geometry and amplitude the mark was read at: the
            rotation of the original in the image (degrees, counter-clockwise as Pillow's ``rotate``), the
            size in pixels of the original's cells in the image, where the original's top-left pixel lies
            in the image (x, y; the mark repeats every tile of 20 cells, so for a crop this is known only
            modulo the tile: (-left, -top) modulo 20 cells for a crop at (left, top)), and the amplitude.
        flipped: the image is a mirror image of the marked one.
        scheme: which layout carried the mark: ``"tiled-v2"`` (this release) or ``"legacy-v1"`` (marks
            made before it, read by the previous detector).
        raw_payload: the best candidate's decoded payload even when not detected (unverified;
            for diagnostics such as bit accuracy in benchmarks).
    """

    detected: bool
    payload: bytes | None
    bit_errors: int | None
    p_value: float
    confidence: float
    check_bits_matched: int = 0
    candidates: int = 0
    pilot_score: float = 0.0
    coded_bits: int = N_CODED
    rotation_deg: float = 0.0
    scale: float = 1.0
    shift: tuple[float, float] = (0.0, 0.0)
    gain: float = 1.0
    flipped: bool = False
    scheme: str = "tiled-v2"
    raw_payload: bytes | None = field(default=None)

    @property
    def provenance_id(self) -> str | None:
        """The payload as 16 hex characters (transfigure's provenance id), when detected."""
        return self.payload.hex() if self.payload is not None else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (bytes as hex)."""
        d = asdict(self)
        d["payload"] = self.provenance_id
        d["provenance_id"] = self.provenance_id
        d["raw_payload"] = self.raw_payload.hex() if self.raw_payload is not None else None
        d["shift"] = [round(float(v), 3) for v in self.shift]
        return d
