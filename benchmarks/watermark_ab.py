#!/usr/bin/env python
"""Watermark speed A/B: this tree's watermark against the one of an earlier git revision, timed
alternately on the same machine (machine speed drifts by 10-30 % between runs; a ratio taken back to
back does not), one thread.

    python benchmarks/watermark_ab.py 19326dc                 # 512 px, 7 repeats
    python benchmarks/watermark_ab.py 19326dc --size 256 --repeats 5

The revision's ``src/`` is extracted with ``git archive`` and each side runs in a worker process of its
own (``transfigure.provenance`` from its own tree: any module layout), the parent sending them the same
requests in turn. Each side detects its own mark. Three scikit-image photos; per photo and case the
median of the repeats; the table shows their means and new / old.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tarfile  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KEY = b"watermark a/b benchmark"
PHOTOS = ("astronaut", "coffee", "camera")
CASES = ("embed", "detect marked", "detect rotated +5", "detect cropped 80 %", "detect unmarked")


def worker(size: int) -> None:
    """Serve timing requests on stdin ({"case", "photo"} per line) with the ``transfigure`` on sys.path."""
    import cv2
    import skimage.data
    from PIL import Image

    from transfigure.provenance import detect_watermark, embed_watermark

    cv2.setNumThreads(1)
    images: dict[str, dict[str, Image.Image]] = {}
    for name in PHOTOS:
        photo = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
        photo = photo.resize((size, size), Image.Resampling.LANCZOS)
        marked = embed_watermark(photo, bytes(range(8)), KEY)
        w, h = marked.size
        images[name] = {
            "photo": photo,
            "marked": marked,
            "rotated": marked.rotate(5),
            "cropped": marked.crop((w // 10, h // 10, w // 10 + round(0.8 * w), h // 10 + round(0.8 * h))),
        }
    calls = {
        "embed": lambda im: embed_watermark(im["photo"], bytes(range(8)), KEY),
        "detect marked": lambda im: detect_watermark(im["marked"], KEY),
        "detect rotated +5": lambda im: detect_watermark(im["rotated"], KEY),
        "detect cropped 80 %": lambda im: detect_watermark(im["cropped"], KEY),
        "detect unmarked": lambda im: detect_watermark(im["photo"], KEY),
    }
    print("ready", flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        fn, im = calls[request["case"]], images[request["photo"]]
        t = time.perf_counter()
        result = fn(im)
        elapsed = time.perf_counter() - t
        found = getattr(result, "detected", None)
        print(json.dumps({"ms": 1000 * elapsed, "detected": found}), flush=True)


class Side:
    def __init__(self, src: Path, size: int) -> None:
        env = {**os.environ, "PYTHONPATH": str(src)}
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", "--size", str(size)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout.readline().strip() == "ready"

    def time(self, case: str, photo: str) -> dict:
        self.proc.stdin.write(json.dumps({"case": case, "photo": photo}) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rev", nargs="?", help="the git revision to compare against")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.size)
        return 0
    if not args.rev:
        parser.error("the revision to compare against is required")
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "archive", args.rev, "src"], cwd=ROOT, check=True, capture_output=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        sides = {"old": Side(Path(tmp) / "src", args.size), "new": Side(ROOT / "src", args.size)}
        times: dict[str, dict[str, list[float]]] = {}
        found: dict[str, dict[str, list[bool]]] = {}
        try:
            for case in CASES:
                for photo in PHOTOS:
                    for side in sides.values():
                        side.time(case, photo)  # warm-up: layouts, windows, plans
                    samples: dict[str, list[float]] = {tag: [] for tag in sides}
                    for _ in range(args.repeats):
                        for tag, side in sides.items():
                            reply = side.time(case, photo)
                            samples[tag].append(reply["ms"])
                            found.setdefault(case, {}).setdefault(tag, []).append(bool(reply["detected"]))
                    for tag, values in samples.items():
                        times.setdefault(case, {}).setdefault(tag, []).append(statistics.median(values))
        finally:
            for side in sides.values():
                side.close()
    print(
        f"{args.size} px, one thread, mean of {len(PHOTOS)} photos' medians ({args.repeats} repeats), "
        f"old = {args.rev}; found: share of detect calls that found the mark"
    )
    print("| case | old ms | new ms | new / old | old found | new found |")
    print("|---|---|---|---|---|---|")
    for case, by in times.items():
        o, n = float(np.mean(by["old"])), float(np.mean(by["new"]))
        hits = ("", "") if case == "embed" else tuple(f"{np.mean(found[case][t]):.2f}" for t in ("old", "new"))
        print(f"| {case} | {o:.1f} | {n:.1f} | {n / o:.2f} | {hits[0]} | {hits[1]} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
