"""The ``transfigure`` command: small tools around the Kedro pipelines.

    transfigure promote cyclegan --version 3      # metric-gated promotion in the MLflow registry
    transfigure export cyclegan --version 3       # ONNX + TorchScript, numerically checked
    transfigure verify IMAGE...                   # watermark / manifest / ledger check of images
    transfigure translate cyclegan@champion photos/ -o out/   # batch translation, every output stamped

Each subcommand lives with the code it drives and exposes ``add_arguments(parser)`` and
``run(args) -> int``; this module only dispatches (and imports lazily, so ``--help`` is fast).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

import click

#: subcommand -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "promote": (
        "transfigure.tracking.promote_cli",
        "promote a registered model version (metric-gated), force it, or roll back",
    ),
    "export": ("transfigure.export", "export a registered generator to ONNX / TorchScript, checked against PyTorch"),
    "verify": ("transfigure.provenance.verify_cli", "verify the watermark, manifest and ledger record of images"),
    "translate": (
        "transfigure.tracking.translate_cli",
        "translate image files and folders with a registered or exported generator; every output stamped",
    ),
    "provenance-cert": (
        "transfigure.provenance.cert_cli",
        "create the development signing certificate (conf/local/provenance)",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="transfigure", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in SUBCOMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        sub_parser.set_defaults(_module=module)
        # arguments are added lazily below, only for the chosen subcommand
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv and argv[0] in SUBCOMMANDS:
        module = importlib.import_module(SUBCOMMANDS[argv[0]][0])
        sub_parser = argparse.ArgumentParser(prog=f"transfigure {argv[0]}", description=SUBCOMMANDS[argv[0]][1])
        module.add_arguments(sub_parser)
        args = sub_parser.parse_args(argv[1:])
        return int(module.run(args) or 0)
    parser.parse_args(argv)  # prints usage / help, exits 2 for unknown commands
    return 2


@click.group(name="transfigure")
def cli() -> None:
    """Kedro imports ``<package>.cli`` and requires a ``cli`` group in it (else every ``kedro`` command
    fails with "Cannot load commands from transfigure.cli"); it adds no commands to ``kedro``."""


if __name__ == "__main__":
    sys.exit(main())
