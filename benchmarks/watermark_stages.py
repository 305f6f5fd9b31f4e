#!/usr/bin/env python
"""Where watermark detection spends its time, per search stage (one thread).

    python benchmarks/watermark_stages.py                 # 512 px: unmarked, marked, rotated +5 deg
    python benchmarks/watermark_stages.py --size 256 --repeats 20

Each stage function of ``transfigure.provenance.watermark`` is wrapped with a timer for the run, so
nested stages overlap (``evaluate`` includes ``band``, which includes ``_warp_plane``). The
numbers are means per detection, after one warm-up call.
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

from transfigure.provenance import watermark as wm  # noqa: E402
from transfigure.provenance.attacks import ATTACKS  # noqa: E402

SEARCH_STAGES = ("all_shifts", "line_searches", "refine", "evaluate", "band", "decode")
MODULE_STAGES = ("_valumetric", "_undo_nearest_rotation", "_warp_plane", "_highpass", "_resize_float",
                 "_working_residual", "_clamped_read", "_cell_band", "_shifted_cells")


def instrument() -> tuple[collections.Counter, collections.Counter]:
    """Wrap the stage functions with timers; returns (seconds, calls) counters that they add to."""
    seconds: collections.Counter = collections.Counter()
    calls: collections.Counter = collections.Counter()

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

    for name in SEARCH_STAGES:
        setattr(wm._Search, name, timed(name, getattr(wm._Search, name)))
    for name in MODULE_STAGES:
        setattr(wm, name, timed(name, getattr(wm, name)))
    return seconds, calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)

    import skimage.data

    photo = Image.fromarray(skimage.data.astronaut()).resize((args.size, args.size), Image.Resampling.LANCZOS)
    key = b"watermark stage benchmark"
    marked = wm.embed_watermark(photo, bytes(range(8)), key)
    cases = {"unmarked": photo, "marked": marked, "rotated +5 deg": ATTACKS["rotate+5"](marked)}
    seconds, calls = instrument()
    for label, image in cases.items():
        wm.detect_watermark(image, key)  # warm-up: layouts, windows, undo plans
        seconds.clear()
        calls.clear()
        t = time.perf_counter()
        for _ in range(args.repeats):
            detection = wm.detect_watermark(image, key)
        total = (time.perf_counter() - t) / args.repeats
        print(f"\n{label}, {args.size} px: {1000 * total:.1f} ms per detection (detected: {detection.detected})")
        print("| stage | ms per detection | calls |")
        print("|---|---|---|")
        for name, s in seconds.most_common():
            print(f"| {name} | {1000 * s / args.repeats:.1f} | {calls[name] / args.repeats:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
