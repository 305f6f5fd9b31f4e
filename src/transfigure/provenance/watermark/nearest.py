"""Undoing Pillow's default nearest-neighbour rotation exactly.

``Image.rotate`` copies every output pixel from the nearest source pixel. Rotating an image of pixel
*indices* with the same call tells where each output pixel came from; copying the pixels back restores
the original at its own positions with no interpolation jitter (a bicubic warp back would shift each
pixel by up to half a pixel, which the mark's read does not tolerate). The few source pixels no output
pixel came from are filled from their neighbours. Shared by the current and the legacy detector.
"""

from __future__ import annotations

import collections
import math
import threading
from dataclasses import dataclass
from typing import Final

import numpy as np
from PIL import Image

__all__ = ["UNDO_CACHE_BYTES", "expanded_size", "original_sizes", "undo_nearest_rotation", "unrotate"]


@dataclass(frozen=True, eq=False)
class _UndoPlan:
    """Where a nearest-neighbour rotation copied each source pixel to, and how to fill what it skipped."""

    copied_to: np.ndarray  # (source pixels,) int32: the flat output pixel each was copied to (len(output): none)
    holes: np.ndarray  # source pixels no output pixel came from
    neighbours: np.ndarray  # (4, holes): their 4-neighbours (clipped to the image)
    neighbour_hit: np.ndarray  # (4, holes) float32: 1 where that neighbour is restored
    neighbour_count: np.ndarray  # (holes,) float32: restored neighbours (at least 1)

    @property
    def nbytes(self) -> int:
        return sum(
            a.nbytes for a in (self.copied_to, self.holes, self.neighbours, self.neighbour_hit, self.neighbour_count)
        )


#: The undo plans kept for reuse, least recently used out first, within this many bytes (~1.7 MiB an
#: angle at 512 x 512); a plan over a quarter of the budget is not kept.
UNDO_CACHE_BYTES: Final = 64 * 2**20
_plans: collections.OrderedDict[tuple, _UndoPlan] = collections.OrderedDict()
_lock = threading.Lock()


def _plan(
    source_size: tuple[int, int],
    output_size: tuple[int, int],
    angle: float,
    box: tuple[int, int, int, int] | None = None,
) -> _UndoPlan | None:
    """The plan for a source of ``source_size`` (w, h) rotated by ``angle`` into ``output_size`` (w, h):
    the same size, or Pillow's ``expand``, or (``box``) the same size cropped to ``box``; None if that
    does not give ``output_size``."""
    key = (source_size, output_size, float(angle), box)
    with _lock:
        if key in _plans:
            _plans.move_to_end(key)
            return _plans[key]
    w, h = source_size
    index = Image.fromarray(np.arange(1, w * h + 1, dtype=np.int32).reshape(h, w), "I")
    expand = box is None and output_size != source_size
    rotated = index.rotate(angle, resample=Image.Resampling.NEAREST, expand=expand)
    if box is not None:
        rotated = rotated.crop(box)
    if rotated.size != output_size:
        return None
    source = np.asarray(rotated).ravel().astype(np.int64) - 1
    origin = np.flatnonzero(source >= 0)
    n_out = output_size[0] * output_size[1]
    copied_to = np.full(w * h, n_out, dtype=np.int32)
    copied_to[source[origin]] = origin  # a pixel copied twice reads its last copy (as an assignment would)
    hit = (copied_to < n_out).astype(np.float32)
    holes = np.flatnonzero(hit == 0)
    neighbours = np.stack([np.clip(holes + step, 0, w * h - 1) for step in (1, -1, w, -w)])
    neighbour_hit = hit[neighbours]
    count = np.maximum(neighbour_hit.sum(axis=0), np.float32(1.0)).astype(np.float32)
    plan = _UndoPlan(copied_to, holes, neighbours, neighbour_hit, count)
    if plan.nbytes <= UNDO_CACHE_BYTES // 4:
        with _lock:
            _plans[key] = plan
            while sum(p.nbytes for p in _plans.values()) > UNDO_CACHE_BYTES:
                _plans.popitem(last=False)
    return plan


