"""The embedded default dataset: procedurally generated scenes, built offline.

transfigure must run end to end without downloading anything, so it ships a
generator instead of data. Every scene (a town row, a perspective street or a
landscape) is first laid out as a *label map* (one class id per pixel, see
:data:`CLASSES`) plus an *instance map* (one id per object: each building,
tree, the sun/moon; 0 for "stuff" such as sky, ground, road, water). The same
layout is then rendered as

* a **day photo**: sky gradient and clouds, textured grass, asphalt with lane
  markings, coloured facades with glass windows, shaded trees, water with
  reflections, a sun with glow, soft shading, a little blur and sensor noise;
* a **night photo**: dark sky with stars and a moon, black silhouettes,
  randomly lit warm windows with glow, street-light pools, moonlit water;
* a **sketch**: black 1-pixel lines on white where label, instance or
  sub-part (roof, door, trunk, ...) change;
* a **painting** (:func:`render_painting`): the day photo repainted with short
  oriented brush strokes in colours picked from it, a warm, more saturated
  palette, posterised colours and a faint canvas weave.

Four subsets are written, one per dataset format of
:mod:`transfigure.data.datasets` (see :data:`DEFAULT_SUBSETS`)::

    root/
      day2night/{trainA,trainB,testA,testB}/NNNN.png   unaligned: A = day, B = night
      edges2photo/{train,test}/NNNN.png                aligned: sketch | day photo
      labels2photo/{train,test}_{img,label,inst}/NNNN.png
      photo2painting/{trainA,trainB,testA,testB}/NNNN.png  unaligned: A = day photo, B = painting
      MANIFEST.json                                    parameters, counts, sha256 per
                                                       file, scene id per file

Every image comes from its own scene: A and B of ``day2night`` (and of
``photo2painting``, the style-transfer example) never show the same scene, and train and test scenes are disjoint in every subset. All
randomness derives from ``seed`` through :class:`numpy.random.SeedSequence`,
so the same parameters give byte-identical files (on the same platform:
PNG bytes depend on the zlib build, pixels on numpy's float maths).

Run ``python -m transfigure.data.default_dataset OUT_DIR`` to build it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from transfigure.data.layout import domain_folders

__all__ = [
    "CLASSES",
    "DEFAULT_SUBSETS",
    "GENERATOR_VERSION",
    "build_default_dataset",
    "main",
    "render_painting",
    "render_scene",
    "scene_digest",
    "verify_default_dataset",
]

logger = logging.getLogger(__name__)

#: Class names by id, as stored in the label maps (``labels2photo/*_label``).
#: 0 sky; 1 ground (grass, earth, pavement, distant hills); 2 road (asphalt,
#: lane markings included); 3 building (walls, roofs, doors); 4 window;
#: 5 tree (canopy and trunk); 6 sun_moon (the sun by day, the moon by night);
#: 7 water (lakes).
CLASSES: Final[tuple[str, ...]] = (
    "sky",
    "ground",
    "road",
    "building",
    "window",
    "tree",
    "sun_moon",
    "water",
)
SKY, GROUND, ROAD, BUILDING, WINDOW, TREE, SUN, WATER = range(len(CLASSES))

#: Subset name -> dataset format (a key of ``transfigure.data.DATASET_FORMATS``).
DEFAULT_SUBSETS: Final[dict[str, str]] = {
    "day2night": "unaligned",
    "edges2photo": "aligned",
    "labels2photo": "labelmap",
    "photo2painting": "unaligned",
}

#: Bumped whenever the generator's output changes, so cached builds are redone.
GENERATOR_VERSION: Final[int] = 2  # 2: the photo2painting subset
MANIFEST_NAME: Final[str] = "MANIFEST.json"

# Sub-parts: not classes, they only change colours and add sketch lines.
_ROOF, _DOOR, _TRUNK, _LANE, _MOUNTAIN, _PAVEMENT = 1, 2, 3, 4, 5, 6

_SUBSET_KEYS: Final = {"day2night": 0, "edges2photo": 1, "labels2photo": 2, "photo2painting": 3}
_SPLIT_KEYS: Final = {"train": 0, "test": 1}
_DOMAIN_KEYS: Final = {"A": 0, "B": 1, "": 2}

Point = tuple[float, float]


# --------------------------------------------------------------------------- layout


@dataclass
class _Tree:
    cx: float
    cy: float
    r: float
    inst: int


@dataclass
class Scene:
    """A laid-out scene: integer maps plus what the renderers need.

    Attributes:
        kind: ``"town"``, ``"street"`` or ``"landscape"``.
        label: HxW uint8 class ids (:data:`CLASSES`).
        instance: HxW uint8 object ids (0 = stuff).
        part: HxW uint8 sub-part codes (roof, door, trunk, lane, ...).
        window: HxW int32 window ids (0 = no window), for per-window colours.
        horizon: the horizon's row.
        celestial: ``(cx, cy, r)`` of the sun/moon disk.
        wall_colours: instance id -> RGB wall colour (day).
        trees: canopy centres/radii for shading.
        lamps: street-light positions (night glow).
        facade_shade: instance id -> brightness factor (perspective sides).
    """

    kind: str
    label: np.ndarray
    instance: np.ndarray
    part: np.ndarray
    window: np.ndarray
    horizon: int
    celestial: tuple[float, float, float]
    wall_colours: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    trees: list[_Tree] = field(default_factory=list)
    lamps: list[Point] = field(default_factory=list)
    facade_shade: dict[int, float] = field(default_factory=dict)


_WALL_PALETTE: Final = (
    (158, 82, 64),  # brick
    (204, 184, 150),  # sandstone
    (150, 152, 158),  # concrete
    (156, 174, 196),  # pastel blue
    (222, 212, 182),  # cream
    (192, 118, 84),  # terracotta
    (178, 160, 190),  # lilac
    (120, 128, 118),  # grey-green
)


class _Canvas:
    """Draws the same shapes into the label, instance, part and window layers."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.layers = {
            "label": Image.new("L", (size, size), SKY),
            "instance": Image.new("L", (size, size), 0),
            "part": Image.new("L", (size, size), 0),
            "window": Image.new("I", (size, size), 0),
        }
        self.draw = {k: ImageDraw.Draw(v) for k, v in self.layers.items()}
        self.next_instance = 1
        self.next_window = 1

    def new_instance(self) -> int:
        inst = self.next_instance
        if inst > 255:
            raise RuntimeError("scene has more than 255 objects")  # pragma: no cover
        self.next_instance += 1
        return inst

    def _values(self, cls: int, inst: int, part: int, window: int) -> dict[str, int]:
        return {"label": cls, "instance": inst, "part": part, "window": window}

    def polygon(self, pts: Sequence[Point], cls: int, inst: int = 0, part: int = 0, window: int = 0) -> None:
        flat = [(float(x), float(y)) for x, y in pts]
        for key, value in self._values(cls, inst, part, window).items():
            self.draw[key].polygon(flat, fill=value)

    def rect(
        self,
        x0: float,
        y0: float,
        x1: float,
        y1: float,
        cls: int,
        inst: int = 0,
        part: int = 0,
        window: int = 0,
    ) -> None:
        if x1 < x0 or y1 < y0:
            return
        for key, value in self._values(cls, inst, part, window).items():
            self.draw[key].rectangle((x0, y0, x1, y1), fill=value)

    def ellipse(
        self,
        x0: float,
        y0: float,
        x1: float,
        y1: float,
        cls: int,
        inst: int = 0,
        part: int = 0,
    ) -> None:
        for key, value in self._values(cls, inst, part, 0).items():
            self.draw[key].ellipse((x0, y0, x1, y1), fill=value)

    def label_at(self, x: float, y: float) -> int:
        xi = min(max(int(x), 0), self.size - 1)
        yi = min(max(int(y), 0), self.size - 1)
        return int(self.layers["label"].getpixel((xi, yi)))  # type: ignore[arg-type]

    def window_rect(self, x0: float, y0: float, x1: float, y1: float, inst: int) -> None:
        self.rect(x0, y0, x1, y1, WINDOW, inst, 0, self.next_window)
        self.next_window += 1

    def window_quad(self, pts: Sequence[Point], inst: int) -> None:
        self.polygon(pts, WINDOW, inst, 0, self.next_window)
        self.next_window += 1


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _sky_and_ground(c: _Canvas, horizon: float) -> None:
    s = c.size
    c.rect(0, 0, s - 1, s - 1, SKY)
    c.rect(0, horizon, s - 1, s - 1, GROUND)


