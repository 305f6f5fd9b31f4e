#!/usr/bin/env python
"""Why the watermark benchmark's misses are missed: the search, or the mark itself.

    python benchmarks/watermark_misses.py                          # the crop, reframe and resize rows, 256 and 512 px
    python benchmarks/watermark_misses.py --rows "to 0.75x" --sizes 512
    python benchmarks/watermark_misses.py --sweep "crop90 to 0.75x" --sizes 512   # the pitch scan's tolerance

For every photo of ``benchmarks/watermark.py`` and each edit whose geometry is known exactly (crops kept,
enlarged or made smaller, reframing, squashing, flip + crop + halving, the screenshot), a missed
detection is read again at the *true* geometry (where the edit put the original's lattice; the gain
and, for a picture in a border, a quarter pixel refined) and decoded there. A miss the true geometry
decodes is the search's (the mark is there; the search did not find where); one it does not decode is
the mark's (too little of it survived: white or flat areas, too few tiles). Rotations are left out:
nearest-neighbour rotation moves pixels by up to half a pixel, so no geometry reads them exactly.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from watermark import KEY, ROWS, payload_for, shared_photos, skimage_photos, square  # noqa: E402

from transfigure.provenance import watermark as wm  # noqa: E402
from transfigure.provenance.attacks import PLACES, corner, crop_box, screenshot_frame  # noqa: E402
from transfigure.provenance.watermark import planes as pl  # noqa: E402
from transfigure.provenance.watermark import sync  # noqa: E402
from transfigure.provenance.watermark.layout import cell_size, layout  # noqa: E402
from transfigure.provenance.watermark.read import Geometry  # noqa: E402


def true_geometry(row: str, index: int, size: int, edited_size: tuple[int, int]) -> Geometry | None:
    """Where the edit ``row`` (as benchmarks/watermark.py applies it to photo ``index``) put the original's
    lattice: image position of lattice point (0, 0) and the cell steps (Pillow resizes map pixel centres:
    x' = (x + 0.5) s - 0.5), or None for an edit this script does not model."""
    width, height = edited_size
    c0 = cell_size(size, size)
    flip = False
    if row.startswith("crop") and "+" not in row:
        pct, _, kind = row[4:].partition(" ")
        kind = kind or "centre"  # the first release's crop90: the centre, enlarged back
        # where attacks.GEOMETRIC's rows put the kept box for photo ``index``
        place = {
            "centre": "centre",
            "corner": corner(index),
            "rescaled": corner(index + 1),
            "to 0.75x": PLACES[index % 5],
        }
        if kind not in place:
            return None
        left, top, right, _ = crop_box(size, size, int(pct) / 100, place[kind])
        sx = sy = width / (right - left)
    elif row.startswith("reframe") and row != "reframe 1:1 of 4:3":
        left, top = (size - width) // 2, (size - height) // 2
        sx = sy = 1.0
    elif row == "squash 4:3" or row.startswith("resize0.5"):
        left = top = 0
        sx, sy = width / size, height / size
        if row.startswith("resize0.5"):
            sx = sy = 1.0  # resized back to the original size
    elif row == "flip + crop80 + resize0.5":
        left, top, right, _ = crop_box(size, size, 0.8, corner(index))
        sx = sy = width / (right - left)
        flip = True
    elif row == "screenshot":
        left, top, shown, _ = screenshot_frame(size, size)
        s = shown / size
        return Geometry((c0 * s, 0.0, 0.0, c0 * s), (0.5 * s - 0.5 + left, 0.5 * s - 0.5 + top), (0, 0), (1, 1))
    else:
        return None
    if flip:  # the flipped original's column x is size - 1 - x
        return Geometry(
            (-c0 * sx, 0.0, 0.0, c0 * sy), ((size - 0.5 - left) * sx - 0.5, (0.5 - top) * sy - 0.5), (0, 0), (1, 1)
        )
    return Geometry((c0 * sx, 0.0, 0.0, c0 * sy), ((0.5 - left) * sx - 0.5, (0.5 - top) * sy - 0.5), (0, 0), (1, 1))


def read_at(image, geometry: Geometry, lay) -> tuple[float, bool]:
    """(z, decoded) of the image read at ``geometry`` (the gain and a quarter pixel refined)."""
    source = sync.Source.of(pl.read_channels(image))
    geometry = sync._extended(geometry, source.width, source.height)
    gains = np.array([0.85, 0.9, 0.95, 1.0, 1.05])
    fits, zs = sync._reading_z(lay, source.read(geometry), gains)
    k = int(np.argmax(zs))
    cand = sync.Candidate(geometry, float(gains[k]), float(fits[k]), "truth", float(zs[k]))
    cand = sync.refine(source, lay, cand, 0.25, levels=2)
    return cand.z, sync._Decoder(source, lay)(cand)


def sweep(row: str, size: int, names: list[str], lay) -> None:
    """The pitch scan's window screen (see sync._scaled) of ``row`` at the true pitch and 0.6 / 1.25 % off,
    with its samples on the lattice or an eighth of a cell off it (each way), for the named photos."""
    photos = [(i, n, p) for i, (n, p) in enumerate(skimage_photos() + shared_photos()) if any(k in n for k in names)]
    errors = (-0.0125, -0.00625, 0.0, 0.00625, 0.0125)
    print(f"window screen z, {row}, {size} px: pitch off by " + " / ".join(f"{100 * e:+.2f} %" for e in errors))
    print("| photo | samples on the lattice | an eighth of a cell off |")
    print("|---|---|---|")
    for index, name, photo in photos:
        edited = ROWS[row](wm.embed_watermark(square(photo, size), payload_for(size, index), KEY), index)
        source = sync.Source.of(pl.read_channels(edited))
        truth = true_geometry(row, index, size, edited.size)
        pitch, offset = abs(truth.matrix[0]), np.array(truth.offset)
        cells = []
        for phase in (0.0, 0.125):
            zs = []
            for error in errors:
                p = pitch * (1 + error)
                window, x0, y0 = sync._central_window(source, math.ceil(sync.SCALED_CELLS * p * 1.03) + 8)
                # a sample on the lattice point nearest the window's corner (or an eighth of a cell off it)
                anchor = (offset - np.array([x0, y0])) % pitch + phase * p
                screened = sync.dense_screen(
                    window, lay, np.eye(2) * p, 4, (1.0,), "sweep", 1, sync._ORIENTATIONS[:1], tuple(anchor), True
                )
                zs.append(f"{screened[0].z:.1f}")
            cells.append(" / ".join(zs))
        print(f"| {name} | {cells[0]} | {cells[1]} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--rows", nargs="+", default=["crop", "reframe", "squash", "resize0.5", "flip +", "screenshot"])
    parser.add_argument("--sweep", default=None, help="instead: the pitch scan's screen around the truth for this row")
    parser.add_argument(
        "--photos", nargs="+", default=["astronaut", "coffee", "grass", "gravel", "stereo", "immuno", "1818", "00011"]
    )
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    lay = layout(KEY)
    if args.sweep:
        for size in args.sizes:
            sweep(args.sweep, size, args.photos, lay)
        return 0
    photos = skimage_photos() + shared_photos()
    rows = [r for r in ROWS if any(k in r for k in args.rows) and true_geometry(r, 0, 256, (256, 256)) is not None]
    print(
        "| size | edit | photos | missed | of which the true geometry decodes (search) | z there (median) | not even there (mark) |"
    )
    print("|---|---|---|---|---|---|---|")
    for size in args.sizes:
        marked = []
        for index, (_, photo) in enumerate(photos):
            payload = payload_for(size, index)
            marked.append((payload, wm.embed_watermark(square(photo, size), payload, KEY)))
        for row in rows:
            search, mark, zs = [], [], []
            for index, (payload, image) in enumerate(marked):
                edited = ROWS[row](image, index)
                found = wm.detect_watermark(edited, KEY)
                if found.detected and found.payload == payload:
                    continue
                z, decoded = read_at(edited, true_geometry(row, index, size, edited.size), lay)
                (search if decoded else mark).append(photos[index][0])
                zs.append(z)
            missed = len(search) + len(mark)
            z_text = f"{np.median(zs):.1f}" if zs else ""
            print(f"| {size} | {row} | {len(marked)} | {missed} | {len(search)} | {z_text} | {len(mark)} |")
            for name in search:
                print(f"    search: {name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
