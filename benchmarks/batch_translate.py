#!/usr/bin/env python
"""Batch translation throughput (``translate_folder``) next to the work it cannot avoid, in one run.

    python benchmarks/batch_translate.py                       # default CycleGAN config, 12 images of 256 px, CPU
    python benchmarks/batch_translate.py --size 64 128 256 --device cuda
    python benchmarks/batch_translate.py --netG resnet_9blocks --ngf 64     # the paper's generator

The inputs are the embedded default dataset's day2night test split rendered at ``--size`` (12 images).
The generator has the project's default CycleGAN architecture (``conf/base/parameters_train_cyclegan.yml``:
resnet_6blocks, ngf 16), untrained: weights do not change the speed. Per size it prints the images/s of
a whole batch run (decode, generator, watermark, signed manifest, ledger row, atomic write, state file)
and, measured alone in the same process, the generator forward per image and ``stamp_output`` per image.
Take figures on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, nargs="+", default=[256])
    parser.add_argument("--netG", default="resnet_6blocks")
    parser.add_argument("--ngf", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="batch runs per size (median reported)")
    args = parser.parse_args()

    from transfigure.data.default_dataset import build_default_dataset
    from transfigure.data.transforms import to_tensor
    from transfigure.inference import Translator
    from transfigure.inference.batch import BatchOptions, translate_folder
    from transfigure.models import CycleGAN
    from transfigure.models.io import save_generators
    from transfigure.provenance import ModelInfo, ProvenanceConfig, stamp_output

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ.setdefault("TRANSFIGURE_LEDGER", str(root / "ledger.sqlite"))
        os.chdir(root)  # development signing key in tmp
        torch.manual_seed(0)
        model = CycleGAN(ngf=args.ngf, ndf=16, netG=args.netG)
        folder = save_generators(
            root / "generator", model.generators(), variant="cyclegan", model_config=model.config.model_dump()
        )
        translator = Translator.from_folder(folder, device=args.device)
        info = ModelInfo("cyclegan", "1", variant="cyclegan")
        config = ProvenanceConfig.from_env()
        print(f"device {translator.device}, netG {args.netG}, ngf {args.ngf}, torch threads {torch.get_num_threads()}")
        print("| size | images | batch run images/s | generator s/img | stamp s/img |")
        print("|---|---|---|---|---|")
        for size in args.size:
            data = build_default_dataset(root / f"data{size}", size=size, n_train=1, n_test=12)
            inputs = data / "day2night" / "testA"
            rates = []
            for r in range(-1, args.repeats):  # -1: warm-up (first stamp creates the development key)
                result = translate_folder(
                    translator,
                    [inputs],
                    root / f"out{size}_{r}",
                    model_info=info,
                    options=BatchOptions(batch_size=args.batch_size, progress=False),
                    config=config,
                )
                if r >= 0:
                    rates.append(result.translated / result.seconds)
            images = [Image.open(p).convert("RGB") for p in sorted(inputs.glob("*.png"))]
            x = torch.stack([to_tensor(img) for img in images])
            translator.translate_tensor(x[:1])  # warm-up
            t0 = time.perf_counter()
            for i in range(0, len(x), args.batch_size):
                translator.translate_tensor(x[i : i + args.batch_size]).cpu()
            if translator.device.type == "cuda":
                torch.cuda.synchronize()
            forward = (time.perf_counter() - t0) / len(x)
            outputs = [translator.translate(img) for img in images[:4]]
            t0 = time.perf_counter()
            for out in outputs:
                stamp_output(out, model=info, config=config)
            stamp = (time.perf_counter() - t0) / len(outputs)
            print(f"| {size} | {len(images)} | {statistics.median(rates):.2f} | {forward:.4f} | {stamp:.4f} |")


if __name__ == "__main__":
    main()
