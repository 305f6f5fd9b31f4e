#!/usr/bin/env python
"""Seconds per training iteration and images/s for CycleGAN, printed as a table.

    python benchmarks/train_throughput.py                      # resnet_9blocks @128 and @256, batch 1, CPU
    python benchmarks/train_throughput.py --sizes 64 128 --iters 5 --device cuda --precision bf16 --channels-last

One iteration = one full CycleGAN step (both generators, both discriminators, Adam
updates), exactly what the training engine runs. Reference: the reference PyTorch
implementation measured on this machine kind (2 CPU cores, batch 1): 3.09 s @128, 11.25 s @256.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from transfigure.models import CycleGAN, Precision

REFERENCE_CPU_S = {128: 3.09, 256: 11.25}  # reference implementation, resnet_9blocks, batch 1, this CPU kind


def bench(size: int, args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    model = CycleGAN(netG=args.netG, ngf=args.ngf, ndf=args.ngf).to(device)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    opts = model.configure_optimizers()
    precision = Precision(args.precision, device)
    g = torch.Generator().manual_seed(0)
    batch = {k: (torch.rand(args.batch, 3, size, size, generator=g) * 2 - 1).to(device) for k in ("A", "B")}
    if args.channels_last:
        batch = {k: v.contiguous(memory_format=torch.channels_last) for k, v in batch.items()}
    for _ in range(args.warmup):
        model.training_step(batch, opts, precision)
    times = []
    for _ in range(args.iters):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        model.training_step(batch, opts, precision)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    s = statistics.median(times)
    return {"size": size, "s_per_iter": s, "images_per_s": args.batch / s, "min": min(times), "max": max(times)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    p.add_argument("--netG", default="resnet_9blocks", choices=["resnet_9blocks", "resnet_6blocks"])
    p.add_argument("--ngf", type=int, default=64)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    print(f"CycleGAN {args.netG} ngf={args.ngf} batch={args.batch} device={args.device} precision={args.precision}"
          f" channels_last={args.channels_last} torch={torch.__version__} threads={torch.get_num_threads()}"
          f" cpu={platform.processor() or platform.machine()}")
    header = f"{'size':>5} | {'s/iter (median)':>15} | {'min':>7} | {'max':>7} | {'images/s':>9} | {'reference s/iter':>16} | {'speed-up':>8}"
    print(header)
    print("-" * len(header))
    for size in args.sizes:
        r = bench(size, args)
        ref = REFERENCE_CPU_S.get(size) if (args.device == "cpu" and args.netG == "resnet_9blocks" and args.ngf == 64 and args.batch == 1) else None
        ref_s = f"{ref:.2f}" if ref else "-"
        speedup = f"{ref / r['s_per_iter']:.2f}x" if ref else "-"
        print(f"{size:>5} | {r['s_per_iter']:>15.3f} | {r['min']:>7.3f} | {r['max']:>7.3f} | {r['images_per_s']:>9.2f} | "
              f"{ref_s:>16} | {speedup:>8}")


if __name__ == "__main__":
    main()
