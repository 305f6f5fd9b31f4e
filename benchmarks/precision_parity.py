#!/usr/bin/env python
"""Quality parity of bf16 autocast vs fp32: train each variant at equal steps, several seeds, compare held-out metrics.

    python benchmarks/precision_parity.py                                   # 4 variants, 64 px, 200 steps, 3 seeds
    python benchmarks/precision_parity.py --variants pix2pix --steps 400 --seeds 0 1 2 3
    python benchmarks/precision_parity.py --variants spade --steps 150 --threads 1   # on a shared CPU

Data (real images, ../shared/datasets, not shipped with the project):

* pix2pix: CMP facades ``facades/train`` (label map -> photo, BtoA); evaluation on the part
  of train held out by ``data.holdout_fraction`` (0.1: 40 pairs), which training never sees;
* SPADE: ``coco_stuff_mini`` (13 train / 8 val label maps + instance maps, 182 classes);
* CycleGAN, UNIT: ``edges2handbags_demo`` (8 + 8 unpaired train images, 9 + 9 test).

Each run trains through the shared :class:`~transfigure.training.Trainer` exactly as
``kedro run`` does (``training.precision`` fp32 or bf16, channels_last auto), then scores the
generators with :func:`transfigure.evaluation.evaluate.evaluate_held_out` (FID/KID on the
offline Inception, cycle L1, and L1/PSNR/SSIM where the test data is paired). Models are the
variants' architectures at reduced width (ngf/dim 32, fewer blocks) so 24 trainings fit in
about half an hour on 2 CPU cores: parity at the paper's width is not measured here.

Verdict per metric: "parity" when |mean(bf16) - mean(fp32)| <= the larger of the two
precisions' seed-to-seed spread (max - min over seeds), else "DIFFERS" (with the sign saying
which is better). A variant is at parity when all its metrics are.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

import torch

from transfigure.evaluation.data import load_held_out
from transfigure.evaluation.evaluate import EvaluationConfig, evaluate_held_out
from transfigure.inference import Translator
from transfigure.models import VARIANTS
from transfigure.pipelines.training.nodes import build_dataset, model_config
from transfigure.tracking.metric_tags import METRIC_DIRECTIONS
from transfigure.training import Trainer, TrainingConfig

DATASETS = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets"

# variant -> (dataset, data params, model params at reduced width)
SETUPS = {
    "pix2pix": (
        {"root": "facades", "format": "aligned"},
        {"direction": "BtoA"},
        {"netG": "unet", "num_downs": 6, "ngf": 32, "ndf": 32},
    ),
    "spade": (
        {"root": "coco_stuff_mini", "format": "labelmap"},
        {"label_nc": 182, "contain_dontcare_label": True, "use_instance": True},
        {"ngf": 32, "ndf": 32, "spade_hidden": 64, "num_D": 1, "n_layers_D": 3},
    ),
    "cyclegan": (
        {"root": "edges2handbags_demo", "format": "unaligned"},
        {},
        {"ngf": 32, "ndf": 32, "netG": "resnet_6blocks", "pool_size": 10},
    ),
    "unit": (
        {"root": "edges2handbags_demo", "format": "unaligned"},
        {},
        {"dim": 32, "n_res": 2, "dis_dim": 32, "dis_num_scales": 2, "dis_n_layer": 3},
    ),
}


def train_and_evaluate(variant: str, precision: str, seed: int, args: argparse.Namespace, out: Path) -> dict:
    dataset, data, model_params = SETUPS[variant]
    dataset = {**dataset, "root": str(args.datasets / dataset["root"])}
    data = {**data, "load_size": args.size + args.size // 8, "crop_size": args.size}
    config = model_config(variant, data, model_params)
    training = TrainingConfig(
        n_epochs=10_000,
        n_epochs_decay=0,
        max_steps=args.steps,
        precision=precision,
        seed=seed,
        checkpoint_every=10**6,
        sample_every=10**6,
        log_every=10**6,
        progress=False,
        device="cpu",
    )
    torch.manual_seed(seed)
    model = VARIANTS[variant](config)
    trainer = Trainer(model, build_dataset(dataset, data, "train", seed=seed), training, out)
    t = time.perf_counter()
    trainer.fit()
    seconds = time.perf_counter() - t
    generators = {d: g for d, g in model.generators().items()}
    translator = Translator(
        generators, {"variant": variant, "generators": {d: dict(g.config) for d, g in generators.items()}}, "cpu"
    )
    for g in generators.values():
        g.eval()
    held = load_held_out(dataset, data, size=args.size)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(0)
        metrics, _ = evaluate_held_out(translator, held, EvaluationConfig(), device=torch.device("cpu"))
    return {**metrics, "train_s": seconds, "_held": f"{held.split} {held.n}"}


def verdicts(rows: dict[str, dict[str, list[float]]]) -> tuple[list[str], bool]:
    lines, ok_all = [], True
    metrics = [m for m in rows["fp32"] if m != "train_s"]
    for m in metrics:
        a, b = rows["fp32"][m], rows["bf16"][m]
        spread = max(max(a) - min(a), max(b) - min(b))
        diff = statistics.mean(b) - statistics.mean(a)
        ok = abs(diff) <= spread
        ok_all &= ok
        direction = METRIC_DIRECTIONS.get(m, "min")
        better = (diff < 0) == (direction == "min")
        lines.append(
            f"  {m:<12} fp32 {statistics.mean(a):9.4f} ± {max(a) - min(a):7.4f}   bf16 {statistics.mean(b):9.4f}"
            f" ± {max(b) - min(b):7.4f}   diff {diff:+9.4f}  "
            + ("parity" if ok else f"DIFFERS (bf16 {'better' if better else 'worse'})")
        )
    return lines, ok_all


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", nargs="+", default=["pix2pix", "spade", "cyclegan", "unit"], choices=sorted(SETUPS))
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--datasets", type=Path, default=DATASETS)
    p.add_argument(
        "--precisions",
        nargs="+",
        default=["fp32", "bf16"],
        choices=["fp32", "bf16"],
        help="one of them only prints the runs, no verdict (e.g. bf16 again after a model change: fp32 is unaffected)",
    )
    p.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's); 1 on a CPU shared with other jobs"
    )
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    print(
        f"{args.size} px, {args.steps} steps, seeds {args.seeds}, batch 1, CPU x{torch.get_num_threads()};"
        " ± = max - min over seeds"
    )
    summary = {}
    for variant in args.variants:
        rows: dict[str, dict[str, list[float]]] = {p: {} for p in args.precisions}
        held = ""
        for seed in args.seeds:
            for precision in args.precisions:  # alternating, so machine load hits both alike
                with tempfile.TemporaryDirectory(prefix="parity-") as tmp:
                    r = train_and_evaluate(variant, precision, seed, args, Path(tmp))
                held = r.pop("_held")
                for k, v in r.items():
                    rows[precision].setdefault(k, []).append(float(v))
                rounded = {k: round(v, 4) for k, v in r.items()}
                print(f"# {variant} {precision} seed {seed}: {rounded}", flush=True)
        if len(rows) < 2:
            continue
        lines, ok = verdicts(rows)
        t32, t16 = statistics.mean(rows["fp32"]["train_s"]), statistics.mean(rows["bf16"]["train_s"])
        print(f"{variant}: held-out {held}; train {t32:.0f} s fp32 vs {t16:.0f} s bf16 per run", flush=True)
        print("\n".join(lines), flush=True)
        summary[variant] = ok
    if summary:
        print("verdict: " + ", ".join(f"{v} {'parity' if ok else 'DIFFERS'}" for v, ok in summary.items()))


if __name__ == "__main__":
    main()
