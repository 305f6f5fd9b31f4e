"""Kedro nodes of the evaluation: choose the model, evaluate and record it, and the training curves.

Under torchrun only rank 0 evaluates and talks to MLflow; the other ranks return its outputs.
"""

from __future__ import annotations

import io
import logging
from typing import Any

import pandas as pd
from PIL import Image

from transfigure.evaluation.evaluate import (
    EvaluationConfig,
    evaluate_logged_model,
    evaluate_registered,
)
from transfigure.evaluation.recording import metric_history_table, record_evaluation
from transfigure.runtime.distributed import on_rank_zero
from transfigure.tracking.client import mlflow_client
from transfigure.tracking.config import TrackingConfig, resolve_tracking_uri
from transfigure.tracking.registry import resolve_model_uri

logger = logging.getLogger(__name__)

FID_CURVE_COLUMNS = ["epoch", "step", "fid"]


def select_model(variant: str, evaluation: dict[str, Any], tracking: dict[str, Any]) -> dict[str, Any]:
    """The registered version ``evaluation.model_version`` (a number or alias; null = the latest) of
    ``tracking.registered_model_name``, described like the train pipeline's ``registered_model``."""
    tracking_cfg = TrackingConfig.from_params(tracking)
    name = tracking_cfg.model_name_for(variant)
    ref = EvaluationConfig.from_params(evaluation).model_version
    ref = "latest" if ref in (None, "") else ref
    uri = resolve_tracking_uri(tracking_cfg.tracking_uri)
    client = mlflow_client(uri)
    model_uri, version = resolve_model_uri(client, name, ref)
    mv = client.get_model_version(name, version)
    logger.info("evaluating %s version %s (%s)", name, version, ref)
    return {
        "registered": True,
        "name": name,
        "version": str(version),
        "run_id": mv.run_id,
        "source": mv.source,
        "registered_model_uri": model_uri,
        "tracking_uri": uri,
    }


@on_rank_zero
def _evaluate(
    model: dict[str, Any],
    dataset: dict[str, Any],
    data: dict[str, Any],
    evaluation: dict[str, Any],
    tracking: dict[str, Any],
) -> tuple[dict[str, Any], bytes | None]:
    """Evaluate and record on rank 0; every rank gets (``metrics.json`` document, report PNG bytes)."""
    uri = resolve_tracking_uri(TrackingConfig.from_params(tracking).tracking_uri)
    if model.get("registered"):
        result = evaluate_registered(model["name"], model["version"], dataset, data, evaluation, tracking_uri=uri)
    else:
        result = evaluate_logged_model(
            model["source"], dataset, data, evaluation, run_id=model.get("run_id"), tracking_uri=uri
        )
    record_evaluation(result, tracking_uri=uri)
    return result.to_metrics_json(), result.report_png


def evaluate_model(
    model: dict[str, Any],
    validated_dataset: dict[str, Any],
    data: dict[str, Any],
    evaluation: dict[str, Any],
    tracking: dict[str, Any],
) -> tuple[dict[str, Any], Image.Image]:
    """Evaluate ``model`` (a ``registered_model`` document) on the held-out split of the validated dataset,
    record it in MLflow, and return (``metrics.json`` document, report image)."""
    doc, png = _evaluate(model, validated_dataset, data, evaluation, tracking)
    report = Image.open(io.BytesIO(png)).convert("RGB") if png else Image.new("RGB", (1, 1), (255, 255, 255))
    return doc, report


def training_curves(training_summary: dict[str, Any], tracking: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``plots/loss.csv`` (step + every loss) and ``plots/fid.csv`` (epoch, step, fid; empty without
    ``eval_every``), read back from the training's MLflow run, so a resumed run's curves are whole."""
    uri = resolve_tracking_uri(
        training_summary.get("tracking_uri") or TrackingConfig.from_params(tracking).tracking_uri
    )
    run_id = training_summary["run_id"]
    losses = [f"loss_{k}" for k in training_summary.get("losses", {})]
    loss = metric_history_table(run_id, losses, tracking_uri=uri)
    fid = metric_history_table(run_id, ["fid"], tracking_uri=uri, extra={"fid_epoch": "epoch"})
    fid = fid.dropna(subset=["fid"]) if len(fid) else pd.DataFrame(columns=FID_CURVE_COLUMNS)
    fid = fid.reindex(columns=FID_CURVE_COLUMNS)
    if len(fid):
        fid = fid.astype({"epoch": "int64", "step": "int64"})
    return loss, fid
