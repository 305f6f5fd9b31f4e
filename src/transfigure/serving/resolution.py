"""Which generators the service serves and where they come from: the registry or a bundle in the Bento.

Resolution happens once per ``bentoml serve``, in its main process, before any worker starts
(:func:`resolve_models`, called from the service's ``on_deployment`` hook): each ``name@alias``
becomes a concrete version whose generator folder is downloaded once and handed to the model
workers through the environment (:data:`~transfigure.serving.config.RESOLVED_ENV`), so every worker serves the same version
even if the alias moves meanwhile. A model whose folder is bundled into the Bento
(``data/06_models/serving/<name>/``, written by :mod:`transfigure.serving.bundle`) needs no
registry at all.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from transfigure.serving.config import (
    DEFAULT_ALIAS,
    DEFAULT_MODEL,
    ModelSpec,
    ServingConfig,
    model_cache_dir,
    resolved_models_json,
)
from transfigure.tracking.metric_tags import METRIC_TAG_PREFIX

logger = logging.getLogger(__name__)

#: metadata file written next to a bundled generator
BUNDLE_META = "transfigure_model.json"
#: ordered list of the bundled models
BUNDLE_INDEX = "index.json"


class ModelUnavailable(RuntimeError):
    """A configured model cannot be found; the message says how to train and promote one."""


@dataclass
class ResolvedModel:
    """A concrete model version and the local folder holding its exported generator."""

    name: str
    ref: str
    version: str
    folder: str
    source: str  # "registry" or "bundle"
    run_id: str | None = None
    variant: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    tracking_uri: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def train_and_promote_hint(name: str) -> str:
    return (
        f"train and register a version with `kedro run --pipeline=train_{name}`, then promote it with "
        f"`transfigure promote {name} --version N` (or MlflowClient().set_registered_model_alias"
        f"({name!r}, {DEFAULT_ALIAS!r}, N)); or serve a Bento that bundles the model "
        "(python -m transfigure.serving.bundle --build)"
    )


# -- bundles ---------------------------------------------------------------------------------------
def bundled_names(bundle_dir: Path) -> list[str]:
    """Models bundled in ``bundle_dir`` (in the order they were bundled), [] when there is no bundle."""
    index = bundle_dir / BUNDLE_INDEX
    if not index.is_file():
        return []
    names = json.loads(index.read_text()).get("models", [])
    return [n for n in names if (bundle_dir / n / BUNDLE_META).is_file()]


def load_bundled(bundle_dir: Path, name: str) -> ResolvedModel:
    folder = bundle_dir / name
    meta = json.loads((folder / BUNDLE_META).read_text())
    if not (folder / "config.json").is_file():
        raise ModelUnavailable(
            f"bundled model '{name}' in {folder} has no config.json; re-run transfigure.serving.bundle"
        )
    return ResolvedModel(
        name=name,
        ref=str(meta.get("ref", DEFAULT_ALIAS)),
        version=str(meta["version"]),
        folder=str(folder.resolve()),
        source="bundle",
        run_id=meta.get("run_id"),
        variant=meta.get("variant"),
        metrics=meta.get("metrics", {}),
        tracking_uri=meta.get("tracking_uri"),
    )


# -- the registry ----------------------------------------------------------------------------------
def run_metrics(client: Any, run_id: str | None, version_tags: dict[str, str]) -> dict[str, float]:
    """Latest run metrics plus evaluation metrics tagged on the version (``metric.<key>``)."""
    metrics: dict[str, float] = {}
    if run_id:
        try:
            metrics.update(client.get_run(run_id).data.metrics)
        except Exception as exc:  # noqa: BLE001 - metrics are informative only
            logger.warning("cannot read the metrics of run %s: %s", run_id, exc)
    for key, value in version_tags.items():
        if key.startswith(METRIC_TAG_PREFIX):
            try:
                metrics[key] = float(value)
            except ValueError:
                pass
    return metrics


def resolve_from_registry(spec: ModelSpec) -> ResolvedModel:
    """Resolve ``spec`` in the MLflow registry and download its generator (once per version) into the cache."""
    from transfigure.tracking.client import mlflow_client
    from transfigure.tracking.config import resolve_tracking_uri
    from transfigure.tracking.registry import download_generator, resolve_model_uri

    uri = resolve_tracking_uri()
    client = mlflow_client(uri)
    try:
        _, version = resolve_model_uri(client, spec.name, spec.ref)
    except LookupError as exc:
        raise ModelUnavailable(
            f"{exc} (registry: {uri}). To serve '{spec.name}': {train_and_promote_hint(spec.name)}"
        ) from None
    mv = client.get_model_version(spec.name, version)
    key = hashlib.sha256(uri.encode()).hexdigest()[:12]
    target = model_cache_dir() / key / f"{spec.name}-v{version}"
    if not (target / "config.json").is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{spec.name}-", dir=target.parent))
        try:
            folder = download_generator(spec.name, version, tracking_uri=uri, dst=staging)
            try:
                os.replace(folder, target)
            except OSError:
                if not (target / "config.json").is_file():  # not a concurrent download that won
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    tags = dict(mv.tags or {})
    config = json.loads((target / "config.json").read_text())
    return ResolvedModel(
        name=spec.name,
        ref=spec.ref,
        version=str(version),
        folder=str(target),
        source="registry",
        run_id=mv.run_id,
        variant=config.get("variant"),
        metrics=run_metrics(client, mv.run_id, tags),
        tracking_uri=uri,
    )


def requested_specs(cfg: ServingConfig) -> tuple[ModelSpec, ...]:
    """The configured models; without configuration, the bundled ones (when allowed), else ``cyclegan@champion``."""
    if cfg.models:
        return cfg.models
    if cfg.model_source != "registry":
        names = bundled_names(cfg.bundle_dir)
        if names:
            return tuple(ModelSpec(n) for n in names)
    return (ModelSpec(DEFAULT_MODEL, DEFAULT_ALIAS),)


def resolve_models(cfg: ServingConfig) -> list[ResolvedModel]:
    """Resolve every configured model: its bundle when the source allows it and one exists, else the registry."""
    bundled = set(bundled_names(cfg.bundle_dir)) if cfg.model_source != "registry" else set()
    resolved = []
    for spec in requested_specs(cfg):
        if spec.name in bundled:
            model = load_bundled(cfg.bundle_dir, spec.name)
        elif cfg.model_source == "bundle":
            raise ModelUnavailable(
                f"TRANSFIGURE_MODEL_SOURCE=bundle but '{spec.name}' is not bundled in {cfg.bundle_dir.resolve()}; "
                "run python -m transfigure.serving.bundle first"
            )
        else:
            model = resolve_from_registry(spec)
        logger.info("serving %s version %s from the %s (%s)", model.name, model.version, model.source, model.folder)
        resolved.append(model)
    return resolved


def resolved_from_env() -> list[ResolvedModel] | None:
    raw = resolved_models_json()
    if not raw:
        return None
    return [ResolvedModel(**item) for item in json.loads(raw)]
