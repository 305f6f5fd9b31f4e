#!/usr/bin/env python
"""Training speed of every variant, printed as a table: seconds per iteration, images/s, FLOPs, MFU.

    python benchmarks/train_throughput.py                                   # fp32 vs the auto default, all variants, 128 & 256 px
    python benchmarks/train_throughput.py --precision fp32 bf16             # one row per precision (no A/B)
    python benchmarks/train_throughput.py --variants cyclegan --sizes 128 256
    python benchmarks/train_throughput.py --iters 3 --threads 2 --markdown  # the README's fp32 vs auto table
    python benchmarks/train_throughput.py --device cuda --precision fp32 bf16 --batches 1 16 --channels-last --compile

One iteration is one full training step of the variant (every generator and
discriminator update, optimizer steps included), exactly what the shared engine runs.
Models use each variant's paper configuration (the config classes' defaults): CycleGAN
resnet_9blocks ngf 64; Pix2Pix unet_256 (unet_128 below 256 px) ngf 64; UNIT dim 64;
SPADE ngf 64 on 182 COCO-Stuff classes (+ don't care, + instance edges).

Without --precision it compares, per variant and size, fp32 (contiguous: what ``auto`` meant on
CPUs before) with the ``auto`` default this machine resolves to (``training.precision: auto`` and
``channels_last: auto``: bf16 + NHWC where measured faster), alternating the two steps so a busy
machine slows both alike; the ratio is fp32 s/it over auto s/it.

FLOPs are counted once per configuration with torch.utils.flop_counter (forward and
backward); MFU = achieved FLOP/s / the device's dense bf16 peak (--peak-tflops, or a
table for known GPUs). Reference (reference implementation, this machine kind, 2 CPU cores,
batch 1, fp32): CycleGAN 3.09 s @128, 11.25 s @256; pix2pix unet_256 0.76 s @256.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from transfigure.models import VARIANTS, Precision
from transfigure.runtime.device import choose_channels_last, choose_precision

REFERENCE_CPU_S = {("cyclegan", 128): 3.09, ("cyclegan", 256): 11.25, ("pix2pix", 256): 0.76}
#: the README's names of the paper configurations that make_model builds
LABELS = {
    "cyclegan": lambda size: "CycleGAN resnet_9blocks",
    "pix2pix": lambda size: "Pix2Pix unet_256" if size >= 256 else "Pix2Pix unet_128",
    "unit": lambda size: "UNIT dim 64",
    "spade": lambda size: "SPADE COCO-Stuff",
}
PEAK_BF16_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0, "L4": 121.0, "A10": 125.0}


def make_model(variant: str, size: int) -> torch.nn.Module:
    cls = VARIANTS[variant]
    fields = cls.config_class.model_fields
    kw: dict = {}
    if variant == "pix2pix":
        kw["netG"] = "unet_256" if size >= 256 else "unet_128"
    if "crop_size" in fields:
        kw["crop_size"] = size
    return cls(cls.config_class(**kw))


def make_batch(model: torch.nn.Module, size: int, batch: int, device: torch.device) -> dict:
    cfg = model.config
    g = torch.Generator().manual_seed(0)
    if hasattr(cfg, "label_nc"):
        return {
            "label": torch.randint(0, cfg.label_nc, (batch, 1, size, size), generator=g).to(device),
            "instance": torch.randint(0, 20, (batch, 1, size, size), generator=g).float().to(device),
            "image": (torch.rand(batch, getattr(cfg, "output_nc", 3), size, size, generator=g) * 2 - 1).to(device),
        }
    return {
        "A": (torch.rand(batch, getattr(cfg, "input_nc", 3), size, size, generator=g) * 2 - 1).to(device),
        "B": (torch.rand(batch, getattr(cfg, "output_nc", 3), size, size, generator=g) * 2 - 1).to(device),
    }


def load_average() -> str:
    """The 1/5/15-minute load averages: other jobs on the cores skew CPU timings, bf16's most."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def peak_tflops(device: torch.device, override: float | None) -> float | None:
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def count_flops(variant: str, size: int, batch: int) -> float:
    """FLOPs of one training step (CPU, fp32; the count does not depend on device or precision)."""
    model = make_model(variant, size)
    opts = model.configure_optimizers()
    with FlopCounterMode(display=False) as counter:
        model.training_step(make_batch(model, size, batch, torch.device("cpu")), opts, Precision("fp32"))
    return float(counter.get_total_flops())


