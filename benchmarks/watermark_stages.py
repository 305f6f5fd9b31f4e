#!/usr/bin/env python
"""Where watermark detection spends its time: per search family of ``sync`` and per inner stage (one
thread).

    python benchmarks/watermark_stages.py                 # 512 px: unmarked, marked, cropped 80 %, rotated +5
    python benchmarks/watermark_stages.py --size 256 --repeats 20

First each family of the search (``sync.FAMILIES``) run to its end on an unmarked photo, as every one
runs when there is no mark; then whole detections per case with their inner stages (the dense
translation screen, batched screens, reads, planes, decodes, cues, the nearest-rotation undo) wrapped
with timers (nested stages overlap: ``read`` includes ``planes``). Means per detection, after one
warm-up call; ``source`` (the clamped read) is included in the family times.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import collections  # noqa: E402
import functools  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import cv2  # noqa: E402
from PIL import Image  # noqa: E402

from transfigure.provenance.attacks import ATTACKS, crop  # noqa: E402
from transfigure.provenance.watermark import cues, embed_watermark, nearest, sync  # noqa: E402
from transfigure.provenance.watermark.layout import layout  # noqa: E402
from transfigure.provenance.watermark.planes import read_channels  # noqa: E402

#: (module, function) pairs timed as inner stages
STAGES = (
    (sync, "dense_screen"),
    (sync, "screen_geometries"),
    (sync, "refine"),
    (sync, "decode"),
    (sync.Source, "read"),
    (sync.Source, "planes"),
    (cues, "rotation_fill"),
    (cues, "upscale_factors"),
    (cues, "content_boxes"),
    (cues, "rotation_traces"),
    (cues, "nearest_rotation"),
    (nearest, "unrotate"),
)


def instrument(seconds: collections.Counter, calls: collections.Counter) -> None:
    def timed(name: str, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds[name] += time.perf_counter() - t
                calls[name] += 1

        return wrapper

    for owner, name in STAGES:  # sync calls these through its own globals or their modules
        setattr(owner, name, timed(name, getattr(owner, name)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)

    import skimage.data

    photo = Image.fromarray(skimage.data.astronaut()).resize((args.size, args.size), Image.Resampling.LANCZOS)
    key = b"watermark stage benchmark"
    marked = embed_watermark(photo, bytes(range(8)), key)
    cases = {
        "unmarked": photo,
        "marked": marked,
        "cropped 80 % (corner)": crop(marked, 0.8, "bottom-right"),
        "rotated +5 deg": ATTACKS["rotate+5"](marked),
    }
    seconds: collections.Counter = collections.Counter()
    calls: collections.Counter = collections.Counter()
    instrument(seconds, calls)
    # each family's whole cost, as on an unmarked image (where every family runs to the end)
    source = sync.Source.of(read_channels(photo))
    lay = layout(key)
    print(f"search families on an unmarked {args.size} px photo, ms each (mean of {args.repeats})")
    print("| family | ms | candidates |")
    print("|---|---|---|")
    for name, family in sync.FAMILIES:
        found = list(family(source, lay))  # warm-up
        t = time.perf_counter()
        for _ in range(args.repeats):
            source = sync.Source.of(read_channels(photo))  # no planes cached from the last run
            found = list(family(source, lay))
        print(f"| {name} | {1000 * (time.perf_counter() - t) / args.repeats:.1f} | {len(found)} |")
    for label, image in cases.items():
        sync.detect_watermark(image, key)  # warm-up: layouts, templates, undo plans
        seconds.clear()
        calls.clear()
        t = time.perf_counter()
        for _ in range(args.repeats):
            detection = sync.detect_watermark(image, key, legacy=False)
        total = (time.perf_counter() - t) / args.repeats
        print(f"\n{label}, {args.size} px: {1000 * total:.1f} ms per detection (detected: {detection.detected})")
        print("| stage | ms per detection | calls |")
        print("|---|---|---|")
        for name, s in seconds.most_common():
            print(f"| {name} | {1000 * s / args.repeats:.1f} | {calls[name] / args.repeats:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