def _celestial(c: _Canvas, rng: np.random.Generator, horizon: float) -> tuple[float, float, float]:
    s = c.size
    r = s * _u(rng, 0.045, 0.075)
    cx = s * _u(rng, 0.1, 0.9)
    cy = _u(rng, r + 1, max(r + 2, horizon * 0.55))
    c.ellipse(cx - r, cy - r, cx + r, cy + r, SUN, c.new_instance())
    return cx, cy, r


def _tree(c: _Canvas, rng: np.random.Generator, x: float, base: float, r: float) -> _Tree:
    """A round or pine tree standing at (x, base) with canopy radius r."""
    inst = c.new_instance()
    trunk_w = max(1.0, r * 0.28)
    trunk_h = r * _u(rng, 0.7, 1.1)
    c.rect(x - trunk_w / 2, base - trunk_h, x + trunk_w / 2, base, TREE, inst, _TRUNK)
    if rng.random() < 0.35:  # pine: stacked triangles
        top = base - trunk_h - 2.6 * r
        for k in range(3):
            y1 = base - trunk_h * 0.6 - k * 0.75 * r
            half = r * (1.1 - 0.28 * k)
            c.polygon([(x - half, y1), (x + half, y1), (x, max(top, y1 - 1.6 * r))], TREE, inst)
        return _Tree(x, base - trunk_h - 1.0 * r, 1.2 * r, inst)
    cy = base - trunk_h - r * 0.8
    c.ellipse(x - r, cy - r * 1.05, x + r, cy + r * 0.95, TREE, inst)
    if rng.random() < 0.6:  # a second lobe makes the canopy less of a disk
        dx = r * _u(rng, -0.6, 0.6)
        r2 = r * _u(rng, 0.55, 0.8)
        c.ellipse(x + dx - r2, cy - r * 0.6 - r2, x + dx + r2, cy - r * 0.6 + r2, TREE, inst)
    return _Tree(x, cy, r, inst)