def setup(variant: str, size: int, batch: int, precision: str, channels_last: bool, args: argparse.Namespace):
    """A model, its batch, optimizers and Precision, ready for ``model.training_step``."""
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = make_model(variant, size).to(device)
    batch_data = make_batch(model, size, batch, device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
        batch_data = {
            k: v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 and v.is_floating_point() else v
            for k, v in batch_data.items()
        }
    if args.compile:
        for gen in model.generators().values():
            gen.compile()
    return model, batch_data, model.configure_optimizers(), Precision(precision, device)


def compare(variant: str, size: int, args: argparse.Namespace) -> dict:
    """fp32 vs the auto default, alternating (fp32, auto, fp32, auto ...); medians of ``args.iters`` each."""
    device = torch.device(args.device)
    mode = choose_precision("auto", device, image_side=size).mode  # what a run at this crop size resolves to
    cl, _ = choose_channels_last("auto", device, mode, VARIANTS[variant].channels_last_cpu)
    runs = {"fp32": setup(variant, size, 1, "fp32", False, args), "auto": setup(variant, size, 1, mode, cl, args)}
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times: dict[str, list[float]] = {"fp32": [], "auto": []}
    for i in range(args.warmup + args.iters):
        for name, (model, data, opts, prec) in runs.items():
            sync()
            t = time.perf_counter()
            model.training_step(data, opts, prec)
            sync()
            if i >= args.warmup:
                times[name].append(time.perf_counter() - t)
    return {
        "fp32": statistics.median(times["fp32"]),
        "auto": statistics.median(times["auto"]),
        "auto_label": mode + (" NHWC" if cl else ""),
    }


def print_comparison(args: argparse.Namespace) -> None:
    if args.markdown:
        header = "| variant | size | auto resolves to | fp32 s/it | auto s/it | speed-up | reference s/it | auto vs reference |"
        print(header)
        print("|---" * (header.count("|") - 1) + "|")
    else:
        header = (
            f"{'variant':<9}| {'size':>4} | {'fp32 s/it':>9} | {'auto':<10} | {'auto s/it':>9} | {'speed-up':>8} |"
            f" {'ref s/it':>8} | {'auto vs ref':>11}"
        )
        print(header)
        print("-" * len(header))
    for variant in args.variants:
        for size in args.sizes:
            r = compare(variant, size, args)
            ref = REFERENCE_CPU_S.get((variant, size)) if args.device == "cpu" else None
            ref_s, vs_ref = (f"{ref:.2f}", f"{ref / r['auto']:.2f}x") if ref else ("-", "-")
            if args.markdown:
                label = r["auto_label"].replace(" NHWC", " + NHWC")
                print(
                    f"| {LABELS[variant](size)} | {size} | {label} | {r['fp32']:.2f} | {r['auto']:.2f} |"
                    f" {r['fp32'] / r['auto']:.2f}x | {ref_s} | {vs_ref} |",
                    flush=True,
                )
                continue
            print(
                f"{variant:<9}| {size:>4} | {r['fp32']:>9.3f} | {r['auto_label']:<10} | {r['auto']:>9.3f} |"
                f" {r['fp32'] / r['auto']:>7.2f}x | {ref_s:>8} | {vs_ref:>11}",
                flush=True,
            )


def bench(variant: str, size: int, batch: int, precision: str, args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    model, batch_data, opts, prec = setup(variant, size, batch, precision, args.channels_last, args)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(args.warmup):
        model.training_step(batch_data, opts, prec)
    times = []
    for _ in range(args.iters):
        sync()
        t = time.perf_counter()
        model.training_step(batch_data, opts, prec)
        sync()
        times.append(time.perf_counter() - t)
    mem = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return {"s": statistics.median(times), "mem": mem}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", nargs="+", default=sorted(VARIANTS), choices=sorted(VARIANTS))
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    p.add_argument("--batches", type=int, nargs="+", default=[1])
    p.add_argument(
        "--precision",
        nargs="+",
        default=None,
        choices=["fp32", "bf16", "fp16"],
        help="one row per precision; default: fp32 vs the auto default side by side (batch 1)",
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true", help="torch.compile the generators")
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--markdown", action="store_true", help="the fp32 vs auto table as README markdown rows")
    p.add_argument("--peak-tflops", type=float, default=None, help="device peak for MFU (default: known GPUs' bf16)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    peak = peak_tflops(device, args.peak_tflops)
    dev_name = (
        torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU x{torch.get_num_threads()} threads"
    )
    print(
        f"device={dev_name} torch={torch.__version__} channels_last={args.channels_last} compile={args.compile} "
        f"iters={args.iters} (median) warmup={args.warmup} peak={peak or '-'} TFLOP/s"
    )
    if args.precision is None:
        auto = choose_precision("auto", device)
        print(f"auto resolves to {auto.mode} ({auto.reason}; per size in the table); alternating fp32/auto steps")
        print(f"load average before: {load_average()} ({os.cpu_count()} cores): compare only runs on an idle machine")
        print_comparison(args)
        print(f"load average after: {load_average()}")
        return
    header = (
        f"{'variant':<9}| {'size':>4} | {'batch':>5} | {'prec':<4} | {'s/iter':>8} | {'img/s':>8} | {'GFLOP/it':>9} |"
        f" {'TFLOP/s':>8} | {'MFU':>6} | {'mem GiB':>7} | {'ref s/iter':>10} | {'vs ref':>6}"
    )
    print(header)
    print("-" * len(header))
    for variant in args.variants:
        for size in args.sizes:
            for batch in args.batches:
                flops = count_flops(variant, size, batch)
                for precision in args.precision:
                    with contextlib.suppress(torch.OutOfMemoryError):
                        r = bench(variant, size, batch, precision, args)
                        tflops = flops / r["s"] / 1e12
                        ref = REFERENCE_CPU_S.get((variant, size)) if device.type == "cpu" and batch == 1 else None
                        mfu = f"{100 * tflops / peak:.1f}%" if peak else "-"
                        mem = f"{r['mem']:.1f}" if r["mem"] is not None else "-"
                        ref_s = f"{ref:.2f}" if ref else "-"
                        vs_ref = f"{ref / r['s']:.2f}x" if ref else "-"
                        print(
                            f"{variant:<9}| {size:>4} | {batch:>5} | {precision:<4} | {r['s']:>8.3f} | {batch / r['s']:>8.2f} |"
                            f" {flops / 1e9:>9.1f} | {tflops:>8.3f} | {mfu:>6} | {mem:>7} |"
                            f" {ref_s:>10} | {vs_ref:>6}",
                            flush=True,
                        )


if __name__ == "__main__":
    main()
