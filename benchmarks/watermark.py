#!/usr/bin/env python
"""Watermark benchmark: PSNR, detection rate and bit accuracy per attack, false positives, speed.

    python benchmarks/watermark.py                    # 256 and 512 px, every photo, >= 1000 clean images
    python benchmarks/watermark.py --quick            # 12 photos, 200 clean images (a few minutes)
    python benchmarks/watermark.py --sizes 512 --clean 2000 --json results.json
    python benchmarks/watermark.py --speed-only       # timings only

Photos: scikit-image's bundled natural photos and, when present, ``../shared/datasets`` (facades,
COCO-Stuff, horse2zebra, edges2handbags, CUFS faces); each is centre-cropped to a square and
resized to the benchmark size. Every attack of issue 6 (``transfigure.provenance.attacks``) is
applied to every marked photo; *detection* means the keyed check matched **and** the payload is
the embedded one; *bit accuracy* compares the best candidate's 64 decoded payload bits with the
truth (0.5 = chance). False positives: detections on clean photos and crops, flips, rotations,
JPEG copies and small images of them (different sizes and aspect ratios). Timings run on one
thread (``OMP_NUM_THREADS=1`` etc. are set before numpy loads, OpenCV is set to one thread) and are
medians of repeats.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import glob  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from transfigure.provenance import watermark as wm  # noqa: E402
from transfigure.provenance.attacks import ATTACKS  # noqa: E402
from transfigure.provenance.keys import watermark_key_from_text  # noqa: E402

SKIMAGE_PHOTOS = ("astronaut", "camera", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field",
                  "moon", "coins", "grass", "gravel", "brick", "retina", "stereo_motorcycle", "cell", "clock", "page", "text")
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
TARGETS = {"jpeg50": 0.9}  # every other attack: 0.99
KEY = watermark_key_from_text("transfigure watermark benchmark")


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
    """At least ``count`` unmarked images: resized photos and random crops (64 px up, any aspect),
    flipped, rotated, JPEG-compressed and rescaled copies, plus small CUFS faces when present."""
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
                crop = crop.rotate(float(rng.uniform(-8, 8)))
            elif variant == 4:
                crop = crop.resize((max(64, cw // 2), max(64, ch // 2)), Image.Resampling.BICUBIC)
            out.append(crop)
            if len(out) >= count:
                break
    return out


def bit_accuracy(detection: wm.Detection, payload: bytes) -> float:
    if detection.raw_payload is None:
        return 0.5
    a = np.unpackbits(np.frombuffer(detection.raw_payload, np.uint8))
    b = np.unpackbits(np.frombuffer(payload, np.uint8))
    return float(np.mean(a == b))


def robustness(photos: list[tuple[str, Image.Image]], size: int, attacks: list[str], seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    rows = {a: {"detected": 0, "wrong_payload": 0, "bit_accuracy": []} for a in attacks}
    psnrs, failures = [], []
    for name, photo in photos:
        original = square(photo, size)
        payload = rng.bytes(8)
        marked = wm.embed_watermark(original, payload, KEY)
        psnrs.append(wm.psnr(original, marked))
        for attack in attacks:
            det = wm.detect_watermark(ATTACKS[attack](marked), KEY)
            row = rows[attack]
            row["detected"] += int(det.detected and det.payload == payload)
            row["wrong_payload"] += int(det.detected and det.payload != payload)
            row["bit_accuracy"].append(bit_accuracy(det, payload))
            if not (det.detected and det.payload == payload):
                failures.append(f"{size}px {attack}: {name} (pilot score {det.pilot_score:.2f}, check bits {det.check_bits_matched}/32)")
    n = len(photos)
    table = {a: {"detection_rate": r["detected"] / n, "bit_accuracy": float(np.mean(r["bit_accuracy"])),
                 "wrong_payload": r["wrong_payload"]} for a, r in rows.items()}
    return {"size": size, "images": n, "psnr_mean": float(np.mean(psnrs)), "psnr_min": float(np.min(psnrs)),
            "attacks": table, "failures": failures}


def false_positives(clean: list[Image.Image]) -> dict:
    hits, p_values, times = 0, [], []
    for image in clean:
        t = time.perf_counter()
        det = wm.detect_watermark(image, KEY)
        times.append(time.perf_counter() - t)
        hits += int(det.detected)
        p_values.append(det.p_value)
    bound = wm.MAX_DECODES * 2.0**-32
    return {"images": len(clean), "detections": hits, "min_p_value": float(min(p_values)),
            "analytic_fpr_bound": bound, "median_ms": 1000 * statistics.median(times)}


def speed(photo: Image.Image, size: int, repeats: int) -> dict:
    original = square(photo, size)
    payload = bytes(range(8))
    marked = wm.embed_watermark(original, payload, KEY)

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
        "detect_rotated_ms": timed(lambda: wm.detect_watermark(ATTACKS["rotate+5"](marked), KEY)),
        "detect_clean_ms": timed(lambda: wm.detect_watermark(original, KEY)),
    }


def print_speeds(speeds: list[dict]) -> None:
    print("\nSpeed, one thread (median ms): size | embed | detect marked | detect rotated +5 | detect clean (worst case)")
    for s in speeds:
        print(f"  {s['size']} | {s['embed_ms']:.1f} | {s['detect_marked_ms']:.1f} | {s['detect_rotated_ms']:.1f} | {s['detect_clean_ms']:.1f}")


def print_report(results: list[dict], fp: dict, speeds: list[dict]) -> None:
    attacks = list(results[0]["attacks"])
    head = "| attack | " + " | ".join(f"{r['size']} px detection | {r['size']} px bit acc." for r in results) + " | target |"
    print(head)
    print("|" + "---|" * (2 + 2 * len(results)))
    for a in attacks:
        cells = " | ".join(f"{r['attacks'][a]['detection_rate']:.3f} | {r['attacks'][a]['bit_accuracy']:.4f}" for r in results)
        print(f"| {a} | {cells} | >= {TARGETS.get(a, 0.99)} |")
    for r in results:
        wrong = sum(v["wrong_payload"] for v in r["attacks"].values())
        print(f"\n{r['size']} px: {r['images']} photos, PSNR mean {r['psnr_mean']:.2f} dB, min {r['psnr_min']:.2f} dB "
              f"(target >= 42); detections with a wrong payload: {wrong}")
    print(f"\nFalse positives: {fp['detections']} of {fp['images']} clean images and crops "
          f"(analytic bound per image {fp['analytic_fpr_bound']:.1e}; smallest p-value seen {fp['min_p_value']:.2g}; "
          f"median detect on clean {fp['median_ms']:.0f} ms)")
    print_speeds(speeds)
    failures = [f for r in results for f in r["failures"]]
    if failures:
        print("\nMissed detections:")
        for f in failures:
            print("  " + f)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="12 photos, 200 clean images, 3 timing repeats")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--clean", type=int, default=None, help="clean images for the false-positive count (default 1000)")
    parser.add_argument("--attacks", nargs="+", default=list(ATTACKS), choices=list(ATTACKS))
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--speed-only", action="store_true", help="only the timings (a minute)")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)  # one core, like numpy above

    photos = skimage_photos() + shared_photos()
    if args.speed_only:
        print_speeds([speed(photos[0][1], size, 10) for size in args.sizes])
        return 0
    if args.quick:
        photos = photos[:6] + photos[len(SKIMAGE_PHOTOS):len(SKIMAGE_PHOTOS) + 6] if len(photos) > 12 else photos[:12]
    clean_count = args.clean or (200 if args.quick else 1000)
    print(f"{len(photos)} photos ({sum(n.startswith('shared:') for n, _ in photos)} from {SHARED}), sizes {args.sizes}, "
          f"{clean_count} clean images", file=sys.stderr)
    results = []
    for size in args.sizes:
        t = time.perf_counter()
        results.append(robustness(photos, size, args.attacks))
        print(f"  {size} px robustness: {time.perf_counter() - t:.0f} s", file=sys.stderr)
    t = time.perf_counter()
    fp = false_positives(clean_variants(photos, clean_count))
    print(f"  false positives: {time.perf_counter() - t:.0f} s", file=sys.stderr)
    speeds = [speed(photos[0][1], size, 3 if args.quick else 10) for size in args.sizes]
    print_report(results, fp, speeds)
    if args.json:
        args.json.write_text(json.dumps({"robustness": results, "false_positives": fp, "speed": speeds}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
