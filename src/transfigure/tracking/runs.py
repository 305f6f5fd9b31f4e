"""Run the shared training engine inside an MLflow run, export and log the generators.

Variant-agnostic: every ``train_<variant>`` pipeline calls :func:`run_tracked_training`.
A resumed training (``training.resume: true``) continues the MLflow run whose id the
checkpoint recorded, so one model's history stays in one run.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mlflow
from torch.utils.data import Dataset

from transfigure.data.grid import visuals_grid
from transfigure.models.base import TranslationModel
from transfigure.models.io import copy_with_metadata, save_generators
from transfigure.runtime.distributed import broadcast_object, init_distributed
from transfigure.tracking.config import TrackingConfig, resolve_tracking_uri
from transfigure.tracking.dvc_info import dvc_tags
from transfigure.tracking.mlflow_utils import (
    MlflowTrainingLogger,
    configure_mlflow,
    data_name,
    flatten_params,
    git_info,
    training_dataset,
)
from transfigure.tracking.registry import (
    GENERATOR_ARTIFACT,
    log_generator_model,
    register_generator,
    version_description,
)
from transfigure.training import EpochCallback, Trainer, TrainingConfig

logger = logging.getLogger(__name__)


def run_tracked_training(
    *,
    model: TranslationModel,
    dataset: Dataset,
    training: TrainingConfig,
    output_dir: str | Path,
    tracking: TrackingConfig | dict[str, Any],
    params: dict[str, Any],
    validation_report: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
    callbacks: Sequence[EpochCallback] = (),
) -> dict[str, Any]:
    """Train ``model``, logging everything to MLflow; returns a JSON-able training summary.

    ``callbacks`` run every ``training.eval_every`` epochs (e.g. the FID curve); what they return
    is logged as metrics at the current step.

    ``tracking``: the ``tracking`` parameters (:class:`~transfigure.tracking.config.TrackingConfig`;
    ``$MLFLOW_TRACKING_URI`` overrides its ``tracking_uri``). ``params`` are logged flattened.
    Under torchrun every rank trains; rank 0 alone talks to MLflow and exports, and every
    rank returns rank 0's summary (so Kedro writes the same outputs on all ranks).
    """
    output_dir = Path(output_dir)
    tracking = TrackingConfig.from_params(tracking)
    ctx = init_distributed()
    if not ctx.is_main:
        Trainer(model, dataset, training, output_dir, callbacks=callbacks).fit()
        return broadcast_object(None, ctx)
    client, experiment_id = configure_mlflow(tracking.experiment_for(model.variant), tracking.tracking_uri)
    trainer = Trainer(model, dataset, training, output_dir, callbacks=callbacks)
    previous_run = trainer.resume_metadata().get("mlflow_run_id")
    if previous_run:
        logger.info("resuming MLflow run %s", previous_run)
    # the DVC version of the data (tags dvc_data_md5, dvc_lock_md5 ...; "untracked" outside DVC)
    run_tags = {"variant": model.variant, **git_info(), **dvc_tags((tags or {}).get("dataset_root")), **(tags or {})}
    root = run_tags.get("dataset_root")
    with mlflow.start_run(
        run_id=previous_run,
        experiment_id=None if previous_run else experiment_id,
        run_name=None if previous_run else tracking.run_name or default_run_name(model.variant, root, trainer),
    ) as run:
        run_id = run.info.run_id
        trainer.logger = MlflowTrainingLogger(client, run_id)
        trainer.run_metadata["mlflow_run_id"] = run_id
        mlflow.set_tags({**run_tags, **trainer.resolved_setup()})  # what precision: auto etc. became, and why
        if not previous_run:
            mlflow.log_params(flatten_params(params))
            if root:  # the data as an MLflow dataset input (Runs > Dataset column; digest = its fingerprint)
                dataset_input = training_dataset(root, run_tags.get("dataset_fingerprint", ""))
                mlflow.log_input(dataset_input, context="training", tags={"format": run_tags.get("dataset_format", "")})
        if validation_report is not None:
            mlflow.log_dict(validation_report, "validation/validation_report.json")
            summary = validation_report.get("summary", {})
            numeric = {
                f"data_{k}": float(v)
                for k, v in summary.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)
            }
            if numeric:
                mlflow.log_metrics(numeric)
        result = trainer.fit()
        if result.archived is not None:
            mlflow.set_tag("previous_checkpoints", str(result.archived.folder))
        if result.remote_archived is not None:
            mlflow.set_tag("previous_remote_checkpoints", str(result.remote_archived.folder))
        if trainer.remote is not None:
            mlflow.set_tag("remote_checkpoints", trainer.remote.url)

        # The export DVC tracks holds what the weights determine (byte-reproducible); the copy logged
        # to MLflow also names its run and commit (Translator.metadata, the service's model info).
        export_dir = output_dir / GENERATOR_ARTIFACT
        save_generators(
            export_dir,
            model.generators(),
            variant=model.variant,
            model_config=model.config.model_dump(),
            metadata={"step": result.step},
        )
        remote_export = trainer.upload_folder(export_dir)  # training.remote_dir: <remote_dir>/generator/
        if remote_export:
            mlflow.set_tag("remote_generator", remote_export)
        if model.visuals():
            mlflow.log_image(visuals_grid(model.visuals()), "samples/final.png")
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="transfigure-log-") as tmp:
            logged = copy_with_metadata(
                export_dir,
                Path(tmp) / GENERATOR_ARTIFACT,
                {"mlflow_run_id": run_id, "git_commit": run_tags.get("git_commit", "")},
            )
            info = log_generator_model(logged, registered_model_name=tracking.model_name_for(model.variant))
        mlflow.log_metrics(
            {
                "train_seconds": result.seconds,
                "train_images_per_second": result.images_per_second,
                "final_step": float(result.step),
            }
        )
        logger.info("logged generator model %s in %.1fs", info.model_uri, time.perf_counter() - t0)

    summary = {
        "variant": model.variant,
        "run_id": run_id,
        "experiment_id": experiment_id,
        "tracking_uri": mlflow.get_tracking_uri(),
        "model_uri": info.model_uri,
        "export_dir": str(export_dir),
        "remote_export": remote_export,
        "remote_checkpoints": trainer.remote.url if trainer.remote is not None else None,
        "checkpoint": str(result.checkpoint),
        "step": result.step,
        "epoch": result.epoch,
        "seconds": round(result.seconds, 3),
        "images_per_second": round(result.images_per_second, 3),
        "resumed_from_step": result.resumed_from_step,
        "previous_checkpoints": str(result.archived.folder) if result.archived else None,
        "losses": result.losses,
        "device": str(trainer.device),
        "precision": trainer.precision.mode,
        **trainer.resolved_setup(),
    }
    summary["world_size"] = ctx.world_size
    (output_dir / "training_summary.json").write_text(json.dumps(summary, indent=2))
    return broadcast_object(summary, ctx)


def planned_steps(trainer: Trainer) -> int:
    """The steps ``trainer.fit()`` will run from scratch: epochs x batches per epoch, capped by ``max_steps``."""
    cfg = trainer.config
    steps = math.ceil(trainer.sampler.per_rank / cfg.batch_size) * cfg.total_epochs
    return min(steps, cfg.max_steps) if cfg.max_steps is not None else steps


def default_run_name(variant: str, dataset_root: str | None, trainer: Trainer) -> str:
    """``<variant>-<data>-<steps>``, e.g. ``cyclegan-day2night-960`` (``tracking.run_name`` overrides it)."""
    data = data_name(dataset_root) if dataset_root else "data"
    return f"{variant}-{data}-{planned_steps(trainer)}"


def register_trained_model(
    summary: dict[str, Any], tracking: TrackingConfig | dict[str, Any], extra_tags: dict[str, str] | None = None
) -> dict[str, Any]:
    """Register the model a training logged as a new version of ``tracking.registered_model_name``."""
    tracking = TrackingConfig.from_params(tracking)
    name = tracking.model_name_for(summary["variant"])
    client, _ = configure_mlflow(tracking.experiment_for(summary["variant"]), tracking.tracking_uri)
    run_tags = client.get_run(summary["run_id"]).data.tags
    tags = {
        "variant": summary["variant"],
        "run_id": summary["run_id"],
        "step": str(summary["step"]),
        **{k: v for k, v in git_info().items() if k == "git_commit"},
        **{k: v for k, v in run_tags.items() if k.startswith("dvc_")},  # the DVC data version of its run
        **(extra_tags or {}),
    }
    mv = register_generator(
        client,
        summary["model_uri"],
        name,
        run_id=summary["run_id"],
        tags=tags,
        description=version_description(client, summary["run_id"]),
    )
    return {
        "name": name,
        "version": str(mv.version),
        "run_id": summary["run_id"],
        "source": summary["model_uri"],
        "registered_model_uri": f"models:/{name}/{mv.version}",
        "tracking_uri": resolve_tracking_uri(summary["tracking_uri"]),
    }
