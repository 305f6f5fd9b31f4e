#!/usr/bin/env python
"""Data loading with 0, 1 and 2 DataLoader workers: the input pipeline alone vs a whole training step.

    python benchmarks/data_loading.py                                  # CMP facades at 256 px, pix2pix paper setup
    python benchmarks/data_loading.py --data ../shared/datasets/facades --workers 0 1 2 4 --rounds 3

Per worker count, two images/s figures:

* **data only**: iterate the training engine's own DataLoader (``Trainer._loader()``: the same sampler,
  dataset, workers, seeding) without training: decode JPEG, resize to 286, random 256 crop, flip,
  to tensor, collate. The most the input pipeline can feed.
* **train step**: the same loader feeding pix2pix's full training step (unet_256 generator +
  70x70 PatchGAN, both updates, fp32, batch 1: the paper's setup) - what training actually gets.

Rounds alternate the worker counts (0, 1, 2, 0, 1, 2, ...) so that a noisy shared machine slows
every setting alike; the table shows the median over rounds and the ratio to 0 workers.
Without ``--data`` it uses the embedded default dataset (edges2photo, built offline).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from transfigure.data.config import DataConfig
from transfigure.models import VARIANTS
from transfigure.training import Trainer, TrainingConfig

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "facades"


def dataset(root: Path | None, size: int):
    if root is None:  # the embedded default dataset, built offline
        from transfigure.data.default_dataset import build_default_dataset

        base = Path(tempfile.mkdtemp()) / "default"
        build_default_dataset(base)
        root, direction = base / "edges2photo", "AtoB"
    else:
        direction = "BtoA"  # facades: label map (right half) -> photo
    cfg = DataConfig(
        load_size=round(size * 286 / 256), crop_size=size, flip=True, direction=direction, holdout_fraction=None
    )
    return cfg.make_dataset(root, "aligned", "train", seed=0)


def trainer(data, workers: int, folder: str) -> Trainer:
    cls = VARIANTS["pix2pix"]
    model = cls(cls.config_class(netG="unet_256"))
    cfg = TrainingConfig(
        batch_size=1, n_epochs=100, n_epochs_decay=0, num_workers=workers, progress=False, device="cpu"
    )
    return Trainer(model, data, cfg, folder)


def images_per_second(t: Trainer, n: int, warmup: int, step: bool) -> float:
    loader = t._loader()
    t.sampler.set_epoch(0)
    t.model.train()
    seen, start = 0, None
    for i, batch in enumerate(loader):
        if i == warmup:
            start = time.perf_counter()
        if step:
            t.model.training_step(batch, t.optimizers, t.precision)
        if i >= warmup:
            seen += batch["A"].shape[0]
        if i + 1 == warmup + n:
            break
    seconds = time.perf_counter() - start
    del loader
    return seen / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA if DEFAULT_DATA.is_dir() else None)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--data-images", type=int, default=150, help="timed images per data-only measurement")
    ap.add_argument("--train-steps", type=int, default=12, help="timed steps per train-step measurement")
    args = ap.parse_args()
    torch.manual_seed(0)
    data = dataset(args.data, args.size)
    results: dict[tuple[str, int], list[float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.rounds):
            for w in args.workers:
                t = trainer(data, w, folder)
                results.setdefault(("data", w), []).append(images_per_second(t, args.data_images, 10, step=False))
                results.setdefault(("train", w), []).append(images_per_second(t, args.train_steps, 3, step=True))
                print(f"  round done: {w} workers", flush=True)
    print(
        f"\n{args.data or 'embedded edges2photo'}: {len(data)} images, {args.size} px, pix2pix unet_256, batch 1, fp32; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; median of {args.rounds} alternating rounds\n"
    )
    base = {k: statistics.median(results[(k, args.workers[0])]) for k in ("data", "train")}
    print("| workers | data only (images/s) | vs 0 | train step (images/s) | vs 0 |")
    print("|---:|---:|---:|---:|---:|")
    for w in args.workers:
        d, s = statistics.median(results[("data", w)]), statistics.median(results[("train", w)])
        print(f"| {w} | {d:.1f} | {d / base['data']:.2f}x | {s:.2f} | {s / base['train']:.2f}x |")


if __name__ == "__main__":
    main()
