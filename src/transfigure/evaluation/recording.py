"""Record an evaluation in MLflow: metrics and artifacts in the training run, tags on the registered version.

* run (the run that trained the model): metrics ``eval_<key>`` at the model's training step,
  tags ``eval_split``, ``eval_split_fingerprint``, ``eval_n_images``, ``eval_image_size``,
  and artifacts ``evaluation/<split>-<fingerprint[:12]>/`` (``split.json``: the file list and
  fingerprint; ``metrics.json``; ``eval_report.png``). Tags rather than params: params are
  immutable, and a model may be re-evaluated on another split.
* registered version: ``metric.<key>`` (the value as ``repr(float)``), ``eval_split``,
  ``eval_split_fingerprint``, ``eval_n_images``, ``eval_image_size``, ``eval_protocol`` and
  ``eval_run_id`` (the promotion gate reads these); its description is rewritten to include the metrics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import pandas as pd
from mlflow.entities import Metric, RunTag

from transfigure.evaluation.evaluate import EvaluationResult, evaluate_registered
from transfigure.tracking.client import mlflow_client
from transfigure.tracking.metric_tags import METRIC_TAG_PREFIX
from transfigure.tracking.registry import describe_version

logger = logging.getLogger(__name__)


def split_tags(result: EvaluationResult) -> dict[str, str]:
    """Tags describing which data an evaluation used (same on the run and the version)."""
    return {
        "eval_split": str(result.split["split"]),
        "eval_split_fingerprint": str(result.split["fingerprint"]),
        "eval_n_images": str(int(result.split["n"])),
        "eval_image_size": str(int(result.split["size"])),
    }


def version_tags(result: EvaluationResult) -> dict[str, str]:
    """The registered version's tags: ``metric.<key>`` for every metric plus the split and protocol."""
    tags = {f"{METRIC_TAG_PREFIX}{k}": repr(float(v)) for k, v in result.metrics.items()}
    tags.update(split_tags(result))
    tags["eval_protocol"] = result.protocol
    if result.model.get("run_id"):
        tags["eval_run_id"] = str(result.model["run_id"])
    return tags


def artifact_dir(result: EvaluationResult) -> str:
    return f"evaluation/{result.split['split']}-{str(result.split['fingerprint'])[:12]}"


def record_evaluation(result: EvaluationResult, *, tracking_uri: str | None = None) -> None:
    """Log ``result`` into the model's training run and tag its registered version (when it has one)."""
    client = mlflow_client(tracking_uri)
    run_id = result.model.get("run_id")
    if run_id:
        step = int(result.model.get("step") or 0)
        ts = int(time.time() * 1000)
        client.log_batch(
            run_id,
            metrics=[Metric(f"eval_{k}", float(v), ts, step) for k, v in result.metrics.items()],
            tags=[RunTag(k, v) for k, v in split_tags(result).items()],
        )
        folder = artifact_dir(result)
        client.log_dict(run_id, result.split, f"{folder}/split.json")
        client.log_dict(run_id, result.to_metrics_json(), f"{folder}/metrics.json")
        image = result.report_image()
        if image is not None:
            client.log_image(run_id, image, artifact_file=f"{folder}/eval_report.png")
        logger.info("logged evaluation metrics and report to MLflow run %s (%s)", run_id, folder)
    else:
        logger.warning("the evaluated model has no MLflow run id: metrics are not logged to a run")
    name, version = result.model.get("name"), result.model.get("version")
    if name and version:
        for key, value in version_tags(result).items():
            client.set_model_version_tag(name, str(version), key, value)
        describe_version(client, str(name), str(version))  # the description now includes the held-out metrics
        logger.info("tagged %s version %s with its evaluation (%d tags)", name, version, len(version_tags(result)))


def champion_reevaluator(
    dataset: dict[str, Any],
    data: dict[str, Any],
    evaluation: dict[str, Any],
    *,
    tracking_uri: str | None = None,
) -> Callable[[str, str, str], dict[str, str]]:
    """The promotion gate's ``reevaluate`` (:data:`transfigure.tracking.promotion.Reevaluate`) on this data.

    It evaluates a registered version on the held-out split of ``dataset`` and records the
    evaluation only when that split is the one the gate compares on (else the version keeps
    the tags of its earlier evaluation); it returns the evaluation's version tags either way.
    """

    def reevaluate(name: str, version: str, split_fingerprint: str) -> dict[str, str]:
        result = evaluate_registered(name, version, dataset, data, evaluation, tracking_uri=tracking_uri)
        if str(result.split.get("fingerprint", "")) == split_fingerprint:
            record_evaluation(result, tracking_uri=tracking_uri)
        return version_tags(result)

    return reevaluate


def metric_history_table(
    run_id: str, keys: list[str], *, tracking_uri: str | None = None, extra: dict[str, str] | None = None
) -> pd.DataFrame:
    """One row per step of run ``run_id``: ``step`` and each metric of ``keys`` logged at it.

    ``extra`` maps more metric names to column names (e.g. ``{"fid_epoch": "epoch"}``). Steps
    where a metric was not logged hold NaN; the last value logged at a step wins.
    """
    client = mlflow_client(tracking_uri)
    columns: dict[str, dict[int, float]] = {}
    for key, column in [*((k, k) for k in keys), *(extra or {}).items()]:
        columns[column] = {
            m.step: m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))
        }
    steps = sorted({s for values in columns.values() for s in values})
    table = pd.DataFrame({"step": steps, **{c: [v.get(s) for s in steps] for c, v in columns.items()}})
    return table.astype({c: "float64" for c in columns}).astype({"step": "int64"})
