"""MLflow plumbing: where runs go, experiments, parameter flattening, git provenance, the logger.

Default store: ``sqlite:///<project>/mlruns.db`` with artifacts under ``<project>/mlartifacts``
(MLflow 3's ``./mlruns`` file store is in maintenance mode). ``MLFLOW_TRACKING_URI`` overrides it,
e.g. ``http://127.0.0.1:5000`` for a tracking server, which then decides where artifacts go.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PIL import Image

from transfigure._env import disable_telemetry

disable_telemetry()

import mlflow  # noqa: E402  (telemetry must be off before mlflow is imported)
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Metric  # noqa: E402

logger = logging.getLogger(__name__)

DEFAULT_DB = "mlruns.db"
DEFAULT_ARTIFACTS = "mlartifacts"


def resolve_tracking_uri(configured: str | None = None, project_root: str | Path | None = None) -> str:
    """``$MLFLOW_TRACKING_URI`` > the configured URI > ``sqlite:///<project_root>/mlruns.db``."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    if configured:
        return configured
    root = Path(project_root or Path.cwd()).resolve()
    return f"sqlite:///{root / DEFAULT_DB}"


def resolve_registry_uri(tracking_uri: str) -> str:
    """The model registry: ``$MLFLOW_REGISTRY_URI`` when the user set one, else the tracking store.

    transfigure never calls ``mlflow.set_registry_uri``: MLflow stores that value in
    ``os.environ``, where it outlives the call and leaks into child processes (a later run
    with another tracking store would register its models in the old one).
    """
    return os.environ.get("MLFLOW_REGISTRY_URI") or tracking_uri


def is_local_store(uri: str) -> bool:
    return uri.startswith("sqlite:") or uri.startswith("file:") or "://" not in uri


def configure_mlflow(
    experiment: str,
    tracking_uri: str | None = None,
    project_root: str | Path | None = None,
) -> tuple[MlflowClient, str]:
    """Point MLflow at the store and make sure ``experiment`` exists; returns (client, experiment id).

    With the embedded sqlite store, new experiments keep their artifacts in
    ``<project_root>/mlartifacts/<experiment>`` whatever the working directory.
    """
    uri = resolve_tracking_uri(tracking_uri, project_root)
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=resolve_registry_uri(uri))
    exp = client.get_experiment_by_name(experiment)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            client.restore_experiment(exp.experiment_id)
        return client, exp.experiment_id
    artifact_location = None
    if is_local_store(uri):
        root = Path(project_root or Path.cwd()).resolve()
        artifact_location = (root / DEFAULT_ARTIFACTS / experiment).as_uri()
    exp_id = client.create_experiment(experiment, artifact_location=artifact_location)
    logger.info("created MLflow experiment %r in %s", experiment, uri)
    return client, exp_id


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"model": {"ngf": 64}}`` -> ``{"model.ngf": "64"}`` (MLflow params are flat strings)."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, f"{name}."))
        else:
            flat[name] = str(value)[:6000]
    return flat


def git_info(root: str | Path | None = None) -> dict[str, str]:
    """Commit and dirty flag of the git checkout at ``root`` (empty dict outside git)."""
    cwd = str(root or Path.cwd())
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd, capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"mlflow.source.git.commit": commit, "git_commit": commit, "git_dirty": str(bool(dirty)).lower()}


class MlflowTrainingLogger:
    """The training engine's :class:`~transfigure.training.TrainingLogger` backed by one MLflow run."""

    def __init__(self, client: MlflowClient, run_id: str) -> None:
        self.client = client
        self.run_id = run_id

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        import time

        ts = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), ts, step) for k, v in metrics.items()])

    def log_image(self, image: Image.Image, name: str, step: int) -> None:
        # step-indexed images show as a slider in the MLflow UI; the file keeps the grid as a plain artifact too
        self.client.log_image(self.run_id, image, key="samples", step=step)
        self.client.log_image(self.run_id, image, artifact_file=name)
