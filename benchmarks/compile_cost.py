#!/usr/bin/env python
"""Does ``training.compile`` pay off on this machine? Compile time vs steady-state speed-up of one variant.

    python benchmarks/compile_cost.py --variant pix2pix --size 128 --iters 5

Builds the variant twice (eager and with ``torch.compile`` on its generators, as the engine's
``training.compile: true`` does), in the precision and memory format ``auto`` resolves to here,
times the first step (which includes compilation) and then alternates eager/compiled steps.
Prints the break-even number of steps: compile_overhead / (eager - compiled) per step.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from train_throughput import make_batch, make_model

from transfigure.models import VARIANTS, Precision
from transfigure.runtime.device import choose_channels_last, choose_precision


def build(variant: str, size: int, compiled: bool):
    device = torch.device("cpu")
    mode = choose_precision("auto", device).mode
    cl, _ = choose_channels_last("auto", device, mode, VARIANTS[variant].channels_last_cpu)
    torch.manual_seed(0)
    model = make_model(variant, size)
    data = make_batch(model, size, 1, device)
    if cl:
        model.to(memory_format=torch.channels_last)
        data = {
            k: v.contiguous(memory_format=torch.channels_last) if v.is_floating_point() else v for k, v in data.items()
        }
    if compiled:
        for gen in model.generators().values():
            gen.compile()
    return model, data, model.configure_optimizers(), Precision(mode, device), mode + (" NHWC" if cl else "")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", default="pix2pix", choices=sorted(VARIANTS))
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--iters", type=int, default=5)
    args = p.parse_args()
    runs = {name: build(args.variant, args.size, name == "compiled") for name in ("eager", "compiled")}
    first, times = {}, {"eager": [], "compiled": []}
    for name, (model, data, opts, prec, _) in runs.items():
        t = time.perf_counter()
        model.training_step(data, opts, prec)
        first[name] = time.perf_counter() - t
    for _ in range(args.iters):
        for name, (model, data, opts, prec, _) in runs.items():
            t = time.perf_counter()
            model.training_step(data, opts, prec)
            times[name].append(time.perf_counter() - t)
    eager, comp = statistics.median(times["eager"]), statistics.median(times["compiled"])
    overhead = first["compiled"] - first["eager"]
    label = runs["eager"][4]
    print(
        f"{args.variant}@{args.size} {label}, CPU x{torch.get_num_threads()}, median of {args.iters} alternating steps"
    )
    print(f"first step: eager {first['eager']:.2f} s, compiled {first['compiled']:.2f} s (compile ~{overhead:.1f} s)")
    print(f"steady state: eager {eager:.3f} s/it, compiled {comp:.3f} s/it, speed-up {eager / comp:.2f}x")
    gain = eager - comp
    print(f"break-even after {overhead / gain:.0f} steps" if gain > 0 else "compiled is not faster: never pays off")


if __name__ == "__main__":
    main()
