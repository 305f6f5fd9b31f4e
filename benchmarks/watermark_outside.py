#!/usr/bin/env python
"""The watermark on edits and sizes that are not in the benchmark's table: a check of the whole class of
edits the table samples (other crop fractions and places, other reframes and squashes, other angles with
and without ``expand``, other codecs), on pictures of other sizes and aspects.

    python benchmarks/watermark_outside.py                      # 384x384, 640x480, 256x192; 18 photos
    python benchmarks/watermark_outside.py --sizes 1024x1024 --photos 8
    python benchmarks/watermark_outside.py --edits flip letterbox       # only edits whose name has these
    python benchmarks/watermark_outside.py --benchmark-photos --photos 40 --sizes 512x384 --edits expand

The photos are facades the main benchmark does not use (``../shared/datasets/facades``, after its first
40), resized to each size (or, ``--benchmark-photos``, the main benchmark's scikit-image and COCO photos,
cut to each size's aspect); each is marked with its own payload and every edit is detected with the same
key. Prints, per size and edit, how many were found with the right payload and the median detection time
(one thread per process, two processes).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import glob  # noqa: E402
import io  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from multiprocessing import Pool  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image, ImageOps  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from watermark import SHARED, payload_for, shared_photos, skimage_photos  # noqa: E402

from transfigure.provenance import detect_watermark, embed_watermark  # noqa: E402
from transfigure.provenance.attacks import crop, inner_rectangle, jpeg, reframe, rotate  # noqa: E402

KEY = b"watermark outside-the-table check"
#: the main benchmark takes the first 40 facades
FIRST_PHOTO = 60


def _webp(image: Image.Image, quality: int = 80) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "WEBP", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def _scaled(image: Image.Image, factor: float) -> Image.Image:
    return image.resize((round(image.width * factor), round(image.height * factor)), Image.Resampling.BICUBIC)


def _fitted(image: Image.Image, canvas: tuple[int, int], fill: tuple[int, int, int]) -> Image.Image:
    """Resized to fit a canvas of another aspect, centred between bars (a letterbox or pillarbox)."""
    scale = min(canvas[0] / image.width, canvas[1] / image.height)
    shown = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)
    out = Image.new("RGB", canvas, fill)
    out.paste(shown, ((canvas[0] - shown.width) // 2, (canvas[1] - shown.height) // 2))
    return out


_FLIP = Image.Transpose.FLIP_LEFT_RIGHT


EDITS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "crop 75 % bottom-left": lambda im: crop(im, 0.75, "bottom-left"),
    "crop 65 % rescaled": lambda im: crop(im, 0.65, "centre", im.size),
    "crop 85 % to 0.6x": lambda im: crop(im, 0.85, "top-right", _scaled(im, 0.6).size),
    "crop 95 % to 0.9x": lambda im: crop(im, 0.95, "top-left", _scaled(im, 0.9).size),
    "reframe 3:2": lambda im: reframe(im, 1.5),
    "reframe 2:3 + jpeg 85": lambda im: jpeg(reframe(im, 2 / 3), 85),
    "rotate 7": lambda im: rotate(im, 7),
    "rotate -3 expand": lambda im: rotate(im, -3, expand=True),
    "rotate 12 inner, bicubic": lambda im: inner_rectangle(im, 12, Image.Resampling.BICUBIC),
    "flip vertical + jpeg 80": lambda im: jpeg(im.transpose(Image.Transpose.FLIP_TOP_BOTTOM), 80),
    "resize 0.7": lambda im: _scaled(im, 0.7),
    "resize 1.3": lambda im: _scaled(im, 1.3),
    "rotate 5 + crop 85 % + jpeg 85": lambda im: jpeg(crop(rotate(im, 5), 0.85), 85),
    "rotate 5 bicubic + crop 85 % + jpeg 85": lambda im: jpeg(
        crop(rotate(im, 5, resample=Image.Resampling.BICUBIC), 0.85), 85
    ),
    "crop 70 % + webp 80": lambda im: _webp(crop(im, 0.7, "top-right")),
    "squash to 16:9": lambda im: im.resize((im.width, round(im.width * 9 / 16)), Image.Resampling.BICUBIC),
    "rotate 90 + crop 80 %": lambda im: crop(im.transpose(Image.Transpose.ROTATE_90), 0.8, "top-left"),
    "rotate 15 + crop 80 % + jpeg 75": lambda im: jpeg(crop(rotate(im, 15), 0.8), 75),
    "straighten -15": lambda im: inner_rectangle(im, -15),
    "straighten 11.5 bicubic, rescaled": lambda im: inner_rectangle(im, 11.5, Image.Resampling.BICUBIC, rescale=True),
    "flip + rotate -10": lambda im: rotate(im.transpose(_FLIP), -10),
    "rotate 90 + rotate 5": lambda im: rotate(im.transpose(Image.Transpose.ROTATE_90), 5),
    "rotate 6 + resize 0.7": lambda im: _scaled(rotate(im, 6), 0.7),
    "rotate 12 expand + resize 0.6": lambda im: _scaled(rotate(im, 12, expand=True), 0.6),
    "flip + rotate -6 + resize 0.7": lambda im: _scaled(rotate(im.transpose(_FLIP), -6), 0.7),
    "rotate -7 expand, bicubic + resize 0.8": lambda im: _scaled(
        rotate(im, -7, expand=True, resample=Image.Resampling.BICUBIC), 0.8
    ),
    "flip + resize 0.7": lambda im: _scaled(im.transpose(_FLIP), 0.7),
    "flip + resize 1.2": lambda im: _scaled(im.transpose(_FLIP), 1.2),
    "rotate 90 + resize 0.8 + jpeg 80": lambda im: jpeg(_scaled(im.transpose(Image.Transpose.ROTATE_90), 0.8), 80),
    "flip vertical + resize 0.6": lambda im: _scaled(im.transpose(Image.Transpose.FLIP_TOP_BOTTOM), 0.6),
    "resize 0.37": lambda im: _scaled(im, 0.37),
    "flip + crop 70 % rescaled": lambda im: crop(im.transpose(_FLIP), 0.7, "top-left", im.size),
    "rotate 90 + crop 80 % rescaled": lambda im: crop(
        im.transpose(Image.Transpose.ROTATE_90), 0.8, "centre", im.transpose(Image.Transpose.ROTATE_90).size
    ),
    "flip + squash to 4:3": lambda im: im.transpose(_FLIP).resize(
        (im.width, round(im.width * 3 / 4)), Image.Resampling.BICUBIC
    ),
    "pillarbox into 16:9": lambda im: _fitted(im, (round(im.height * 16 / 9), im.height), (0, 0, 0)),
    "letterbox into 9:16 + jpeg 85": lambda im: jpeg(_fitted(im, (im.width, round(im.width * 16 / 9)), (255,) * 3), 85),
}


def photos(size: tuple[int, int], count: int, benchmark: bool = False) -> list[tuple[str, Image.Image]]:
    if benchmark:  # scikit-image's and COCO's photos, evenly spaced, centre-cut to the size's aspect
        found = [(n, im) for n, im in skimage_photos() + shared_photos(limit_facades=0) if "handbags" not in n]
        chosen = found[:: max(1, len(found) // count)][:count]
        return [(name, ImageOps.fit(im, size, Image.Resampling.LANCZOS)) for name, im in chosen]
    files = sorted(glob.glob(str(SHARED / "facades" / "train" / "*.jpg")))[FIRST_PHOTO : FIRST_PHOTO + count]
    out = []
    for f in files:
        with Image.open(f) as im:
            im = im.convert("RGB")
        out.append((Path(f).name, im.crop((0, 0, im.width // 2, im.height)).resize(size, Image.Resampling.LANCZOS)))
    return out


def check(args: tuple[int, Image.Image]) -> dict[str, tuple[bool, float]]:
    """(found with the right payload, seconds) of every edit of one photo."""
    import cv2

    cv2.setNumThreads(1)
    index, image = args
    payload = payload_for(max(image.size), FIRST_PHOTO + index)
    marked = embed_watermark(image, payload, KEY)
    out = {}
    for name, edit in EDITS.items():
        edited = edit(marked)
        start = time.perf_counter()
        detection = detect_watermark(edited, KEY)
        out[name] = (detection.detected and detection.payload == payload, time.perf_counter() - start)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["384x384", "640x480", "256x192"], help="WxH each")
    parser.add_argument("--photos", type=int, default=18)
    parser.add_argument(
        "--benchmark-photos", action="store_true", help="the main benchmark's photos (not its bags), not facades"
    )
    parser.add_argument("--edits", nargs="+", help="only edits whose name contains one of these")
    args = parser.parse_args(argv)
    if args.edits:
        for name in [n for n in EDITS if not any(part in n for part in args.edits)]:
            del EDITS[name]
    if not (SHARED / "facades").is_dir():
        print(f"needs {SHARED / 'facades'}")
        return 1
    for spec in args.sizes:
        size = tuple(int(v) for v in spec.split("x"))
        items = photos(size, args.photos, args.benchmark_photos)
        with Pool(2) as pool:
            results = pool.map(check, list(enumerate(image for _, image in items)))
        print(f"\n{spec}, {len(items)} photos")
        print("| edit | found | median detect ms |")
        print("|---|---|---|")
        for name in EDITS:
            found = sum(r[name][0] for r in results)
            ms = 1000 * float(np.median([r[name][1] for r in results]))
            print(f"| {name} | {found}/{len(results)} | {ms:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