def expanded_size(size: tuple[int, int], angle: float) -> tuple[int, int]:
    """The canvas (w, h) ``Image.rotate(angle, expand=True)`` gives a picture of ``size``: Pillow's own
    arithmetic (its inverse matrix about the centre, the turned corners rounded outwards)."""
    w, h = size
    t = -math.radians(angle % 360.0)
    a, b, d, e = round(math.cos(t), 15), round(math.sin(t), 15), round(-math.sin(t), 15), round(math.cos(t), 15)
    c = a * (-w / 2) + b * (-h / 2) + w / 2
    f = d * (-w / 2) + e * (-h / 2) + h / 2
    corners = ((0, 0), (w, 0), (w, h), (0, h))
    xs = [a * x + b * y + c for x, y in corners]
    ys = [d * x + e * y + f for x, y in corners]
    return math.ceil(max(xs)) - math.floor(min(xs)), math.ceil(max(ys)) - math.floor(min(ys))


def original_sizes(
    output_size: tuple[int, int], angle: float, estimate: tuple[float, float], reach: int = 2
) -> list[tuple[int, int]]:
    """The picture sizes within ``reach`` pixels of ``estimate`` (w, h) that an expanded rotation by ``angle``
    turns into ``output_size``, the closest first (a fill's edges tell the size to a pixel or two; only
    whole sizes whose canvas is exactly this one can be undone)."""
    w0, h0 = estimate
    sizes = [
        (w, h)
        for w in range(max(1, round(w0) - reach), round(w0) + reach + 1)
        for h in range(max(1, round(h0) - reach), round(h0) + reach + 1)
        if expanded_size((w, h), angle) == output_size
    ]
    return sorted(sizes, key=lambda s: (s[0] - w0) ** 2 + (s[1] - h0) ** 2)


def _apply(
    plan: _UndoPlan,
    planes: list[np.ndarray],
    source_size: tuple[int, int],
    window: tuple[int, int, int, int] | None = None,
) -> list[np.ndarray]:
    """The planes restored (only their ``window`` (x0, y0, x1, y1) when given)."""
    w, h = source_size
    x0, y0, x1, y1 = window or (0, 0, w, h)
    index = plan.copied_to.reshape(h, w)[y0:y1, x0:x1]
    # each skipped pixel gets the mean of its restored 4-neighbours
    neighbours, hit, count = plan.neighbours, plan.neighbour_hit, plan.neighbour_count
    hy, hx = np.divmod(plan.holes, w)
    if window is not None:
        inside = np.flatnonzero((hy >= y0) & (hy < y1) & (hx >= x0) & (hx < x1))
        hy, hx, neighbours, hit, count = hy[inside], hx[inside], neighbours[:, inside], hit[:, inside], count[inside]
    sources = plan.copied_to[neighbours]
    out = []
    for plane in planes:
        values = np.append(plane.ravel(), np.float32(0.0))
        restored = values[index]
        if hy.size:
            restored[hy - y0, hx - x0] = np.einsum("ij,ij->j", values[sources], hit) / count
        out.append(restored)
    return out


def unrotate(
    luma: np.ndarray,
    taper: np.ndarray,
    angle: float,
    source_size: tuple[int, int],
    box: tuple[int, int, int, int] | None = None,
    window: tuple[int, int, int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """(luma, taper) of the ``source_size`` (w, h) picture that ``Image.rotate(angle)`` (nearest, with or
    without ``expand``, or cropped to ``box`` after) turned into these planes, or None when that cannot
    give their size; only its ``window`` (x0, y0, x1, y1) when given. Pixels not in the image come back as
    zeros with no taper (weight 0)."""
    h, w = luma.shape
    plan = _plan(source_size, (w, h), angle, box)
    if plan is None:
        return None
    restored_luma, restored_taper = _apply(
        plan, [luma.astype(np.float32, copy=False), taper.astype(np.float32, copy=False)], source_size, window
    )
    return restored_luma, restored_taper


def undo_nearest_rotation(luma: np.ndarray, angle: float) -> np.ndarray:
    """Undo a same-size nearest-neighbour rotation by ``angle`` (the legacy detector's call)."""
    h, w = luma.shape
    plan = _plan((w, h), (w, h), angle)
    assert plan is not None
    return _apply(plan, [luma], (w, h))[0]
