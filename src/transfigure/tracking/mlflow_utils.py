"""MLflow plumbing: experiments, parameter flattening, git provenance, the training logger.

With the embedded store (:mod:`transfigure.tracking.client`) artifacts go under
``<project>/mlartifacts``; a tracking server decides where its artifacts go.
"""

from __future__ import annotations

import logging
import subprocess
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric
from PIL import Image

from transfigure.tracking.client import is_local_store, mlflow_client
from transfigure.tracking.config import resolve_tracking_uri

logger = logging.getLogger(__name__)

DEFAULT_ARTIFACTS = "mlartifacts"
#: MLflow 3's UI opens an experiment on its GenAI page unless this tag names another kind
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
#: the kind of a model-training experiment (MLflow's ``custom_model_development``)
TRAINING_EXPERIMENT_KIND = "custom_model_development"
#: MLflow keeps at most this many characters of a dataset digest
MAX_DATASET_DIGEST = 36


def configure_mlflow(
    experiment: str,
    tracking_uri: str | None = None,
    project_root: str | Path | None = None,
) -> tuple[MlflowClient, str]:
    """Point MLflow at the store and make sure ``experiment`` exists; returns (client, experiment id).

    With the embedded sqlite store, new experiments keep their artifacts in
    ``<project_root>/mlartifacts/<experiment>`` whatever the working directory. The experiment is
    marked as a training experiment (tag ``mlflow.experimentKind``; one without the tag gets it),
    so the MLflow UI opens it on its runs, not on its GenAI traces page.
    """
    uri = resolve_tracking_uri(tracking_uri, project_root)
    mlflow.set_tracking_uri(uri)
    client = mlflow_client(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            client.restore_experiment(exp.experiment_id)
        if EXPERIMENT_KIND_TAG not in exp.tags:
            client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, TRAINING_EXPERIMENT_KIND)
        return client, exp.experiment_id
    artifact_location = None
    if is_local_store(uri):
        root = Path(project_root or Path.cwd()).resolve()
        artifact_location = (root / DEFAULT_ARTIFACTS / experiment).as_uri()
    exp_id = client.create_experiment(
        experiment, artifact_location=artifact_location, tags={EXPERIMENT_KIND_TAG: TRAINING_EXPERIMENT_KIND}
    )
    logger.info("created MLflow experiment %r in %s", experiment, uri)
    return client, exp_id


def training_dataset(root: str | Path, fingerprint: str = "", name: str | None = None) -> Any:
    """The training data as an MLflow dataset: source = the data folder (its URI), digest = the
    project's content fingerprint (``dataset_fingerprint``, cut to MLflow's 36 characters), name =
    the folder's name (e.g. ``day2night``). Log it with ``mlflow.log_input(ds, context="training")``."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    text = str(root)
    uri = text if "://" in text else Path(text).resolve().as_uri()
    with warnings.catch_warnings():  # "can be interpreted in multiple ways": two equal local sources
        warnings.simplefilter("ignore", UserWarning)
        source = resolve_dataset_source(uri)
    return MetaDataset(
        source,
        name=name or data_name(root),
        digest=fingerprint[:MAX_DATASET_DIGEST] if fingerprint else None,
    )


def data_name(root: str | Path) -> str:
    """What a run says it trained on: the data folder's name (the subset's name for the default data)."""
    return Path(str(root).rstrip("/")).name or "data"


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
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
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
