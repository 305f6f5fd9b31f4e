"""``transfigure translate MODEL INPUT... -o OUT_DIR``: batch translation from the command line.

MODEL is ``name@alias`` (``cyclegan@champion``), ``name@version`` (``cyclegan@3``), ``name@latest``
or an exported generator folder; INPUT files or folders (listed recursively, hidden files skipped).
Every output is watermarked, signed and recorded in the ledger; a re-run into the same OUT_DIR skips
what is done (see :mod:`transfigure.inference.batch`). ``--track`` also records an MLflow run.

Exit status: 0 when every input was translated (or had been before), 1 when some were refused (the
summary names each with its reason), 2 for usage errors (bad arguments, missing inputs, unknown model
or direction).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXIT_OK = 0
EXIT_SOME_REFUSED = 1
EXIT_USAGE = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="name@alias | name@version | exported generator folder")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders (recursive)")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="OUT_DIR", help="output folder")
    parser.add_argument("--direction", help="AtoB or BtoA (default: the model's first direction)")
    parser.add_argument("--format", default="png", choices=("png", "jpeg", "webp"), help="output format (png)")
    parser.add_argument("--quality", type=int, help="JPEG/WebP quality 1..100 (default 95 / 90)")
    parser.add_argument("--width", type=int, help="output width (alone: keeps each input's aspect ratio)")
    parser.add_argument("--height", type=int, help="output height (alone: keeps the aspect ratio)")
    parser.add_argument("--batch-size", type=int, default=8, help="images of one size per generator pass (8)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1 ...")
    parser.add_argument("--max-pixels", type=int, help="refuse larger inputs undecoded (default 4096x4096)")
    parser.add_argument(
        "--pair-half", choices=("left", "right"), help="inputs are A|B pairs side by side: translate this half"
    )
    parser.add_argument("--instances", metavar="DIR", help="SPADE: instance maps, matched to label maps by name")
    parser.add_argument("--style", metavar="IMAGE", help="SPADE with a style encoder: copy this image's style")
    parser.add_argument("--seed", type=int, help="SPADE with a style encoder: seed of the random style")
    parser.add_argument("--track", action="store_true", help="record an MLflow run (experiment translate-<variant>)")
    parser.add_argument("--experiment", help="MLflow experiment with --track (default translate-<variant>)")
    parser.add_argument("--run-name", help="MLflow run name with --track (default: the output folder's name)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON instead of text")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.epilog = "exit status: 0 all translated or done before, 1 some inputs refused, 2 usage error"


def _usage_error(message: str) -> int:
    print(f"transfigure translate: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def run(args: argparse.Namespace) -> int:
    from mlflow.exceptions import MlflowException
    from pydantic import ValidationError

    from transfigure.inference.batch import BatchOptions, translate_folder
    from transfigure.tracking.translation import load_generator, translate_tracked

    try:
        options = BatchOptions(
            **{
                key: value
                for key, value in {
                    "direction": args.direction,
                    "format": args.format,
                    "quality": args.quality,
                    "width": args.width,
                    "height": args.height,
                    "batch_size": args.batch_size,
                    "max_pixels": args.max_pixels,
                    "pair_half": args.pair_half,
                    "instances": args.instances,
                    "style": args.style,
                    "seed": args.seed,
                    "progress": not args.no_progress,
                }.items()
                if value is not None
            }
        )
    except ValidationError as exc:
        return _usage_error("; ".join(f"--{'-'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))
    missing = [i for i in args.inputs if not Path(i).exists()]
    if missing:
        return _usage_error(f"input(s) not found: {', '.join(missing)}")
    try:
        model = load_generator(args.model, device=args.device)
    except (ValueError, LookupError, FileNotFoundError, MlflowException, RuntimeError) as exc:
        return _usage_error(f"cannot load model {args.model!r}: {exc}")  # RuntimeError: --device cuda without CUDA
    try:
        if args.track:
            result, run_id = translate_tracked(
                model, args.inputs, args.output, options=options, experiment=args.experiment, run_name=args.run_name
            )
        else:
            result = translate_folder(
                model.translator, args.inputs, args.output, model_info=model.info, options=options
            )
            run_id = None
    except (ValueError, FileNotFoundError, NotADirectoryError) as exc:  # options the model cannot take
        return _usage_error(str(exc))
    if args.json:
        print(json.dumps({**result.summary(), "mlflow_run_id": run_id}, indent=2))
    else:
        print(result.summary_text())
        if run_id:
            print(f"MLflow run {run_id}")
    return EXIT_SOME_REFUSED if result.refused else EXIT_OK