def _frontal_building(
    c: _Canvas,
    rng: np.random.Generator,
    x0: float,
    x1: float,
    top: float,
    base: float,
    scene: Scene,
    roof: bool = True,
) -> None:
    """A building seen from the front: wall, optional gable roof, window grid, door."""
    s = c.size
    inst = c.new_instance()
    scene.wall_colours[inst] = _WALL_PALETTE[int(rng.integers(len(_WALL_PALETTE)))]
    c.rect(x0, top, x1, base, BUILDING, inst)
    width = x1 - x0
    if roof and rng.random() < 0.45:
        peak = top - min(width * 0.5, s * _u(rng, 0.05, 0.12))
        overhang = max(1.0, width * 0.06)
        c.polygon(
            [(x0 - overhang, top), (x1 + overhang, top), ((x0 + x1) / 2, peak)],
            BUILDING,
            inst,
            _ROOF,
        )
    elif roof and rng.random() < 0.5:
        c.rect(x0, top, x1, top + max(1.0, s * 0.02), BUILDING, inst, _ROOF)
    ww = max(1.0, s * _u(rng, 0.028, 0.045))
    wh = max(2.0, s * _u(rng, 0.04, 0.06))
    gap_x = max(1.0, ww * _u(rng, 0.7, 1.3))
    gap_y = max(1.0, wh * _u(rng, 0.5, 0.9))
    margin = max(1.0, s * 0.025)
    ground_floor = wh * 1.8
    cols = int((width - 2 * margin + gap_x) // (ww + gap_x))
    rows = int((base - top - margin - ground_floor + gap_y) // (wh + gap_y))
    if cols >= 1 and rows >= 1:
        used = cols * ww + (cols - 1) * gap_x
        left = x0 + (width - used) / 2
        for i in range(rows):
            wy = top + margin + i * (wh + gap_y)
            for j in range(cols):
                wx = left + j * (ww + gap_x)
                c.window_rect(wx, wy, wx + ww - 1, wy + wh - 1, inst)
    door_w = max(1.0, s * 0.04)
    door_h = max(2.0, min(ground_floor * 0.9, base - top - 1))
    dx = _u(rng, x0 + margin, max(x0 + margin, x1 - margin - door_w))
    c.rect(dx, base - door_h, dx + door_w - 1, base, BUILDING, inst, _DOOR)


def _layout_town(c: _Canvas, rng: np.random.Generator, scene: Scene) -> None:
    s = c.size
    horizon = scene.horizon
    base = horizon + s * _u(rng, 0.05, 0.1)
    road_top = base + s * _u(rng, 0.03, 0.07)
    road_bottom = road_top + s * _u(rng, 0.13, 0.2)
    c.rect(0, base, s - 1, road_top, GROUND, 0, _PAVEMENT)
    c.rect(0, road_top, s - 1, road_bottom, ROAD)
    dash = s * _u(rng, 0.06, 0.1)
    mid = (road_top + road_bottom) / 2
    x = -_u(rng, 0, dash)
    while x < s:
        c.rect(x, mid - max(0.5, s * 0.008), x + dash * 0.6, mid + max(0.5, s * 0.008), ROAD, 0, _LANE)
        x += dash * 1.6
    x = -s * _u(rng, 0.0, 0.1)
    gaps: list[tuple[float, float]] = []
    while x < s:
        w = s * _u(rng, 0.14, 0.3)
        h = s * _u(rng, 0.18, 0.5)
        _frontal_building(c, rng, x, x + w, base - h, base, scene)
        gap = s * _u(rng, 0.0, 0.09)
        if gap > s * 0.03:
            gaps.append((x + w, x + w + gap))
        x += w + gap
    for g0, g1 in gaps:
        if rng.random() < 0.8:
            r = s * _u(rng, 0.04, 0.07)
            scene.trees.append(_tree(c, rng, (g0 + g1) / 2, base, r))
    for _ in range(int(rng.integers(0, 3))):  # trees in front, below the road
        if road_bottom + s * 0.1 < s:
            r = s * _u(rng, 0.05, 0.09)
            scene.trees.append(_tree(c, rng, s * _u(rng, 0.05, 0.95), _u(rng, road_bottom + s * 0.1, s), r))
    for k in range(int(rng.integers(2, 4))):
        scene.lamps.append((s * (k + _u(rng, 0.2, 0.8)) / 3, road_top))


def _layout_street(c: _Canvas, rng: np.random.Generator, scene: Scene) -> None:
    """One-point perspective street: facades on both sides converge to a vanishing point."""
    s = c.size
    h0 = float(scene.horizon)
    vx = s * _u(rng, 0.4, 0.6)
    xl, xr = s * _u(rng, 0.02, 0.22), s * _u(rng, 0.78, 0.98)
    c.polygon([(vx - 0.5, h0), (vx + 0.5, h0), (xr, s), (xl, s)], ROAD)
    # centre line: dashes along the segment from the vanishing point to the bottom centre
    bx = (xl + xr) / 2
    for k in range(6):
        t0, t1 = 0.15 + 0.14 * k, 0.15 + 0.14 * k + 0.07 * (1 + k * 0.15)
        (ax, ay), (cx, cy) = [(vx + (bx - vx) * t, h0 + (s - h0) * t) for t in (t0, min(t1, 1.0))]
        half = max(0.4, 0.9 * s / 64 * t1)
        c.polygon(
            [(ax - half * 0.5, ay), (ax + half * 0.5, ay), (cx + half, cy), (cx - half, cy)],
            ROAD,
            0,
            _LANE,
        )
    ends = {"left": vx - s * _u(rng, 0.07, 0.16), "right": vx + s * _u(rng, 0.07, 0.16)}
    for side in ("left", "right"):
        near_x = -1.0 if side == "left" else s + 1.0
        far_x = ends[side]
        bottom_near = s * _u(rng, 0.78, 0.95)

        def line_y(x: float, y_near: float, near: float = near_x) -> float:
            return h0 + (y_near - h0) * (x - vx) / (near - vx)

        # sidewalk between facades and road
        road_edge_x = xl if side == "left" else xr
        c.polygon([(near_x, bottom_near), (vx, h0), (road_edge_x, s), (near_x, s)], GROUND, 0, _PAVEMENT)
        n = int(rng.integers(2, 5))
        # nearer buildings look wider: split the depth axis, not x, evenly-ish
        depth = np.sort(rng.uniform(0.0, 1.0, n - 1))
        cuts = [near_x] + [near_x + (far_x - near_x) * float(d) ** 0.6 for d in depth] + [far_x]
        shade = _u(rng, 0.95, 1.1) if side == "left" else _u(rng, 0.62, 0.8)
        for k in range(n):
            xa, xb = cuts[k], cuts[k + 1]
            if abs(xb - xa) < 1.0:
                continue
            top_near = s * _u(rng, -0.45, 0.2)
            inst = c.new_instance()
            scene.wall_colours[inst] = _WALL_PALETTE[int(rng.integers(len(_WALL_PALETTE)))]
            scene.facade_shade[inst] = shade * _u(rng, 0.9, 1.05)
            quad = [
                (xa, line_y(xa, top_near)),
                (xb, line_y(xb, top_near)),
                (xb, line_y(xb, bottom_near)),
                (xa, line_y(xa, bottom_near)),
            ]
            c.polygon(quad, BUILDING, inst)
            # windows on a (u, v) grid mapped into the facade quad
            cols = max(1, int(abs(xb - xa) / (s * 0.07)))
            rows = int(rng.integers(3, 7))
            for i in range(rows):
                v0 = 0.08 + i * 0.8 / rows
                v1 = v0 + 0.8 / rows * 0.55
                for j in range(cols):
                    u0 = (j + 0.25) / cols
                    u1 = (j + 0.75) / cols
                    pts = []
                    for u, v in ((u0, v0), (u1, v0), (u1, v1), (u0, v1)):
                        x = xa + (xb - xa) * u
                        yt, yb = line_y(x, top_near), line_y(x, bottom_near)
                        pts.append((x, yt + (yb - yt) * v))
                    if abs(pts[1][0] - pts[0][0]) >= 0.8 and abs(pts[3][1] - pts[0][1]) >= 0.8:
                        c.window_quad(pts, inst)
        for t in (0.35, 0.7):
            lx = near_x + (far_x - near_x) * t
            scene.lamps.append((lx, line_y(lx, bottom_near)))
    # far end of the street: small frontal buildings or trees on the horizon
    x = ends["left"]
    while x < ends["right"]:
        w = s * _u(rng, 0.04, 0.09)
        if rng.random() < 0.7:
            _frontal_building(
                c,
                rng,
                x,
                min(x + w, ends["right"]),
                h0 - s * _u(rng, 0.04, 0.14),
                h0,
                scene,
                roof=False,
            )
        else:
            scene.trees.append(_tree(c, rng, x + w / 2, h0, w * 0.45))
        x += w


def _layout_landscape(c: _Canvas, rng: np.random.Generator, scene: Scene) -> None:
    s = c.size
    h0 = float(scene.horizon)
    if rng.random() < 0.6:  # far mountains (ground class, own colour)
        pts: list[Point] = [(-1, h0 + 1)]
        n = int(rng.integers(3, 6))
        for k in range(n + 1):
            pts.append((k * s / n + _u(rng, -3, 3), h0 - s * _u(rng, 0.05, 0.22)))
        pts.append((s + 1, h0 + 1))
        c.polygon(pts, GROUND, 0, _MOUNTAIN)
    # rolling hills: the ground's upper edge
    f1, f2 = _u(rng, 0.6, 1.6), _u(rng, 2.0, 4.0)
    p1, p2 = _u(rng, 0, 2 * math.pi), _u(rng, 0, 2 * math.pi)
    a1, a2 = s * _u(rng, 0.01, 0.05), s * _u(rng, 0.0, 0.02)
    edge = [
        (
            x,
            h0 + a1 * math.sin(2 * math.pi * f1 * x / s + p1) + a2 * math.sin(2 * math.pi * f2 * x / s + p2),
        )
        for x in np.linspace(-1, s + 1, 33)
    ]
    c.polygon([*edge, (s + 1, s + 1), (-1, s + 1)], GROUND)
    if rng.random() < 0.65:  # lake
        cx, cy = s * _u(rng, 0.2, 0.8), h0 + s * _u(rng, 0.12, 0.3)
        rx, ry = s * _u(rng, 0.18, 0.4), s * _u(rng, 0.04, 0.1)
        c.ellipse(cx - rx, cy - ry, cx + rx, cy + ry, WATER)
    if rng.random() < 0.5:  # a country road winding to the horizon
        x_top, x_bot = s * _u(rng, 0.3, 0.7), s * _u(rng, 0.2, 0.8)
        wiggle, phase = s * _u(rng, 0.03, 0.1), _u(rng, 0, 2 * math.pi)
        left, right = [], []
        for t in np.linspace(0.0, 1.0, 17):
            y = h0 + 2 + (s - h0 - 2) * t
            xc = x_top + (x_bot - x_top) * t + wiggle * math.sin(3 * t + phase) * t
            half = 0.6 + s * 0.16 * t
            left.append((xc - half, y))
            right.append((xc + half, y))
        c.polygon([*left, *reversed(right)], ROAD)
    if rng.random() < 0.45:  # a farmhouse
        w = s * _u(rng, 0.14, 0.22)
        x0 = s * _u(rng, 0.05, 0.95) - w / 2
        base = h0 + s * _u(rng, 0.06, 0.16)
        if c.label_at(x0 + w / 2, base) == GROUND:
            _frontal_building(c, rng, x0, x0 + w, base - w * _u(rng, 0.6, 0.9), base, scene)
    bases = sorted(_u(rng, h0 + 2, s + s * 0.05) for _ in range(int(rng.integers(3, 10))))
    for base in bases:  # back to front
        x = s * _u(rng, 0.0, 1.0)
        if c.label_at(x, min(base, s - 1)) != GROUND:
            continue
        r = s * (0.025 + 0.09 * (base - h0) / (s - h0 + 1)) * _u(rng, 0.8, 1.2)
        scene.trees.append(_tree(c, rng, x, base, r))


def layout_scene(size: int, rng: np.random.Generator) -> Scene:
    """Lay out one random scene (town row, perspective street or landscape)."""
    kind = str(rng.choice(["town", "street", "landscape"], p=[0.4, 0.3, 0.3]))
    horizon_frac = {"town": (0.5, 0.62), "street": (0.42, 0.55), "landscape": (0.45, 0.6)}[kind]
    horizon = round(size * _u(rng, *horizon_frac))
    c = _Canvas(size)
    _sky_and_ground(c, horizon)
    celestial = _celestial(c, rng, horizon)
    empty = np.zeros((size, size), np.uint8)
    scene = Scene(kind, empty, empty, empty, np.zeros((size, size), np.int32), horizon, celestial)
    {"town": _layout_town, "street": _layout_street, "landscape": _layout_landscape}[kind](c, rng, scene)
    scene.label = np.asarray(c.layers["label"], dtype=np.uint8).copy()
    scene.instance = np.asarray(c.layers["instance"], dtype=np.uint8).copy()
    scene.part = np.asarray(c.layers["part"], dtype=np.uint8).copy()
    scene.window = np.asarray(c.layers["window"], dtype=np.int32).copy()
    return scene


# --------------------------------------------------------------------------- rendering


def _smooth_noise(rng: np.random.Generator, size: int, cells: tuple[int, int]) -> np.ndarray:
    """Low-frequency noise (roughly unit variance): a coarse random grid, bicubic-upsampled."""
    grid = rng.standard_normal(cells).astype(np.float32)
    resized = Image.fromarray(grid, mode="F").resize((size, size), Image.Resampling.BICUBIC)
    out: np.ndarray = np.asarray(resized, dtype=np.float32)
    return out


def _mix(a: np.ndarray, b: np.ndarray | Sequence[float], t: np.ndarray) -> np.ndarray:
    out: np.ndarray = a * (1.0 - t[..., None]) + np.asarray(b, np.float32) * t[..., None]
    return out


def _jitter(rng: np.random.Generator, colour: Sequence[float], amount: float) -> np.ndarray:
    return np.clip(np.asarray(colour, np.float32) + rng.uniform(-amount, amount, 3), 0, 255)


def _finish(img: np.ndarray, rng: np.random.Generator, noise: float, blur: float) -> Image.Image:
    size = img.shape[0]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    vignette = 1.0 - 0.18 * ((xx - 0.5) ** 2 + (yy - 0.5) ** 2) * 2
    img = img * vignette[..., None]
    pil = Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8), mode="RGB")
    if blur > 0:
        pil = pil.filter(ImageFilter.GaussianBlur(blur))
    arr = np.asarray(pil, np.float32) + rng.normal(0.0, noise, img.shape).astype(np.float32)
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), mode="RGB")


