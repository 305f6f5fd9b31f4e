"""Channel coding of the watermark message: a K=7 convolutional code with soft Viterbi decoding.

The message is the 64-bit payload followed by a 32-bit keyed check (HMAC-SHA256 of the payload,
truncated). It is scrambled with a keyed bit mask, encoded with the rate-1/2, constraint-length-7
code of CCSDS/802.11 (generators 133, 171 octal, free distance 10) and terminated with six zero
bits: 204 coded bits. Soft values (positive = coded bit 0) come back from the QIM demodulator and
are decoded by maximum-likelihood (Viterbi) search.

Why a keyed check and not a CRC: under "no watermark" the decoder's output is some 96-bit string
that does not depend on the key, so the probability that its last 32 bits equal the HMAC of its
first 64 is exactly 2**-32 per decoded candidate, whatever the image. That bound is the basis of
the false-positive rate (see :mod:`transfigure.provenance.watermark`).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

import numpy as np

__all__ = ["CHECK_BITS", "MESSAGE_BITS", "N_CODED", "PAYLOAD_BITS", "check_bits", "conv_encode", "viterbi_decode"]

PAYLOAD_BITS: Final = 64
CHECK_BITS: Final = 32
MESSAGE_BITS: Final = PAYLOAD_BITS + CHECK_BITS
_K: Final = 7
_GENERATORS: Final = (0o133, 0o171)
_N_STATES: Final = 1 << (_K - 1)
N_CODED: Final = (MESSAGE_BITS + _K - 1) * len(_GENERATORS)


def _parity(x: int) -> int:
    return bin(x).count("1") & 1


def _trellis() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """predecessor states (S, 2), input bit per state (S,), expected +-1 outputs (S, 2, n)."""
    states = np.arange(_N_STATES)
    pred = np.stack([((states & (_N_STATES // 2 - 1)) << 1) | b for b in (0, 1)], axis=1)
    inp = states >> (_K - 2)
    outs = np.zeros((_N_STATES, 2, len(_GENERATORS)))
    for s in range(_N_STATES):
        for b in (0, 1):
            reg = (int(inp[s]) << (_K - 1)) | int(pred[s, b])
            outs[s, b] = [1 - 2 * _parity(reg & g) for g in _GENERATORS]
    return pred, inp, outs


_PRED, _INPUT, _OUTS = _trellis()


#: each generator's taps by delay: coded bit = sum over d of taps[d] * input[t - d] (mod 2), the input bit
#: entering at the register's top (bit K-1) and leaving at bit 0
_TAPS: Final = np.array([[(g >> (_K - 1 - d)) & 1 for d in range(_K)] for g in _GENERATORS], dtype=np.int64)


def conv_encode(bits: np.ndarray) -> np.ndarray:
    """Encode 0/1 bits (terminated with K-1 zeros); returns 0/1 coded bits, ``N_CODED`` for a message."""
    message = np.concatenate([np.asarray(bits, dtype=np.int64), np.zeros(_K - 1, dtype=np.int64)])
    coded = [np.convolve(message, taps)[: len(message)] & 1 for taps in _TAPS]
    return np.stack(coded, axis=1).ravel().astype(np.uint8)


def viterbi_decode(soft: np.ndarray, n_bits: int) -> np.ndarray:
    """Maximum-likelihood message for soft coded values (positive = bit 0); returns ``n_bits`` 0/1 bits."""
    soft = np.asarray(soft, dtype=np.float64).reshape(-1, len(_GENERATORS))
    branch = np.einsum("sbn,tn->tbs", _OUTS, soft)  # (T, 2, S)
    metric = np.full(_N_STATES, -np.inf)
    metric[0] = 0.0
    decisions = np.empty((len(soft), _N_STATES), dtype=np.intp)
    from_0, from_1 = _PRED[:, 0], _PRED[:, 1]
    for t in range(len(soft)):
        via_0 = metric[from_0] + branch[t, 0]
        via_1 = metric[from_1] + branch[t, 1]
        choice = via_1 > via_0  # ties keep predecessor 0
        decisions[t] = choice
        metric = np.where(choice, via_1, via_0)
    state = 0  # terminated trellis ends in state 0
    bits = np.empty(len(soft), dtype=np.uint8)
    for t in range(len(soft) - 1, -1, -1):
        bits[t] = _INPUT[state]
        state = _PRED[state, decisions[t, state]]
    return bits[:n_bits]


def check_bits(check_key: bytes, payload_bits: np.ndarray) -> np.ndarray:
    """The keyed 32-bit check of a 64-bit payload (HMAC-SHA256, first 32 bits), as 0/1 bits."""
    digest = hmac.new(check_key, np.packbits(payload_bits.astype(np.uint8)).tobytes(), hashlib.sha256).digest()
    return np.unpackbits(np.frombuffer(digest[: CHECK_BITS // 8], dtype=np.uint8))
