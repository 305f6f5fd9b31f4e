"""Bundle the served models into the Bento: ``python -m transfigure.serving.bundle --build``.

Copies the generator of each model to serve (``TRANSFIGURE_MODELS``, default ``cyclegan@champion``,
resolved in the MLflow registry) into ``data/06_models/serving/<name>/`` with its registry facts
(version, run id, metrics), then (``--build``) runs ``bentoml build``, whose bentofile.yaml
includes that folder, and removes the staged copy again (``--keep`` keeps it). A Bento built this
way serves its bundled models without any registry; one built by plain ``bentoml build`` resolves
``<name>@champion`` in the registry at start-up instead.

While a bundle folder exists in the project, ``bentoml serve`` from the project root serves it too
(``TRANSFIGURE_MODEL_SOURCE=auto``); set ``TRANSFIGURE_MODEL_SOURCE=registry`` to ignore it.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from transfigure.serving.config import DEFAULT_BUNDLE_DIR, ConfigError, ModelSpec, model_specs_from_env
from transfigure.serving.resolution import (
    BUNDLE_INDEX,
    BUNDLE_META,
    ModelUnavailable,
    ResolvedModel,
    resolve_from_registry,
)

logger = logging.getLogger(__name__)


def bundle_models(specs: Sequence[ModelSpec], dest: str | Path) -> list[ResolvedModel]:
    """Resolve ``specs`` in the registry and copy each generator to ``dest/<name>/`` (replacing ``dest``)."""
    dest = Path(dest)
    resolved = [resolve_from_registry(spec) for spec in specs]
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for model in resolved:
        target = dest / model.name
        shutil.copytree(model.folder, target)
        meta = {k: v for k, v in model.to_dict().items() if k not in ("folder", "source")}
        meta["bundled_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        (target / BUNDLE_META).write_text(json.dumps(meta, indent=2, sort_keys=True))
        logger.info("bundled %s version %s into %s", model.name, model.version, target)
    (dest / BUNDLE_INDEX).write_text(json.dumps({"models": [m.name for m in resolved]}, indent=2))
    return resolved


def build_bento(project_dir: str | Path) -> str:
    """``bentoml build`` of ``project_dir`` (its bentofile.yaml); returns the Bento tag."""
    import bentoml

    project_dir = Path(project_dir).resolve()
    bento = bentoml.bentos.build_bentofile(bentofile=str(project_dir / "bentofile.yaml"), build_ctx=str(project_dir))
    return str(bento.tag)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m transfigure.serving.bundle", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models", help="comma-separated name[@alias|@version] (default: $TRANSFIGURE_MODELS or cyclegan@champion)"
    )
    parser.add_argument("--project-dir", default=".", help="the project root holding bentofile.yaml (default: .)")
    parser.add_argument("--build", action="store_true", help="run `bentoml build` after bundling")
    parser.add_argument("--keep", action="store_true", help="with --build: keep the bundle folder afterwards")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    project = Path(args.project_dir).resolve()
    dest = project / DEFAULT_BUNDLE_DIR
    try:
        if args.models:
            specs: Sequence[ModelSpec] = [ModelSpec.parse(p) for p in args.models.split(",") if p.strip()]
        else:
            specs = model_specs_from_env() or [ModelSpec("cyclegan")]
        resolved = bundle_models(specs, dest)
    except (ConfigError, ModelUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for m in resolved:
        print(f"bundled {m.name} version {m.version} (run {m.run_id}) -> {dest / m.name}")
    if args.build:
        try:
            tag = build_bento(project)
        finally:
            if not args.keep:
                shutil.rmtree(dest, ignore_errors=True)
        print(
            f"built Bento {tag}; serve it with `bentoml serve {tag}`, containerize it with `bentoml containerize {tag}`"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
