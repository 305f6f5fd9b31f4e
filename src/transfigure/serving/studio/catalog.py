"""What the studio's Models view shows: each served model with its champion and challenger, their
metrics and training sample grids.

Gathered once per ``bentoml serve``, in its main process, right after the models are resolved
(:func:`models_summary`, called from the service's ``on_deployment`` hook), and handed to the HTTP
workers through the environment (:data:`STUDIO_ENV`), as the resolved models are: the page costs
the registry nothing per request and keeps working when the registry is unreachable later. The
sample grids (the training run's ``samples/final.png``) are downloaded once per run into the
model cache. Nothing here can stop the service: what cannot be read is left out, with a warning.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from transfigure.serving.config import model_cache_dir
from transfigure.serving.resolution import ResolvedModel, run_metrics

logger = logging.getLogger("transfigure.serving")

#: the Models view's data, JSON, set by the main process for the HTTP workers
STUDIO_ENV = "TRANSFIGURE_STUDIO_MODELS"
#: the training run's artifact with its sample grid (written by transfigure.tracking.runs)
SAMPLE_GRID_ARTIFACT = "samples/final.png"


def _grid(client: Any, run_id: str | None) -> str | None:
    """A local copy of the run's sample grid (downloaded once per run), or None when it has none."""
    if not run_id:
        return None
    target = model_cache_dir() / "studio" / run_id / Path(SAMPLE_GRID_ARTIFACT).name
    if target.is_file():
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".grid-", dir=target.parent))
    try:
        local = Path(client.download_artifacts(run_id, SAMPLE_GRID_ARTIFACT, str(staging)))
        os.replace(local, target)
        return str(target)
    except Exception as exc:  # noqa: BLE001 - a run without a grid (or an unreachable store): no picture
        logger.info("no sample grid for run %s: %s", run_id, exc)
        return None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _version_entry(client: Any, name: str, version: str, roles: list[str]) -> dict[str, Any]:
    mv = client.get_model_version(name, version)
    return {
        "version": str(version),
        "roles": roles,
        "run_id": mv.run_id,
        "created": mv.creation_timestamp,
        "description": mv.description or "",
        "metrics": run_metrics(client, mv.run_id, dict(mv.tags or {})),
        "grid": _grid(client, mv.run_id),
    }


def _registry_entry(model: ResolvedModel) -> dict[str, Any]:
    from transfigure.tracking.client import mlflow_client
    from transfigure.tracking.promotion import CHALLENGER, CHAMPION, alias_version

    client = mlflow_client(model.tracking_uri)
    roles: dict[str, list[str]] = {model.version: ["served"]}
    for alias in (CHAMPION, CHALLENGER):
        mv = alias_version(client, model.name, alias)
        if mv is not None:
            roles.setdefault(str(mv.version), []).append(alias)
    # the served version first, then the champion and the challenger where they differ
    return {"versions": [_version_entry(client, model.name, v, r) for v, r in roles.items()]}


def _entry(model: ResolvedModel) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "model": model.name,
        "ref": model.ref,
        "version": model.version,
        "variant": model.variant,
        "source": model.source,
        "versions": [
            {
                "version": model.version,
                "roles": ["served"],
                "run_id": model.run_id,
                "created": None,
                "description": "",
                "metrics": model.metrics,
                "grid": None,
            }
        ],
    }
    if model.source != "registry":
        return entry  # a bundled model: what the bundle recorded, no registry to ask
    try:
        entry.update(_registry_entry(model))
    except Exception as exc:  # noqa: BLE001 - informative only: the served version's own record stays
        logger.warning("studio: cannot read the registry record of %s: %s", model.name, exc)
    return entry


def models_summary(resolved: list[ResolvedModel]) -> list[dict[str, Any]]:
    """The Models view's data: per served model (the default first), the served, champion and challenger
    versions (one entry per version, with its ``roles``), their metrics and sample grid paths."""
    return [_entry(m) for m in resolved]


def summary_from_env() -> list[dict[str, Any]]:
    """What the main process gathered (:data:`STUDIO_ENV`); [] outside ``bentoml serve``."""
    raw = os.environ.get(STUDIO_ENV)
    return json.loads(raw) if raw else []
