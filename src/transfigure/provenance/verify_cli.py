"""``transfigure verify IMAGE...``: one JSON report per image on stdout (JSON Lines).

Exit status: 0 when transfigure provenance (watermark or valid manifest) was found in every
image, 1 when some image has none, 2 when some input could not be read as an image (not an image,
truncated, empty, too many pixels, missing file); each such input still gets a JSON line
(``{"source", "error"}``) and a one-line message on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from transfigure.data.rules import MAX_PIXELS

EXIT_ALL_FOUND = 0
EXIT_SOME_NOT_FOUND = 1
EXIT_BAD_INPUT = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="image files to verify")
    parser.add_argument(
        "--ledger",
        default=None,
        help="the ledger: a sqlite file or a PostgreSQL URL (default: $TRANSFIGURE_LEDGER or data/provenance/ledger.sqlite)",
    )
    parser.add_argument(
        "--max-pixels", type=int, default=None, help=f"refuse images with more pixels (default {MAX_PIXELS:,})"
    )
    parser.add_argument("--pretty", action="store_true", help="indented JSON instead of one line per image")
    parser.epilog = "exit status: 0 all found, 1 some without transfigure provenance, 2 some inputs unreadable"


def run(args: argparse.Namespace) -> int:
    from transfigure.provenance.config import ProvenanceConfig
    from transfigure.provenance.ledger import is_database_url
    from transfigure.provenance.verify import ImageInputError, verify_image_bytes

    config = ProvenanceConfig.from_env()
    if args.ledger is not None:
        config = replace(config, ledger_path=args.ledger if is_database_url(args.ledger) else Path(args.ledger))
    if args.max_pixels is not None:
        config = replace(config, max_pixels=args.max_pixels)
    status = EXIT_ALL_FOUND
    for path in args.images:
        try:
            report = verify_image_bytes(path.read_bytes(), config=config, source=str(path))
        except (ImageInputError, OSError) as exc:
            reason = exc.reason if isinstance(exc, ImageInputError) else (exc.strerror or str(exc))
            print(f"transfigure verify: {path}: {reason}", file=sys.stderr)
            _emit({"source": str(path), "error": reason}, args.pretty)
            status = EXIT_BAD_INPUT
            continue
        _emit(report, args.pretty)
        if not report["found"] and status == EXIT_ALL_FOUND:
            status = EXIT_SOME_NOT_FOUND
    return status


def _emit(doc: dict, pretty: bool) -> None:
    print(json.dumps(doc, indent=2 if pretty else None, sort_keys=False, default=str), flush=True)
