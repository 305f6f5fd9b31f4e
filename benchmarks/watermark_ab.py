#!/usr/bin/env python
"""Watermark speed A/B: this tree's ``watermark.py`` against the one of an earlier git revision, timed
alternately on the same machine (machine speed drifts by 10-30 % between runs; a ratio taken back to
back does not), one thread.

    python benchmarks/watermark_ab.py 2bdcb28                 # 512 px, 7 repeats
    python benchmarks/watermark_ab.py 2bdcb28 --size 256 --repeats 5

The earlier module is read with ``git show REV:src/transfigure/provenance/watermark.py`` and imported
under another name (it shares this tree's ``coding`` and ``keys`` modules). Three scikit-image
photos; per photo and case the median of the repeats; the table shows their means and new / old.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from transfigure.provenance import watermark as new  # noqa: E402
from transfigure.provenance.attacks import ATTACKS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KEY = b"watermark a/b benchmark"


def load_revision(rev: str):
    """The watermark module as it was at ``rev``, imported as ``watermark_at_<rev>``."""
    source = subprocess.run(["git", "show", f"{rev}:src/transfigure/provenance/watermark.py"], cwd=ROOT,
                            check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "watermark_old.py"
    path.write_text(source)
    name = f"watermark_at_{rev.replace('-', '_').replace('.', '_')}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rev", help="the git revision to compare against")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    old = load_revision(args.rev)
    import skimage.data

    times: dict[str, dict[str, list[float]]] = {}

    def timed(case: str, runs: dict[str, object]) -> None:
        for fn in runs.values():
            fn()  # warm-up: layouts, windows, plans
        samples: dict[str, list[float]] = {tag: [] for tag in runs}
        for _ in range(args.repeats):
            for tag, fn in runs.items():
                t = time.perf_counter()
                fn()
                samples[tag].append(time.perf_counter() - t)
        for tag, values in samples.items():
            times.setdefault(case, {}).setdefault(tag, []).append(1000 * statistics.median(values))

    for name in ("astronaut", "coffee", "camera"):
        photo = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
        photo = photo.resize((args.size, args.size), Image.Resampling.LANCZOS)
        marked = new.embed_watermark(photo, bytes(range(8)), KEY)
        rotated = ATTACKS["rotate+5"](marked)
        timed("embed", {m: (lambda mod=mod: mod.embed_watermark(photo, bytes(range(8)), KEY))
                        for m, mod in (("old", old), ("new", new))})
        for case, image in (("detect marked", marked), ("detect rotated +5", rotated), ("detect unmarked", photo)):
            timed(case, {m: (lambda mod=mod, image=image: mod.detect_watermark(image, KEY))
                         for m, mod in (("old", old), ("new", new))})
    print(f"{args.size} px, one thread, mean of 3 photos' medians ({args.repeats} repeats), old = {args.rev}")
    print("| case | old ms | new ms | new / old |")
    print("|---|---|---|---|")
    for case, by in times.items():
        o, n = float(np.mean(by["old"])), float(np.mean(by["new"]))
        print(f"| {case} | {o:.1f} | {n:.1f} | {n / o:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