def _tree_shading(scene: Scene, size: int) -> np.ndarray:
    """Brightness factor for canopies: lit from the upper left."""
    shade = np.ones((size, size), np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    for t in scene.trees:
        mask = scene.instance == t.inst
        if mask.any():
            d = (-(xx - t.cx) - (yy - t.cy)) / max(t.r, 1.0)
            shade[mask] = (1.0 + 0.22 * np.clip(d, -1.5, 1.5))[mask]
    return shade


def _render(scene: Scene, rng: np.random.Generator, night: bool) -> Image.Image:
    s = scene.label.shape[0]
    lab, part = scene.label, scene.part
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    h0 = max(scene.horizon, 1)
    lo = _smooth_noise(rng, s, (5, 5))
    mid = _smooth_noise(rng, s, (12, 12))
    hi = rng.standard_normal((s, s)).astype(np.float32)
    img = np.zeros((s, s, 3), np.float32)
    cx, cy, cr = scene.celestial
    dist = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)

    # sky with clouds and the sun's / moon's glow
    t = np.clip(yy / h0, 0, 1) ** 1.3
    if night:
        top, bottom = _jitter(rng, (6, 9, 24), 4), _jitter(rng, (24, 34, 68), 8)
    else:
        top, bottom = _jitter(rng, (64, 126, 206), 14), _jitter(rng, (182, 212, 236), 10)
    sky = _mix(np.broadcast_to(top, (s, s, 3)).copy(), bottom, t)
    clouds = _smooth_noise(rng, s, (12, 5)) + 0.35 * mid
    cover = np.clip((clouds - _u(rng, 0.3, 1.2)) * 1.4, 0, 1) * np.clip(1.2 - yy / h0, 0, 1)
    if night:
        stars = (rng.random((s, s)) < 0.012) & (cover < 0.2)
        sky[stars] = rng.uniform(140, 255, (int(stars.sum()), 1))
        sky = _mix(sky, (40, 44, 58), cover * 0.7)
        glow = np.exp(-((dist / (cr * 3.0)) ** 2))[..., None] * np.array([70, 75, 90], np.float32)
    else:
        sky = _mix(sky, (246, 246, 250) * (1 - 0.12 * mid[..., None]), cover * 0.85)
        glow = np.exp(-((dist / (cr * 3.5)) ** 2))[..., None] * np.array([80, 70, 30], np.float32)
    img = np.where((lab == SKY)[..., None], sky + glow, img)
    haze_colour = bottom

    # sun / moon
    disc = lab == SUN
    if night:
        moon = (
            np.array([232, 232, 215], np.float32)
            * (1 - 0.12 * np.clip(lo, -1, 1) - 0.08 * np.clip(mid, 0, 2))[..., None]
        )
        img[disc] = moon[disc]
    else:
        sun = np.array([255, 246, 205], np.float32) * (1 - 0.05 * (dist / max(cr, 1)))[..., None]
        img[disc] = sun[disc]

    # ground: grass, pavement, mountains; hazier towards the horizon
    depth = np.clip((yy - h0) / (s - h0 + 1), 0, 1)
    if night:
        grass = _jitter(rng, (12, 24, 16), 4) * (1 + 0.25 * lo + 0.12 * hi)[..., None]
        pave = _jitter(rng, (34, 34, 40), 4) * (1 + 0.06 * hi)[..., None]
        mount = _jitter(rng, (16, 20, 34), 4) * (1 + 0.1 * lo)[..., None]
    else:
        grass = _jitter(rng, (86, 138, 62), 16) * (1 + 0.14 * lo + 0.1 * mid + 0.07 * hi)[..., None]
        grass = _mix(grass, haze_colour, 0.45 * (1 - depth) ** 3)
        pave = _jitter(rng, (176, 170, 160), 10) * (1 + 0.05 * mid + 0.05 * hi)[..., None]
        mount = _mix(
            _jitter(rng, (96, 112, 140), 10) * (1 + 0.12 * lo + 0.06 * mid)[..., None],
            haze_colour,
            np.clip((yy - (h0 - s * 0.25)) / (s * 0.25), 0, 1) * 0.5,
        )
    ground = lab == GROUND
    img[ground] = grass[ground]
    img[ground & (part == _PAVEMENT)] = pave[ground & (part == _PAVEMENT)]
    img[ground & (part == _MOUNTAIN)] = mount[ground & (part == _MOUNTAIN)]

    # road with lane markings
    road = lab == ROAD
    base_road = (32, 32, 37) if night else tuple(_jitter(rng, (104, 104, 108), 12))
    asphalt = np.asarray(base_road, np.float32) * (1 + 0.05 * mid + 0.06 * hi)[..., None]
    lane_colour = (120, 112, 80) if night else ((236, 234, 222) if rng.random() < 0.6 else (232, 196, 70))
    img[road] = asphalt[road]
    img[road & (part == _LANE)] = np.asarray(lane_colour, np.float32)

    # buildings: per-instance wall colour, facade shading, roof and door
    bld = lab == BUILDING
    walls = np.zeros((256, 3), np.float32)
    for inst, colour in scene.wall_colours.items():
        factor = scene.facade_shade.get(inst, 1.0) * _u(rng, 0.9, 1.08)
        walls[inst] = np.asarray(colour, np.float32) * factor
    wall = walls[scene.instance] * (1 + 0.05 * hi + 0.05 * mid)[..., None]
    wall *= (1.0 - 0.12 * np.clip((yy - h0) / s, -1, 1))[..., None]  # darker at the foot
    if night:
        wall = wall * 0.16 + np.array([6, 8, 16], np.float32)
    img[bld] = wall[bld]
    roof_colour = np.asarray((30, 24, 26) if night else _jitter(rng, (118, 62, 52), 20), np.float32)
    door_colour = np.asarray((20, 16, 14) if night else _jitter(rng, (84, 56, 40), 12), np.float32)
    img[bld & (part == _ROOF)] = roof_colour * (1 + 0.06 * hi[bld & (part == _ROOF)])[..., None]
    img[bld & (part == _DOOR)] = door_colour

    # windows: glass by day; lit or dark by night, with a glow on the wall around lit ones
    win = lab == WINDOW
    n_win = int(scene.window.max()) + 1
    per_window = rng.uniform(0.0, 1.0, n_win).astype(np.float32)
    wv = per_window[scene.window]
    if night:
        lit_table = rng.random(n_win) < _u(rng, 0.35, 0.75)
        lit = win & lit_table[scene.window]
        warm = np.array([255, 206, 120], np.float32) * (0.75 + 0.25 * wv)[..., None]
        cool = np.array([190, 214, 255], np.float32) * (0.7 + 0.2 * wv)[..., None]
        lamp = np.where((wv > 0.85)[..., None], cool, warm)
        img[win] = np.array([16, 18, 30], np.float32)
        img[lit] = lamp[lit]
        spill = (
            np.asarray(
                Image.fromarray((lit * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(max(1.0, s / 48))),
                np.float32,
            )
            / 255.0
        )
        img += (spill * 0.6)[..., None] * np.array([120, 90, 40], np.float32) * (~lit)[..., None]
    else:
        glass = _jitter(rng, (112, 140, 170), 14)
        reflect = glass * (0.8 + 0.35 * wv)[..., None] + 20 * (1 - np.clip(yy / h0, 0, 1))[..., None]
        img[win] = reflect[win]

    # trees: textured canopy shaded from the upper left, brown trunks
    tree = lab == TREE
    trunk = tree & (part == _TRUNK)
    canopy = tree & ~trunk
    if night:
        leaves = np.array([8, 14, 11], np.float32) * (1 + 0.3 * mid)[..., None]
        bark = np.array([14, 11, 10], np.float32)
    else:
        leaf_colour = _jitter(rng, (52, 96, 44), 12)
        shade = _tree_shading(scene, s)
        leaves = leaf_colour * (shade * (1 + 0.18 * mid + 0.12 * hi))[..., None]
        bark = _jitter(rng, (92, 64, 44), 10)
    img[canopy] = leaves[canopy]
    img[trunk] = bark

    # water: reflects the sky, horizontal ripples, a bright streak under the sun/moon
    water = lab == WATER
    ripple = np.sin(yy * _u(rng, 1.6, 2.6) + 1.5 * mid) * 0.5 + 0.5
    streak = np.exp(-(((xx - cx) / (cr * 1.6)) ** 2)) * ripple
    if night:
        w_col = np.array([10, 16, 34], np.float32) * (1 + 0.2 * ripple)[..., None]
        w_col += streak[..., None] * np.array([150, 150, 130], np.float32)
    else:
        w_col = _mix(
            np.broadcast_to(_jitter(rng, (46, 92, 138), 12), (s, s, 3)).copy(),
            bottom,
            0.35 * ripple,
        )
        w_col += streak[..., None] * np.array([70, 60, 30], np.float32)
    img[water] = w_col[water]

    if night:  # warm street-light pools
        for lx, ly in scene.lamps:
            d2 = ((xx - lx) / (s * 0.09)) ** 2 + ((yy - ly) / (s * 0.05)) ** 2
            img += np.exp(-d2)[..., None] * np.array([110, 80, 36], np.float32)
        img *= np.array([0.92, 0.96, 1.12], np.float32)  # moonlit blue cast
        return _finish(img, rng, noise=3.5, blur=0.45)
    img *= (1 + 0.04 * lo)[..., None]  # soft uneven light
    return _finish(img, rng, noise=2.0, blur=0.45)


def render_sketch(scene: Scene) -> Image.Image:
    """Black 1-pixel lines on white where label, instance or sub-part change."""
    key = scene.label.astype(np.int64) | (scene.instance.astype(np.int64) << 8) | (scene.part.astype(np.int64) << 16)
    edge = np.zeros(key.shape, bool)
    edge[:, :-1] |= key[:, :-1] != key[:, 1:]
    edge[:-1, :] |= key[:-1, :] != key[1:, :]
    grey = np.where(edge, 0, 255).astype(np.uint8)
    return Image.fromarray(grey, mode="L").convert("RGB")


#: levels per colour channel of a painting (posterised)
PAINT_LEVELS: Final[int] = 6


def render_painting(photo: Image.Image, rng: np.random.Generator) -> Image.Image:
    """``photo`` repainted: warm, saturated palette; short brush strokes along one main direction
    (jittered per stroke) in colours picked from the photo; colours posterised to
    :data:`PAINT_LEVELS` per channel; a faint canvas weave."""
    size = photo.width
    arr = np.asarray(photo.filter(ImageFilter.MedianFilter(3)), dtype=np.float64) / 255.0
    grey = arr.mean(axis=2, keepdims=True)
    arr = grey + (arr - grey) * _u(rng, 1.4, 1.8)  # more saturated
    arr = arr * np.array([1.10, 1.0, 0.82]) + np.array([0.05, 0.03, 0.0])  # warm varnish
    source = np.clip(arr * 255.0, 0, 255).astype(np.uint8)
    canvas = Image.fromarray(source)
    draw = ImageDraw.Draw(canvas)
    angle = _u(rng, 0.0, math.pi)
    width = max(2, size // 24)
    for _ in range(size * size // 10):
        x, y = rng.uniform(0, size, 2)
        a = angle + rng.normal(0.0, 0.25)
        half = _u(rng, 0.025, 0.05) * size
        dx, dy = half * math.cos(a), half * math.sin(a)
        colour = source[min(int(y), size - 1), min(int(x), size - 1)].astype(np.int64) + rng.integers(-12, 13, 3)
        draw.line(
            [(x - dx, y - dy), (x + dx, y + dy)], fill=tuple(int(c) for c in np.clip(colour, 0, 255)), width=width
        )
    out = np.asarray(canvas, dtype=np.float64)
    step = 255.0 / (PAINT_LEVELS - 1)
    out = np.round(out / step) * step
    yy, xx = np.mgrid[0:size, 0:size]
    weave = 6.0 * np.sign(np.sin(xx * math.pi / 2) * np.sin(yy * math.pi / 2))
    return Image.fromarray(np.clip(out + weave[..., None], 0, 255).astype(np.uint8))


def _child(seq: np.random.SeedSequence, k: int) -> np.random.SeedSequence:
    """The k-th child of ``seq``, without ``spawn``'s hidden counter (pure function)."""
    return np.random.SeedSequence(entropy=seq.entropy, spawn_key=(*seq.spawn_key, k))


def render_scene(scene: Scene, seed: np.random.SeedSequence) -> dict[str, Image.Image]:
    """Render a laid-out scene: ``{"day", "night", "sketch", "label", "instance"}`` images."""
    return {
        "day": _render(scene, np.random.default_rng(_child(seed, 0)), night=False),
        "night": _render(scene, np.random.default_rng(_child(seed, 1)), night=True),
        "sketch": render_sketch(scene),
        "label": Image.fromarray(scene.label, mode="L"),
        "instance": Image.fromarray(scene.instance, mode="L"),
    }


# --------------------------------------------------------------------------- building


def _scene_seed(seed: int, subset: str, split: str, domain: str, index: int) -> np.random.SeedSequence:
    """Independent seed per (subset, split, domain, index): disjoint scenes everywhere."""
    return np.random.SeedSequence(
        entropy=seed,
        spawn_key=(_SUBSET_KEYS[subset], _SPLIT_KEYS[split], _DOMAIN_KEYS[domain], index),
    )


def _make_scene(size: int, seq: np.random.SeedSequence) -> tuple[Scene, np.random.SeedSequence]:
    return layout_scene(size, np.random.default_rng(_child(seq, 0))), _child(seq, 1)


def _save_png(img: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Fixed compression settings and no metadata: identical bytes for identical pixels.
    img.save(path, format="PNG", optimize=False, compress_level=6)


def scene_digest(scene: Scene) -> str:
    """Identity of a scene's layout (label, instance and part maps), independent of rendering."""
    h = hashlib.sha256()
    for arr in (scene.label, scene.instance, scene.part):
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()[:16]


def _write_all(out: Path, size: int, n_train: int, n_test: int, seed: int) -> dict[str, str]:
    """Write every file under ``out``; returns relative path -> :func:`scene_digest`."""
    scenes: dict[str, str] = {}

    def save(img: Image.Image, rel: str, scene: Scene) -> None:
        _save_png(img, out / rel)
        scenes[rel] = scene_digest(scene)

    counts = {"train": n_train, "test": n_test}
    for split, n in counts.items():
        unaligned = domain_folders("day2night", "unaligned", split)
        aligned = domain_folders("edges2photo", "aligned", split)
        labelmap = domain_folders("labels2photo", "labelmap", split)
        for domain, key in (("A", "day"), ("B", "night")):
            for i in range(n):
                scene, rseq = _make_scene(size, _scene_seed(seed, "day2night", split, domain, i))
                img = _render(
                    scene,
                    np.random.default_rng(_child(rseq, 0 if key == "day" else 1)),
                    night=key == "night",
                )
                save(img, f"{unaligned[domain].as_posix()}/{i:04d}.png", scene)
        for i in range(n):
            scene, rseq = _make_scene(size, _scene_seed(seed, "edges2photo", split, "", i))
            day = _render(scene, np.random.default_rng(_child(rseq, 0)), night=False)
            pair = Image.new("RGB", (2 * size, size))
            pair.paste(render_sketch(scene), (0, 0))
            pair.paste(day, (size, 0))
            save(pair, f"{aligned['AB'].as_posix()}/{i:04d}.png", scene)
        painting = domain_folders("photo2painting", "unaligned", split)
        for domain in ("A", "B"):
            for i in range(n):
                scene, rseq = _make_scene(size, _scene_seed(seed, "photo2painting", split, domain, i))
                img = _render(scene, np.random.default_rng(_child(rseq, 0)), night=False)
                if domain == "B":
                    img = render_painting(img, np.random.default_rng(_child(rseq, 2)))
                save(img, f"{painting[domain].as_posix()}/{i:04d}.png", scene)
        for i in range(n):
            scene, rseq = _make_scene(size, _scene_seed(seed, "labels2photo", split, "", i))
            day = _render(scene, np.random.default_rng(_child(rseq, 0)), night=False)
            save(day, f"{labelmap['image'].as_posix()}/{i:04d}.png", scene)
            save(Image.fromarray(scene.label, mode="L"), f"{labelmap['label'].as_posix()}/{i:04d}.png", scene)
            save(Image.fromarray(scene.instance, mode="L"), f"{labelmap['instance'].as_posix()}/{i:04d}.png", scene)
    return scenes


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest(out: Path, params: dict[str, int], scenes: dict[str, str]) -> dict[str, object]:
    files = sorted(p for p in out.rglob("*.png"))
    hashes = {p.relative_to(out).as_posix(): _sha256(p) for p in files}
    counts: dict[str, int] = {}
    for rel in hashes:
        folder = rel.rsplit("/", 1)[0]
        counts[folder] = counts.get(folder, 0) + 1
    return {
        "generator": "transfigure.data.default_dataset",
        "parameters": params,
        "classes": list(CLASSES),
        "subsets": dict(DEFAULT_SUBSETS),
        "counts": dict(sorted(counts.items())),
        "files": hashes,
        "scenes": dict(sorted(scenes.items())),
    }


def _read_manifest(root: Path) -> dict[str, object] | None:
    path = root / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        logger.warning("ignoring unreadable manifest '%s': %s", path, exc)
        return None
    return data if isinstance(data, dict) else None


def verify_default_dataset(root: str | Path) -> list[str]:
    """Re-hash every file listed in ``root/MANIFEST.json``.

    Returns:
        Problems found (missing or modified files); empty when all is intact.

    Raises:
        FileNotFoundError: there is no readable manifest under ``root``.
    """
    root = Path(root)
    manifest = _read_manifest(root)
    if manifest is None:
        raise FileNotFoundError(f"no readable {MANIFEST_NAME} in '{root}'")
    problems = []
    files = manifest.get("files", {})
    assert isinstance(files, dict)
    for rel, digest in files.items():
        path = root / rel
        if not path.is_file():
            problems.append(f"missing: {rel}")
        elif _sha256(path) != digest:
            problems.append(f"modified: {rel}")
    return problems


def _same_but_older(manifest: dict[str, object], params: dict[str, int]) -> bool:
    """The manifest has the requested parameters but another generator version."""
    old = manifest.get("parameters")
    if not isinstance(old, dict):
        return False
    strip = {k: v for k, v in params.items() if k != "generator_version"}
    return {k: v for k, v in old.items() if k != "generator_version"} == strip


def build_default_dataset(
    root: str | Path,
    *,
    size: int = 64,
    n_train: int = 48,
    n_test: int = 12,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Generate the default dataset under ``root`` (see the module docstring) and return ``root``.

    If ``root/MANIFEST.json`` already records the same parameters and all its
    files exist, nothing is rebuilt (a fast no-op) unless ``overwrite=True``;
    a build with the same parameters from another :data:`GENERATOR_VERSION`
    is replaced automatically, one with other parameters only with
    ``overwrite=True``.
    The build happens in a temporary folder next to ``root`` and is moved into
    place at the end, so an interrupted build never leaves a half-written
    dataset; only the subset folders and the manifest under ``root``
    are ever replaced, other files there are left alone.

    Args:
        root: output folder (created if needed).
        size: image side in pixels (>= 16).
        n_train: scenes per domain in each training split (>= 1).
        n_test: scenes per domain in each test split (>= 1).
        seed: master seed; the same parameters give byte-identical files.
        overwrite: rebuild even when a matching build exists, and replace a
            build made with other parameters.

    Raises:
        ValueError: invalid parameters.
        FileExistsError: ``root`` holds a build with other parameters (or
            subset folders without a manifest) and ``overwrite`` is False.
    """
    for name, value, minimum in (
        ("size", size, 16),
        ("n_train", n_train, 1),
        ("n_test", n_test, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    root = Path(root)
    params = {
        "size": size,
        "n_train": n_train,
        "n_test": n_test,
        "seed": seed,
        "generator_version": GENERATOR_VERSION,
    }

    manifest = _read_manifest(root)
    ours = [root / name for name in DEFAULT_SUBSETS] + [root / MANIFEST_NAME]
    if manifest is not None and manifest.get("parameters") == params and not overwrite:
        files = manifest.get("files", {})
        if isinstance(files, dict) and files and all((root / rel).is_file() for rel in files):
            logger.info("default dataset already built in '%s' with %s; nothing to do", root, params)
            return root
        logger.warning("default dataset in '%s' is incomplete; rebuilding it", root)
    elif not overwrite and manifest is not None and _same_but_older(manifest, params):
        logger.info(
            "default dataset in '%s' comes from generator version %s; rebuilding with version %d",
            root,
            manifest["parameters"].get("generator_version"),  # type: ignore[attr-defined]
            GENERATOR_VERSION,
        )
    elif not overwrite:
        existing = [p for p in ours if p.exists()]
        if existing and manifest is not None:
            raise FileExistsError(
                f"'{root}' holds a default dataset built with {manifest.get('parameters')}, "
                f"not {params}; pass overwrite=True (--overwrite) to replace it "
                "or choose another folder"
            )
        if existing:
            raise FileExistsError(
                f"'{root}' already holds {', '.join(repr(p.name) for p in existing)} without a "
                f"{MANIFEST_NAME}; pass overwrite=True (--overwrite) to replace them "
                "or choose another folder"
            )

    start = time.perf_counter()
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.building-", dir=root.parent))
    try:
        scenes = _write_all(tmp, size, n_train, n_test, seed)
        manifest_data = _manifest(tmp, params, scenes)
        (tmp / MANIFEST_NAME).write_text(json.dumps(manifest_data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        root.mkdir(parents=True, exist_ok=True)
        for path in ours:  # manifest last: it marks a complete build
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        for name in DEFAULT_SUBSETS:
            (tmp / name).replace(root / name)
        (tmp / MANIFEST_NAME).replace(root / MANIFEST_NAME)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    n_files = len(manifest_data["files"])  # type: ignore[arg-type]
    logger.info(
        "built default dataset in '%s': %d files, %dx%d px, in %.2f s",
        root,
        n_files,
        size,
        size,
        time.perf_counter() - start,
    )
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m transfigure.data.default_dataset OUT_DIR [options]``."""
    parser = argparse.ArgumentParser(
        prog="python -m transfigure.data.default_dataset",
        description=("Build transfigure's procedurally generated default dataset (offline, deterministic)."),
    )
    parser.add_argument("out_dir", type=Path, help="output folder")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels (default 64)")
    parser.add_argument("--n-train", type=int, default=48, help="training scenes per domain (default 48)")
    parser.add_argument("--n-test", type=int, default=12, help="test scenes per domain (default 12)")
    parser.add_argument("--seed", type=int, default=0, help="master seed (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="rebuild / replace an existing build")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        build_default_dataset(
            args.out_dir,
            size=args.size,
            n_train=args.n_train,
            n_test=args.n_test,
            seed=args.seed,
            overwrite=args.overwrite,
        )
    except (ValueError, FileExistsError) as exc:
        logger.error("%s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
