#!/usr/bin/env python
"""Watermark benchmark: detection rate and bit accuracy per edit, PSNR, false positives, speed, marks of the
previous release, and invisible-watermark's dwtDctSvd and rivaGan on the same edits where installed.

    python benchmarks/watermark.py                    # 256 and 512 px, every photo, 1000 clean images
    python benchmarks/watermark.py --quick            # 12 photos, 200 clean images
    python benchmarks/watermark.py --jobs 2           # robustness rows on two processes (timings stay alone)
    python benchmarks/watermark.py --rows crop rotate --sizes 512 --json results.json
    python benchmarks/watermark.py --speed-only       # timings only

Photos: scikit-image's bundled natural photos and, when present, ``../shared/datasets`` (facades,
COCO-Stuff, horse2zebra, edges2handbags), each centre-cropped to a square at the benchmark size. Every
edit of ``transfigure.provenance.attacks`` (``ATTACKS``: the first release's signal-processing table,
``GEOMETRIC``: crops, reframing, flips, rotations, combinations) is applied to every marked photo;
*detection* means the keyed check matched **and** the payload is the embedded one (FPR <= 40 x 2**-32
per image by construction); *bit accuracy* compares the best candidate's 64 decoded payload bits with
the truth (0.5 = chance). False positives: detections on unmarked photos, crops (any aspect), flips,
rotations and JPEG copies of them, and small CUFS faces.

Baselines (``pip install --no-deps invisible-watermark==0.2.0 PyWavelets``; its rivaGan ONNX models
ship inside the wheel, nothing is downloaded): dwtDctSvd with a 64-bit payload and rivaGan with its
32 bits, on ``--baseline-photos`` photos; detection at FPR <= 1e-6 means at least the number of correct
bits a random payload reaches with probability <= 1e-6 (57 of 64, 30 of 32).

Previous release's marks (``legacy-v1``, made with the module of ``--legacy-rev`` read from git): found
by the current detector's fallback on a few edits.

Timings run on one thread (``OMP_NUM_THREADS=1`` etc. before numpy loads, OpenCV on one thread) and are
medians of repeats; compare releases with ``benchmarks/watermark_ab.py``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS", "OMP_WAIT_POLICY"):
    os.environ.setdefault(_var, "PASSIVE" if _var == "OMP_WAIT_POLICY" else "1")

import argparse  # noqa: E402
import glob  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from transfigure.provenance import watermark as wm  # noqa: E402
from transfigure.provenance.attacks import ATTACKS, GEOMETRIC, TARGETS  # noqa: E402
from transfigure.provenance.keys import watermark_key_from_text  # noqa: E402

SKIMAGE_PHOTOS = (
    "astronaut",
    "camera",
    "coffee",
    "chelsea",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "moon",
    "coins",
    "grass",
    "gravel",
    "brick",
    "retina",
    "stereo_motorcycle",
    "cell",
    "clock",
    "page",
    "text",
)
ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
KEY = watermark_key_from_text("transfigure watermark benchmark")


def _ignoring_index(edit: Callable[[Image.Image], Image.Image]) -> Callable[[Image.Image, int], Image.Image]:
    return lambda image, index: edit(image)


#: every row: name -> edit(image, photo index)
ROWS: dict[str, Callable[[Image.Image, int], Image.Image]] = {
    **{name: _ignoring_index(edit) for name, edit in ATTACKS.items()},
    **GEOMETRIC,
}
#: the previous release (the last commit with the single-module watermark)
LEGACY_REV = "19326dc"
LEGACY_ROWS = ("none", "jpeg75", "resize0.5", "brightness+20", "crop90 centre")


def skimage_photos() -> list[tuple[str, Image.Image]]:
    import skimage.data

    photos = []
    for name in SKIMAGE_PHOTOS:
        arr = getattr(skimage.data, name)()
        arr = arr[0] if isinstance(arr, tuple) else arr
        photos.append((f"skimage:{name}", Image.fromarray(np.asarray(arr)).convert("RGB")))
    return photos


def shared_photos(limit_facades: int = 40) -> list[tuple[str, Image.Image]]:
    """Real photos from ../shared/datasets (photo halves of aligned pairs), if that folder exists."""
    files = sorted(glob.glob(str(SHARED / "facades" / "train" / "*.jpg")))[:limit_facades]
    files += sorted(glob.glob(str(SHARED / "coco_stuff_mini" / "*_img" / "*.jpg")))
    files += sorted(glob.glob(str(SHARED / "horse2zebra_mini" / "*" / "*.jpg")))
    files += sorted(glob.glob(str(SHARED / "edges2handbags_demo" / "*B" / "*.jpg")))
    photos = []
    for f in files:
        with Image.open(f) as im:
            im = im.convert("RGB")
        if "facades" in f:
            im = im.crop((0, 0, im.width // 2, im.height))  # left half = photo
        photos.append((f"shared:{Path(f).relative_to(SHARED)}", im))
    return photos


def square(image: Image.Image, size: int) -> Image.Image:
    w, h = image.size
    s = min(w, h)
    box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
    return image.crop(box).resize((size, size), Image.Resampling.LANCZOS)


def clean_variants(photos: list[tuple[str, Image.Image]], count: int, seed: int = 0) -> list[Image.Image]:
    """At least ``count`` unmarked images: photos and random crops (64 px up, any aspect), flipped,
    rotated, JPEG-compressed and rescaled copies, plus small CUFS faces when present."""
    rng = np.random.default_rng(seed)
    out: list[Image.Image] = []
    faces = sorted(glob.glob(str(SHARED / "cufs_sketch2face_64" / "*" / "*.jpg")))
    for f in faces[: count // 10]:
        with Image.open(f) as im:
            out.append(im.convert("RGB").crop((0, 0, 64, 64)))
    while len(out) < count:
        for _, photo in photos:
            w, h = photo.size
            cw = int(rng.integers(64, max(65, min(w, 640))))
            ch = int(np.clip(cw * rng.uniform(0.5, 2.0), 64, h))
            cw = min(cw, w)
            x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            crop = photo.crop((x, y, x + cw, y + ch))
            variant = int(rng.integers(0, 5))
            if variant == 1:
                crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            elif variant == 2:
                crop = ATTACKS["jpeg75"](crop)
            elif variant == 3:
                crop = crop.rotate(float(rng.uniform(-15, 15)))
            elif variant == 4:
                crop = crop.resize((max(64, cw // 2), max(64, ch // 2)), Image.Resampling.BICUBIC)
            out.append(crop)
            if len(out) >= count:
                break
    return out


def bits_of(payload: bytes) -> np.ndarray:
    return np.unpackbits(np.frombuffer(payload, np.uint8))


def min_correct(bits: int, fpr: float = 1e-6) -> int:
    """The fewest correct bits out of ``bits`` that a random payload reaches with probability <= fpr."""
    for k in range(bits + 1):
        if sum(math.comb(bits, i) for i in range(k, bits + 1)) / 2.0**bits <= fpr:
            return k
    return bits


def payload_for(size: int, index: int) -> bytes:
    """The random payload photo ``index`` is marked with at ``size`` (the same in every script and run)."""
    return np.random.default_rng([size, index]).bytes(8)


# --- one photo's rows (run in worker processes) ------------------------------------------------------------
def _photo_rows(job: tuple[int, str, Image.Image, int, list[str]]) -> dict:
    cv2.setNumThreads(1)
    index, name, photo, size, rows = job
    payload = payload_for(size, index)
    original = square(photo, size)
    marked = wm.embed_watermark(original, payload, KEY)
    out = {"name": name, "psnr": wm.psnr(original, marked), "rows": {}}
    for row in rows:
        det = wm.detect_watermark(ROWS[row](marked, index), KEY)
        truth = bits_of(payload)
        accuracy = float(np.mean(bits_of(det.raw_payload) == truth)) if det.raw_payload is not None else 0.5
        out["rows"][row] = (
            bool(det.detected and det.payload == payload),
            bool(det.detected and det.payload != payload),
            accuracy,
        )
    return out


def robustness(photos: list[tuple[str, Image.Image]], size: int, rows: list[str], jobs: int) -> dict:
    work = [(i, name, photo, size, rows) for i, (name, photo) in enumerate(photos)]
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            results = list(pool.map(_photo_rows, work))
    else:
        results = [_photo_rows(w) for w in work]
    table, failures = {}, []
    for row in rows:
        hits = [r["rows"][row] for r in results]
        table[row] = {
            "detection_rate": float(np.mean([h[0] for h in hits])),
            "wrong_payload": sum(h[1] for h in hits),
            "bit_accuracy": float(np.mean([h[2] for h in hits])),
        }
        failures += [f"{size}px {row}: {r['name']}" for r in results if not r["rows"][row][0]]
    psnrs = [r["psnr"] for r in results]
    return {
        "size": size,
        "images": len(photos),
        "psnr_mean": float(np.mean(psnrs)),
        "psnr_min": float(np.min(psnrs)),
        "rows": table,
        "failures": failures,
    }


def false_positives(clean: list[Image.Image]) -> dict:
    hits, p_values, times = 0, [], []
    for image in clean:
        t = time.perf_counter()
        det = wm.detect_watermark(image, KEY)
        times.append(time.perf_counter() - t)
        hits += int(det.detected)
        p_values.append(det.p_value)
    return {
        "images": len(clean),
        "detections": hits,
        "min_p_value": float(min(p_values)),
        "analytic_fpr_bound": 2 * wm.MAX_DECODES * 2.0**-32,
        "median_ms": 1000 * statistics.median(times),
    }


# --- baselines --------------------------------------------------------------------------------------------
def baselines(photos: list[tuple[str, Image.Image]], size: int, rows: list[str]) -> dict | None:
    """invisible-watermark's dwtDctSvd (64 bits) and rivaGan (32 bits) on the same rows, if installed."""
    try:
        from imwatermark import WatermarkDecoder, WatermarkEncoder
    except ImportError:
        return None
    WatermarkEncoder.loadModel()
    WatermarkDecoder.loadModel()
    out = {}
    for method, nbits in (("dwtDctSvd", 64), ("rivaGan", 32)):
        need = min_correct(nbits)
        stats = {row: [] for row in rows}
        for i, (_, photo) in enumerate(photos):
            rng = np.random.default_rng([size, i, nbits])
            payload = rng.bytes(nbits // 8)
            encoder = WatermarkEncoder()
            encoder.set_watermark("bytes", payload)
            bgr = cv2.cvtColor(np.asarray(square(photo, size)), cv2.COLOR_RGB2BGR)
            marked = Image.fromarray(cv2.cvtColor(encoder.encode(bgr, method), cv2.COLOR_BGR2RGB))
            decoder = WatermarkDecoder("bytes", nbits)
            for row in rows:
                edited = np.asarray(ROWS[row](marked, i).convert("RGB"))
                try:
                    got = decoder.decode(cv2.cvtColor(edited, cv2.COLOR_RGB2BGR), method)
                    correct = int(np.sum(bits_of(bytes(got)) == bits_of(payload)))
                except Exception:  # noqa: BLE001 (a baseline that cannot read an edited size reads nothing)
                    correct = nbits // 2
                stats[row].append(correct)
        out[method] = {
            row: {"detection_rate": float(np.mean([c >= need for c in v])), "bit_accuracy": float(np.mean(v) / nbits)}
            for row, v in stats.items()
        }
    return out


# --- marks of the previous release --------------------------------------------------------------------------
def load_revision(rev: str):
    """The single-module watermark as it was at ``rev`` (imported under another name)."""
    source = subprocess.run(
        ["git", "show", f"{rev}:src/transfigure/provenance/watermark.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "watermark_legacy_rev.py"
    path.write_text(source)
    name = f"watermark_at_{rev}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def legacy_marks(photos: list[tuple[str, Image.Image]], size: int, rev: str) -> dict | None:
    try:
        old = load_revision(rev)
    except (subprocess.CalledProcessError, FileNotFoundError):
        return None
    found = {row: [] for row in LEGACY_ROWS}
    for i, (_, photo) in enumerate(photos):
        payload = np.random.default_rng([size, i, 1]).bytes(8)
        marked = old.embed_watermark(square(photo, size), payload, KEY)
        for row in LEGACY_ROWS:
            det = wm.detect_watermark(ROWS[row](marked, i), KEY)
            found[row].append(det.detected and det.payload == payload)
    return {row: float(np.mean(v)) for row, v in found.items()}


# --- speed -----------------------------------------------------------------------------------------------
def speed(photo: Image.Image, size: int, repeats: int) -> dict:
    original = square(photo, size)
    payload = bytes(range(8))
    marked = wm.embed_watermark(original, payload, KEY)
    rotated = ATTACKS["rotate+5"](marked)
    cropped = GEOMETRIC["crop70 corner"](marked, 0)

    def timed(fn) -> float:
        fn()
        samples = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t)
        return 1000 * statistics.median(samples)

    return {
        "size": size,
        "embed_ms": timed(lambda: wm.embed_watermark(original, payload, KEY)),
        "detect_marked_ms": timed(lambda: wm.detect_watermark(marked, KEY)),
        "detect_cropped_ms": timed(lambda: wm.detect_watermark(cropped, KEY)),
        "detect_rotated_ms": timed(lambda: wm.detect_watermark(rotated, KEY)),
        "detect_clean_ms": timed(lambda: wm.detect_watermark(original, KEY)),
    }


def print_speeds(speeds: list[dict]) -> None:
    print(
        "\nSpeed, one thread (median ms): size | embed | detect marked | crop 70 % corner | rotated +5 | "
        "unmarked (worst case)"
    )
    for s in speeds:
        print(
            f"  {s['size']} | {s['embed_ms']:.1f} | {s['detect_marked_ms']:.1f} | {s['detect_cropped_ms']:.1f} | "
            f"{s['detect_rotated_ms']:.1f} | {s['detect_clean_ms']:.1f}"
        )


def print_report(
    results: list[dict], base: dict[int, dict | None], fp: dict, legacy: dict[int, dict | None], speeds: list[dict]
) -> None:
    rows = list(results[0]["rows"])
    sizes = [r["size"] for r in results]
    head = "| edit | " + " | ".join(f"{s} px det. | bits" for s in sizes) + " | target |"
    methods = [m for m in ("dwtDctSvd", "rivaGan") if any(base.get(s) for s in sizes)]
    head += "".join(f" {m} {s} px det. / bits |" for m in methods for s in sizes if base.get(s))
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for row in rows:
        target = TARGETS.get(row, 0.95)
        cells = []
        for r in results:
            rate = r["rows"][row]["detection_rate"]
            cells.append(f"{rate:.3f}{'' if rate >= target else ' *'} | {r['rows'][row]['bit_accuracy']:.3f}")
        line = f"| {row} | " + " | ".join(cells) + f" | >= {target} |"
        for m in methods:
            for s in sizes:
                if base.get(s):
                    b = base[s][m][row]
                    line += f" {b['detection_rate']:.2f} / {b['bit_accuracy']:.2f} |"
        print(line)
    print("\n(* below target)")
    for r in results:
        wrong = sum(v["wrong_payload"] for v in r["rows"].values())
        print(
            f"{r['size']} px: {r['images']} photos, PSNR mean {r['psnr_mean']:.2f} dB, min {r['psnr_min']:.2f} dB "
            f"(target >= 42); detections with a wrong payload: {wrong}"
        )
    print(
        f"\nFalse positives: {fp['detections']} of {fp['images']} clean images and edited copies "
        f"(analytic bound per image {fp['analytic_fpr_bound']:.1e}; smallest p-value seen {fp['min_p_value']:.2g}; "
        f"median detect on clean {fp['median_ms']:.0f} ms)"
    )
    for s, found in legacy.items():
        if found:
            print(
                f"Marks of the previous release ({LEGACY_REV}) at {s} px, found: "
                + ", ".join(f"{row} {v:.2f}" for row, v in found.items())
            )
    print_speeds(speeds)
    failures = [f for r in results for f in r["failures"]]
    if failures:
        print(f"\nMissed detections ({len(failures)}):")
        for f in failures:
            print("  " + f)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="12 photos, 200 clean images, 3 timing repeats")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument(
        "--clean", type=int, default=None, help="clean images for the false-positive count (default 1000)"
    )
    parser.add_argument("--rows", nargs="+", default=None, help="only rows whose name contains one of these")
    parser.add_argument("--jobs", type=int, default=1, help="processes for the robustness rows")
    parser.add_argument("--baseline-photos", type=int, default=12, help="photos for the invisible-watermark baselines")
    parser.add_argument("--legacy-rev", default=LEGACY_REV, help="revision whose marks the fallback must find")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--speed-only", action="store_true", help="only the timings (a minute)")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)  # one core, like numpy above

    photos = skimage_photos() + shared_photos()
    if args.speed_only:
        print_speeds([speed(photos[0][1], size, 10) for size in args.sizes])
        return 0
    if args.quick:
        photos = photos[:6] + photos[len(SKIMAGE_PHOTOS) : len(SKIMAGE_PHOTOS) + 6] if len(photos) > 12 else photos[:12]
    rows = [r for r in ROWS if not args.rows or any(k in r for k in args.rows)]
    clean_count = args.clean or (200 if args.quick else 1000)
    step = max(1, len(photos) // args.baseline_photos)
    print(
        f"{len(photos)} photos ({sum(n.startswith('shared:') for n, _ in photos)} from {SHARED}), sizes {args.sizes}, "
        f"{len(rows)} edits, {clean_count} clean images",
        file=sys.stderr,
    )
    results, base, legacy = [], {}, {}
    for size in args.sizes:
        t = time.perf_counter()
        results.append(robustness(photos, size, rows, args.jobs))
        print(f"  {size} px robustness: {time.perf_counter() - t:.0f} s", file=sys.stderr)
        t = time.perf_counter()
        base[size] = baselines(photos[::step][: args.baseline_photos], size, rows)
        legacy[size] = legacy_marks(photos[::step][: args.baseline_photos], size, args.legacy_rev)
        print(f"  {size} px baselines and legacy marks: {time.perf_counter() - t:.0f} s", file=sys.stderr)
    t = time.perf_counter()
    fp = false_positives(clean_variants(photos, clean_count))
    print(f"  false positives: {time.perf_counter() - t:.0f} s", file=sys.stderr)
    speeds = [speed(photos[0][1], size, 3 if args.quick else 10) for size in args.sizes]
    print_report(results, base, fp, legacy, speeds)
    if args.json:
        args.json.write_text(
            json.dumps(
                {"robustness": results, "baselines": base, "legacy": legacy, "false_positives": fp, "speed": speeds},
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
