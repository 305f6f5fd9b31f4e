#!/usr/bin/env python
"""fp32 vs bf16 autocast training steps of SMALL models on CPU, alternating: why ``precision: auto``
keeps CPU runs under ``CPU_BF16_MIN_SIDE`` (128 px) in fp32.

    python benchmarks/precision_small_models.py --threads 2 --size 64 --models conf   # the default run's models
    python benchmarks/precision_small_models.py --threads 2 --size 32 --models tiny   # the tests' models

``conf``: the model section of ``conf/base/parameters_train_<variant>.yml`` (64 px, ngf 16 ...);
``tiny``: ``tests/_support.TINY_MODEL``. Steps alternate fp32, bf16, fp32, ...; medians after 2 warm-ups.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import yaml

from transfigure.models import VARIANTS, Precision

ROOT = Path(__file__).resolve().parents[1]


def model_kwargs(variant: str, models: str, size: int) -> dict:
    cls = VARIANTS[variant]
    fields = cls.config_class.model_fields
    if models == "tiny":
        sys.path.insert(0, str(ROOT / "tests"))
        from _support import TINY_MODEL

        kw = dict(TINY_MODEL[variant])
        if variant == "pix2pix":
            kw["netG"] = "unet"
    else:
        conf = yaml.safe_load((ROOT / "conf/base" / f"parameters_train_{variant}.yml").read_text())[variant]["model"]
        kw = {k: v for k, v in conf.items() if k in fields and v is not None}
    if "crop_size" in fields:
        kw["crop_size"] = size
    return kw


def batch_for(model: torch.nn.Module, size: int) -> dict:
    g = torch.Generator().manual_seed(0)
    cfg = model.config
    if hasattr(cfg, "label_nc"):
        return {
            "label": torch.randint(0, cfg.label_nc, (1, 1, size, size), generator=g),
            "instance": torch.randint(0, 20, (1, 1, size, size), generator=g).float(),
            "image": torch.rand(1, 3, size, size, generator=g) * 2 - 1,
        }
    return {
        "A": torch.rand(1, 3, size, size, generator=g) * 2 - 1,
        "B": torch.rand(1, 3, size, size, generator=g) * 2 - 1,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", nargs="+", default=["cyclegan", "pix2pix", "unit", "spade"])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--models", choices=["conf", "tiny"], default="conf")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=6)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{'variant':<9}| size | models | threads | fp32 ms | bf16 ms | bf16 speed-up")
    for variant in args.variants:
        cls = VARIANTS[variant]
        runs = {}
        for mode in ("fp32", "bf16"):
            torch.manual_seed(0)
            model = cls(cls.config_class(**model_kwargs(variant, args.models, args.size)))
            runs[mode] = (model, batch_for(model, args.size), model.configure_optimizers(), Precision(mode))
        times: dict[str, list[float]] = {"fp32": [], "bf16": []}
        for i in range(2 + args.iters):
            for mode, (model, batch, opts, prec) in runs.items():
                t = time.perf_counter()
                model.training_step(batch, opts, prec)
                if i >= 2:
                    times[mode].append(time.perf_counter() - t)
        f, b = statistics.median(times["fp32"]), statistics.median(times["bf16"])
        print(
            f"{variant:<9}| {args.size:4} | {args.models:6} | {args.threads:7} | {f * 1e3:7.1f} | {b * 1e3:7.1f} | {f / b:.2f}x"
        )


if __name__ == "__main__":
    main()
