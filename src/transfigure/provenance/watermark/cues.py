"""Evidence in the image itself of how it was edited, so the search can try those geometries first.

* :func:`content_boxes`: a uniform border around the picture (padding, a screenshot's frame);
* :func:`rotation_fill`: the flat corners a rotation leaves (Pillow fills them black by default), whose
  straight edges give the angle to a small fraction of a degree, and the rotated picture's size;
* :func:`nearest_rotation`: Pillow's default rotation copies the nearest pixel, so here and there two
  neighbours are the same source pixel twice: those exact duplicates repeat on the original's pixel grid
  turned by the angle, whose Fourier peaks give the angle to ~0.05 degree, with its sign;
* :func:`upscale_factors`: an enlarged image repeats its interpolation weights every ``s`` pixels, so
  the strength of its second differences is periodic with the scale factor (Gallagher, "Detection of
  linear and cubic interpolation in JPEG compressed images", 2005), which a Fourier peak gives precisely.

None of these is needed for a detection: each only puts a likely geometry in front of the search.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Final, NamedTuple

import cv2
import numpy as np
from scipy import ndimage

__all__ = [
    "Enlargement",
    "Rotation",
    "content_boxes",
    "nearest_rotation",
    "rotation_fill",
    "rotation_traces",
    "upscale_factors",
]

#: A side's outermost pixels are a border if 90 % of them are this close to their median colour (0..255).
FLAT_SPREAD: Final = 6.0
#: Pixels this close to the fill colour (0..255, any channel) count as fill.
FILL_TOLERANCE: Final = 12.0


def _edge(profile: np.ndarray) -> float | None:
    """Where a profile rises from a flat border (~0) to the picture, as the index of the first picture
    pixel (sub-pixel: the crossing of the level half way between the border and the picture just inside
    it, which a sharp step at k puts at k - 1/2), or None if the profile starts in the picture or never
    rises."""
    level = float(np.median(profile[len(profile) // 4 : 3 * len(profile) // 4]))
    noise = float(profile[: max(2, len(profile) // 64)].max())
    threshold = min(0.5 * level, max(6.0, 4.0 * noise))
    if level < 4.0 or profile[0] > threshold:
        return None
    above = np.flatnonzero(profile > threshold)
    if not above.size or above[0] < 2:
        return None
    k = int(above[0])
    border = float(np.median(profile[: max(1, k - 3)]))
    inside = float(np.median(profile[k + 2 : k + 6])) if k + 6 <= len(profile) else float(profile[k])
    mid = 0.5 * (border + inside)
    for j in range(max(1, k - 3), min(len(profile), k + 4)):
        if profile[j] >= mid:
            lo, hi = float(profile[j - 1]), float(profile[j])
            # (the first pixel looked at may already be above the level: the crossing is before it)
            return j - 1 + (min(max((mid - lo) / (hi - lo), 0.0), 1.0) if hi > lo else 0.0) + 0.5
    return float(k)


#: A pixel is off the border's colour by more than this (0..255, its largest channel difference): above
#: JPEG's noise on a flat border and most of its ringing next to the picture.
BOX_OFF_COLOUR: Final = 8.0


def _step(share: np.ndarray) -> int | None:
    """The first index where a share of off-border pixels reaches 1/2 after a run of border (shares under
    0.2), or None."""
    above = np.flatnonzero(share >= 0.5)
    if not above.size or above[0] < 2 or share[: above[0] - 1].max() >= 0.2:
        return None
    return int(above[0])


#: A border under this share of its side, across from none or another narrow one while bars close the other
#: axis, may be the picture's own edge (see content_boxes).
NARROW_BORDER: Final = 0.1


def content_boxes(channels: np.ndarray) -> list[tuple[float, float, float, float]]:
    """(left, top, right, bottom) pixel boundaries of the picture inside a uniform border (padding, a
    screenshot's frame, letterbox or pillarbox bars, a caption strip), likeliest first, or none. ``channels``
    is (H, W, C) in 0..255. A side is bordered when its outermost line is flat (FLAT_SPREAD), all of one
    colour; the picture reaches the others.

    Two measures of each bordered side's edge: where the mean difference from the border's colour rises
    half way to the picture's (to a fraction of a pixel; late where the picture's own edge is close to the
    border's colour, a bag on white in a light page), and where the share of pixels off that colour steps
    up to a half (whole pixels; early where JPEG rings next to a dark edge)."""
    h, w = channels.shape[:2]
    lines = (channels[:, 0], channels[0], channels[:, -1], channels[-1])  # left, top, right, bottom
    ring = np.concatenate(lines)
    colour = np.median(ring, axis=0)
    if np.mean(np.abs(ring - colour).max(axis=1) <= FLAT_SPREAD) >= 0.9:
        # a frame all round (judged as a whole: JPEG's chroma can bleed into one side's outer line)
        bordered = [True] * 4
    else:  # bars on some sides: each flat on its own, of one colour (a side flat in another is picture: a sky)
        medians = [np.median(line, axis=0) for line in lines]
        flat = [np.mean(np.abs(line - m).max(axis=1) <= FLAT_SPREAD) >= 0.9 for line, m in zip(lines, medians)]
        if not any(flat):
            return []
        colour = np.median(np.concatenate([line for line, f in zip(lines, flat) if f]), axis=0)
        bordered = [f and float(np.abs(m - colour).max()) <= FLAT_SPREAD for f, m in zip(flat, medians)]
    deviation = np.abs(channels - colour)
    diff = deviation.mean(axis=-1)
    rows = diff[:, w // 4 : 3 * w // 4].mean(axis=1)
    cols = diff[h // 4 : 3 * h // 4].mean(axis=0)
    profiles = (cols, rows, cols[::-1], rows[::-1])
    found = [_edge(p) if b else None for p, b in zip(profiles, bordered)]
    # a side whose profile starts in the picture is not bordered after all (a dark picture's edge is as
    # flat as a black bar); bars come in pairs across the picture (one flat side is more often a sky or a
    # dark background than a caption strip)
    bordered = [e is not None for e in found]
    if not (bordered[0] and bordered[2]) and not (bordered[1] and bordered[3]):
        return []
    edges = [0.0 if e is None else e for e in found]
    off = deviation.max(axis=-1) > BOX_OFF_COLOUR
    row_share = off[:, w // 4 : 3 * w // 4].mean(axis=1)
    col_share = off[h // 4 : 3 * h // 4].mean(axis=0)
    shares = (col_share, row_share, col_share[::-1], row_share[::-1])
    steps = [_step(p) if b else 0 for p, b in zip(shares, bordered)]
    # first each side at the step where the two agree to half a pixel (a picture pasted at whole pixels),
    # else at the mean's edge; then at the steps up to 4 px before the mean's edges
    snapped = [float(s) if s is not None and abs(s - e) <= 0.5 else e for e, s in zip(edges, steps)]
    stepped = [float(s) if s is not None and abs(s - e) <= 4 else e for e, s in zip(edges, steps)]
    # bars on two opposite sides (a letterbox, a pillarbox) fix the picture's extent that way; narrow
    # borders the other way may be the picture's own dark or white edge (a sky, a rectified facade's black):
    # then also the picture reaching those sides
    reached = []
    for axis in (0, 1):
        other = 1 - axis
        narrow = all(snapped[k] < NARROW_BORDER * (w if axis == 0 else h) for k in (axis, axis + 2))
        if bordered[other] and bordered[other + 2] and (bordered[axis] or bordered[axis + 2]) and narrow:
            reached.append([0.0 if k % 2 == axis else v for k, v in enumerate(snapped)])
    # a picture is centred between its bars: where one reads wider (the picture's own edge of the bar's
    # colour), also both as the narrower
    centred = []
    for sides in [stepped, *reached]:
        for axis in (0, 1):
            if bordered[axis] and bordered[axis + 2] and abs(sides[axis] - sides[axis + 2]) > 1.5:
                margin = min(sides[axis], sides[axis + 2])
                centred.append([margin if k % 2 == axis else v for k, v in enumerate(sides)])
    candidates = [snapped, stepped, *reached, *centred]
    boxes: list[tuple[float, float, float, float]] = []
    for left, top, right, bottom in candidates:
        box = (max(left, 0.0), max(top, 0.0), min(w - right, float(w)), min(h - bottom, float(h)))
        large = box[2] - box[0] >= 32 and box[3] - box[1] >= 32
        if large and all(max(abs(a - b) for a, b in zip(box, other)) > 0.5 for other in boxes):
            boxes.append(box)
    return boxes


@dataclass(frozen=True)
class Rotation:
    """A rotation found from its fill: the angle (degrees, counter-clockwise as Pillow's ``rotate``) and,
    where the fill shows them, the picture's width and height before rotating (else None)."""

    angle: float
    width: float | None
    height: float | None
    #: how far apart (degrees) the sides that gave the angle lie: 0 for one agreeing within SIDES_AGREE;
    #: up to SIDES_ROUGH where a dark picture region merged with the fill bent some of its sides
    spread: float = 0.0


#: Sides of the fill agree on a rotation within SIDES_AGREE degrees; failing that, within SIDES_ROUGH (a dark
#: picture region merged with the fill bends the sides it touches: the angle is then rough, see Rotation).
SIDES_AGREE: Final = 0.3
SIDES_ROUGH: Final = 1.0


def rotation_fill(channels: np.ndarray) -> Rotation | None:
    """The rotation whose fill lies in the image's corners, or None. The fill is the flat colour of the
    corners; its boundary towards the picture is grouped by the direction it faces (the four sides of a
    rotated rectangle face four directions 90 degrees apart) and each group fitted with a line; at least two
    straight sides at agreeing angles make a rotation. Images over 400 px are read at half size (the
    angle stays within a few hundredths of a degree; the sides are scaled back)."""
    if min(channels.shape[:2]) > 400:
        small = cv2.resize(channels, (channels.shape[1] // 2, channels.shape[0] // 2), interpolation=cv2.INTER_AREA)
        found = rotation_fill(small.reshape(*small.shape[:2], -1))
        if found is None:
            return None
        return Rotation(
            found.angle,
            None if found.width is None else 2 * found.width,
            None if found.height is None else 2 * found.height,
            found.spread,
        )
    h, w = channels.shape[:2]
    corners = [(0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1)]
    values = np.array([channels[y, x] for y, x in corners], dtype=np.float32)
    colour = np.median(values, axis=0)
    # a fill is flat: the 4 x 4 pixels at a filled corner are all of its colour
    patches = [channels[:4, :4], channels[:4, -4:], channels[-4:, :4], channels[-4:, -4:]]
    at_corner = np.array([np.abs(p - colour).max() <= FILL_TOLERANCE for p in patches])
    if at_corner.sum() < 2:
        return None
    fill = np.all(np.abs(channels - colour) <= FILL_TOLERANCE, axis=-1).astype(np.uint8)
    _, labels = cv2.connectedComponents(fill, connectivity=4)
    keep = np.isin(labels, [labels[y, x] for (y, x), ok in zip(corners, at_corner) if ok])
    region = keep.astype(np.uint8)
    border = region - cv2.erode(region, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)
    ys, xs = np.nonzero(border)
    inside = (xs > 1) & (xs < w - 2) & (ys > 1) & (ys < h - 2)
    if inside.sum() < 20:
        return None
    xs, ys = xs[inside], ys[inside]
    edge_image = np.zeros((h, w), np.uint8)
    edge_image[ys, xs] = 255
    # straight sides vote strongly (Hough); a dark picture region merged with the fill leaves curved borders
    lines = cv2.HoughLines(edge_image, 1, np.pi / 1800, threshold=max(20, min(h, w) // 8))
    if lines is None:
        return None
    centre = ((w - 1) / 2.0, (h - 1) / 2.0)
    points = np.column_stack([xs, ys]).astype(np.float32)
    sides: list[tuple[float, float, float]] = []  # (facing in degrees, direction mod 180, distance from centre)
    for rho, theta in lines[:12, 0]:
        normal = np.array([math.cos(theta), math.sin(theta)])
        near = np.abs(points @ normal - rho) < 1.5
        if near.sum() < 20:
            continue
        vx, vy, x0, y0 = (float(v) for v in cv2.fitLine(points[near], cv2.DIST_HUBER, 0, 0.01, 0.01).ravel())
        direction = math.degrees(math.atan2(vy, vx)) % 180.0
        # the side faces from its line towards the image centre; skip lines already found
        facing = (
            math.degrees(
                math.atan2(
                    centre[1] - y0 - ((centre[0] - x0) * vx + (centre[1] - y0) * vy) * vy,
                    centre[0] - x0 - ((centre[0] - x0) * vx + (centre[1] - y0) * vy) * vx,
                )
            )
            % 360.0
        )
        if any(abs((facing - f + 180.0) % 360.0 - 180.0) < 10.0 for f, _, _ in sides):
            continue
        # the fill's own boundary pixels lie about half a pixel outside the picture's side
        distance = abs((centre[0] - x0) * vy - (centre[1] - y0) * vx) - 0.5
        sides.append((facing, direction, distance))
    # straight but square to the image: the picture's own frame (or the edge of a dark region), not a rotation
    sides = [side for side in sides if 0.2 < side[1] % 90.0 < 89.8]
    if len(sides) < 2:
        return None
    # the largest group of sides whose directions agree (modulo 90 degrees)
    tilts = np.array([d % 90.0 for _, d, _ in sides])
    apart = np.minimum(np.abs(tilts[:, None] - tilts[None, :]), 90 - np.abs(tilts[:, None] - tilts[None, :]))
    spread = 0.0
    for tolerance in (SIDES_AGREE, SIDES_ROUGH):
        group = max(([j for j in range(len(sides)) if apart[i, j] < tolerance] for i in range(len(sides))), key=len)
        if len(group) >= 2:
            spread = 0.0 if tolerance == SIDES_AGREE else float(apart[np.ix_(group, group)].max())
            break
    else:
        return None
    sides = [sides[j] for j in group]
    tilts = np.array([tilts[j] for j in group])
    tilts = np.where(tilts - tilts[0] > 45, tilts - 90, np.where(tilts[0] - tilts > 45, tilts + 90, tilts))
    tilt = float(np.mean(tilts)) % 90.0
    angle = 90.0 - tilt if tilt > 45.0 else -tilt  # Pillow's counter-clockwise angle, within +-45 degrees
    if abs(angle) < 0.2:
        return None
    # the sides facing up or down (within 45 degrees) are the picture's top and bottom: they give its height
    vertical = [dist for facing, _, dist in sides if 45.0 <= facing % 180.0 < 135.0]
    horizontal = [dist for facing, _, dist in sides if not 45.0 <= facing % 180.0 < 135.0]
    height = 2.0 * float(np.mean(vertical)) if vertical else None
    width = 2.0 * float(np.mean(horizontal)) if horizontal else None
    return Rotation(angle=angle, width=width, height=height, spread=spread)


#: Kirchner's fixed linear predictor ("Fast and reliable resampling detection by spectral analysis of fixed
#: linear predictor residue", 2008): interpolated pixels are predicted well from their neighbours, originals
#: are not, so the map of how well each pixel is predicted repeats with the interpolation's period.
_PREDICTOR: Final = np.array([[-0.25, 0.5, -0.25], [0.5, 0.0, 0.5], [-0.25, 0.5, -0.25]], dtype=np.float32)


def _prediction_map(luma: np.ndarray) -> np.ndarray:
    """How well each pixel is predicted from its neighbours (1 = exactly), the map whose period shows a
    resampling."""
    residual = luma - cv2.filter2D(luma.astype(np.float32), -1, _PREDICTOR, borderType=cv2.BORDER_REFLECT)
    return np.exp(-np.square(residual))


#: The smallest enlargement looked for (a smaller one moves the lattice too little to need a search).
MIN_FACTOR: Final = 1.05
#: Readings of the strongest peaks (against the whole spectrum's median) returned first, at most this many.
RANKED_READINGS: Final = 4
#: Then at most this many readings of the peaks that stand out from their own neighbourhood of the spectrum
#: (its median within LOCAL_BAND cycles/px): a photo's own structure raises the spectrum broadly, mostly at
#: low frequencies, where its broad bumps can outrank the enlargement's narrow line (crop 60 % enlarged back
#: at 512 px: the factor among the readings for 98 of the benchmark's 102 photos, 102 with these).
ISOLATED_READINGS: Final = 2
LOCAL_BAND: Final = 0.03
#: Against its neighbourhood, a peak counts from this strength (the noise's own peaks reach ~3 there);
#: against the whole spectrum's median, from ``min_peak``.
ISOLATED_PEAK: Final = 6.0


class Enlargement(NamedTuple):
    """A reading of an enlargement's period: the scale factor, the peak's strength, and whether the peak
    stood out only from its neighbourhood of the spectrum (see ISOLATED_READINGS)."""

    factor: float
    strength: float
    isolated: bool


def upscale_factors(luma: np.ndarray, min_peak: float = 8.0) -> list[Enlargement]:
    """The enlargements an image shows along its columns and rows (factors > 1). A
    spectral peak at f cycles/px of the prediction map says a period of 1 / (1 - f) (aliased; factors up to
    2) or 1 / f; both are returned. Frequencies of JPEG's 8-px grid are skipped when the image shows that
    grid.
    First the readings of each spectrum's strongest peak against the whole spectrum's median (at most
    RANKED_READINGS); a peak both axes show (an enlargement that kept the aspect) comes first: their
    geometric mean ranks it above the periodic structure of one axis alone (lines of text, a facade's
    windows). Then those of the strongest peak against its neighbourhood (ISOLATED_READINGS)."""
    predicted = _prediction_map(luma)
    length = 8 * max(luma.shape)
    freqs = np.fft.rfftfreq(length)
    band = freqs > 1.0 - 1.0 / MIN_FACTOR
    ranked: list[list[np.ndarray]] = [[], []]  # against the whole spectrum's median; against the local one
    for profile in (predicted.mean(axis=0), predicted.mean(axis=1)):
        profile = profile[2:-2] - profile[2:-2].mean()
        if len(profile) < 32:
            continue
        # off JPEG's 8-px block grid (k/8 cycles/px) by more than the window's main lobe
        off_grid = np.abs(freqs - np.round(freqs * 8) / 8) > max(0.005, 2.5 / len(profile))
        eighth = ~off_grid & (np.abs(freqs - 0.125) < 0.01)
        spectrum = np.abs(np.fft.rfft(profile * np.hanning(len(profile)), length))
        # the neighbourhood's median, on the unpadded bins (every 8th)
        coarse = spectrum[::8]
        local = ndimage.median_filter(coarse, size=2 * max(4, int(LOCAL_BAND * len(profile))) + 1, mode="nearest")
        local = np.interp(np.arange(len(spectrum)), np.arange(len(coarse)) * 8.0, local)
        against_local = spectrum / (local + 1e-12 * float(spectrum.max()) + 1e-30)
        spectrum /= float(np.median(spectrum[band & off_grid])) + 1e-12
        # JPEG's blocks show at 1/8 cycles/px (else an enlargement by 8/7, rare); only then are the grid's
        # frequencies, which enlargements by 4/3 or 8/5 share, set aside (but for 1/2: a 2x enlargement)
        jpeg = float(spectrum[eighth].max()) >= min_peak
        usable = band & (off_grid | (freqs > 0.49) | (not jpeg))
        ranked[0].append(np.where(usable, spectrum, 0.0))
        ranked[1].append(np.where(usable, against_local, 0.0))
    out: list[Enlargement] = []
    for isolated, (spectra, count, least) in enumerate(
        zip(ranked, (RANKED_READINGS, ISOLATED_READINGS), (min_peak, ISOLATED_PEAK))
    ):
        limit = len(out) + count
        if len(spectra) == 2:
            spectra.insert(0, np.sqrt(spectra[0] * spectra[1]))
        found = []
        for n, spectrum in enumerate(spectra):
            k = int(np.argmax(spectrum))
            strength = float(spectrum[k])
            if strength < least:
                continue
            f = float(freqs[k])
            if 0 < k < len(spectrum) - 1:  # sub-bin peak: a parabola through three bins
                a, b, c = spectrum[k - 1], spectrum[k], spectrum[k + 1]
                if a - 2 * b + c < 0:
                    f += 0.5 * (a - c) / (a - 2 * b + c) / length
            # the joint peak ranks first
            rank = strength + (1e6 if n == 0 and len(spectra) == 3 else 0.0)
            for scale in (1.0 / (1.0 - f), 1.0 / f):
                if 1.02 < scale < 8.0:
                    found.append((scale, strength, rank))
        found.sort(key=lambda t: -t[2])
        for scale, strength, _ in found:
            if len(out) < limit and all(abs(scale - r.factor) / r.factor > 0.003 for r in out):
                out.append(Enlargement(scale, strength, bool(isolated)))
    return out


#: The angles (degrees, each way) :func:`nearest_rotation` tells apart; under ~1 degree a rotation copies
#: almost every pixel once and leaves few duplicates.
NEAREST_ANGLES: Final = np.arange(1.0, 16.0 + 1e-9, 0.05)
#: The reciprocal vectors (m, n) of the turned pixel grid whose peaks are summed (their aliases fill the
#: spectrum; one of each +-pair).
_NEAREST_HARMONICS: Final = tuple((m, n) for m in range(-3, 4) for n in range(4) if n > 0 or m > 0)
#: Side of the central window read (its spectrum's bins: 1 / this cycles per pixel).
NEAREST_WINDOW: Final = 256


@functools.lru_cache(maxsize=4)
def _nearest_comb(side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(angles, row bins, column bins, usable) of each harmonic's alias for each signed angle, on a ``side``
    FFT; a peak within 0.03 cycles/px of zero is not used (a picture's own low frequencies)."""
    angles = np.concatenate([-NEAREST_ANGLES[::-1], NEAREST_ANGLES])
    t = np.radians(angles)
    fx = np.array([m * np.cos(t) + n * np.sin(t) for m, n in _NEAREST_HARMONICS])
    fy = np.array([-m * np.sin(t) + n * np.cos(t) for m, n in _NEAREST_HARMONICS])
    fx, fy = (fx + 0.5) % 1.0 - 0.5, (fy + 0.5) % 1.0 - 0.5
    usable = np.hypot(fx, fy) > 0.03
    return angles, np.round(fy * side).astype(int) % side, np.round(fx * side).astype(int) % side, usable


def nearest_rotation(channels: np.ndarray, count: int = 2) -> list[tuple[float, float]]:
    """(angle in degrees, counter-clockwise as Pillow's ``rotate``; strength) of a nearest-neighbour
    rotation by 1-16 degrees each way, strongest first. Read on exact duplicates: two neighbours equal in
    every channel whose other neighbours differ (flat areas, where everything repeats, count for
    nothing). A rotation copies a source pixel twice wherever the turned grid's rounding repeats, which is
    periodic along the turned grid: the spectrum of the duplicates' map peaks at its reciprocal vectors,
    aliased; each angle is scored by the mean spectrum (in medians) at its harmonics' aliases. About 2 on
    a picture that was not turned this way; 3-20 on one that was, by 7-15 degrees (weaker for smaller
    angles, and lost after re-encoding)."""
    h, w = channels.shape[:2]
    side = NEAREST_WINDOW
    y0, x0 = max(0, (h - side) // 2), max(0, (w - side) // 2)
    window = channels[y0 : y0 + side, x0 : x0 + side]
    across = np.all(window[:, 1:] == window[:, :-1], axis=-1)
    down = np.all(window[1:] == window[:-1], axis=-1)
    duplicates = np.zeros(window.shape[:2], np.float32)
    duplicates[:, 1:-2] += across[:, 1:-1] & ~across[:, :-2] & ~across[:, 2:]
    duplicates[1:-2, :] += down[1:-1] & ~down[:-2] & ~down[2:]
    if duplicates.sum() < 50:
        return []
    duplicates -= duplicates.mean()
    spectrum = np.abs(np.fft.fft2(duplicates, s=(side, side)))
    spectrum /= float(np.median(spectrum)) + 1e-9
    angles, rows, cols, usable = _nearest_comb(side)
    score = (spectrum[rows, cols] * usable).sum(axis=0) / np.maximum(usable.sum(axis=0), 1)
    out: list[tuple[float, float]] = []
    for k in np.argsort(-score):
        if all(abs(angles[k] - a) > 0.3 for a, _ in out):
            out.append((round(float(angles[k]), 2), float(score[k])))
        if len(out) >= count:
            break
    return out


def rotation_traces(luma: np.ndarray, count: int = 3) -> list[float]:
    """Angles (degrees, magnitude and sign) a resampled rotation may have left: rotating copies or
    interpolates pixels on the original's grid turned by the angle, so the prediction map (see
    :func:`upscale_factors`) repeats along that grid, whose frequencies alias to about (sin a, 1 - cos a)
    cycles/px; the strongest peaks of its spectrum away from the image's own low frequencies and JPEG's
    grid, strongest first. Weak after JPEG; a search tries them as candidates only."""
    h, w = luma.shape
    if min(h, w) > 320:  # the trace repeats everywhere: a central 256 x 256 holds it (a quarter of the cost)
        y0, x0 = (h - 256) // 2, (w - 256) // 2
        luma = luma[y0 : y0 + 256, x0 : x0 + 256]
    predicted = _prediction_map(luma)
    predicted -= predicted.mean()
    h, w = predicted.shape
    spectrum = np.abs(np.fft.fftshift(np.fft.fft2(predicted * np.outer(np.hanning(h), np.hanning(w)))))
    fy = ((np.arange(h) - h // 2) / h)[:, None]
    fx = ((np.arange(w) - w // 2) / w)[None, :]
    radius = np.hypot(fx, fy)
    grid = (np.abs(fx * 8 - np.round(fx * 8)) < 0.06) | (np.abs(fy * 8 - np.round(fy * 8)) < 0.06)
    usable = (radius > 0.05) & (radius < 0.5) & ~grid & (fy >= 0)
    # (partitioned among the usable bins only: numpy's selection is slow on many equal values)
    index = np.flatnonzero(usable.ravel())
    values = spectrum.ravel()[index]
    top = np.argpartition(values, -8 * count)[-8 * count :]
    out: list[float] = []
    for k in index[top[np.argsort(values[top])[::-1]]]:
        y, x = divmod(int(k), w)
        r = float(radius[y, x])
        magnitude = math.degrees(2 * math.asin(min(1.0, r / 2)))
        # the peak near (sin a, 1 - cos a) or (1 - cos a, -sin a): the sign is that of fx * fy (with fy > 0)
        angle = magnitude if float(fx[0, x] * fy[y, 0]) >= 0 else -magnitude
        if magnitude <= 45 and all(abs(angle - a) > 0.3 for a in out):
            out.append(angle)
        if len(out) >= count:
            break
    return out
