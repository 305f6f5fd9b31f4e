"""Nodes of the training pipeline every variant shares: validate data -> train (MLflow-tracked) -> register -> evaluate -> promote (gated).

``train_<variant>`` is ``pipeline.training_pipeline("<variant>")``. Datasets and
parameters are namespaced by variant (``<variant>.training_summary``,
``params:<variant>.model`` ...), configured in ``conf/base/parameters_train_<variant>.yml``.
Besides the model, a run writes the loss curve (``plots/loss.csv``), the FID curve when
``training.eval_every`` is set (``plots/fid.csv``), and the evaluation of the registered
version on the held-out split (``metrics.json``, ``eval_report.png``).
Last, the metric gate (``promotion_pipeline``) makes the new version ``champion`` only if it beats
the current champion on the same split (``promotion.json`` says why either way).
"""

from __future__ import annotations

import logging
from typing import Any

from torch.utils.data import Dataset

from transfigure.data.config import DataConfig
from transfigure.evaluation.curve import FidCurve
from transfigure.models import VARIANTS
from transfigure.runtime.distributed import on_rank_zero
from transfigure.tracking.config import TrackingConfig
from transfigure.tracking.runs import register_trained_model, run_tracked_training
from transfigure.training import TrainingConfig

logger = logging.getLogger(__name__)


def build_dataset(
    dataset: dict[str, Any], data: dict[str, Any] | DataConfig, split: str = "train", seed: int = 0
) -> Dataset:
    """The torch dataset for ``dataset`` (root + format) with the preprocessing and format
    arguments (``direction``, ``input_nc``, ``label_nc``, ``use_instance`` ...) of ``data``.

    Without a test/val split, ``train`` leaves out the files held out for evaluation
    (``data.holdout_fraction``)."""
    return DataConfig.from_params(data).make_dataset(dataset["root"], dataset["format"], split, seed=seed)


def holdout_tags(summary: dict[str, Any] | None) -> dict[str, str]:
    """MLflow tags saying that (and how) part of train was held out for evaluation; {} when not.

    ``holdout_size``/``holdout_train_size``: files (pairs, or images of both domains) held out /
    trained on; unpaired data adds ``holdout_size_A`` and ``holdout_size_B``.
    """
    if not summary:
        return {}
    held, total = summary["held_out"], summary["total"]
    tags = {
        "holdout_from_train": "true",
        "holdout_fraction": str(summary["fraction"]),
        "holdout_min_count": str(summary["min_count"]),
        "holdout_rule": str(summary["rule"]),
        "holdout_size": str(sum(held.values())),
        "holdout_train_size": str(sum(total.values()) - sum(held.values())),
    }
    if set(held) != {"pairs"}:
        tags.update({f"holdout_size_{domain}": str(n) for domain, n in held.items()})
    return tags


def model_config(variant: str, data: dict[str, Any] | DataConfig, model: dict[str, Any]) -> Any:
    """The variant's typed config; what describes the data defaults to the data's values
    (``data.input_nc``, ``label_nc``, ``crop_size`` ...), so overriding the data section is enough."""
    config_class = VARIANTS[variant].config_class
    shared = DataConfig.from_params(data).model_defaults(config_class.model_fields)
    return config_class(**{**shared, **model})


def train(
    variant: str,
    validated_dataset: dict[str, Any],
    validation_report: dict[str, Any],
    data: dict[str, Any],
    model: dict[str, Any],
    training: dict[str, Any],
    tracking: dict[str, Any],
    output_dir: str,
    evaluation: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train ``variant`` on the validated dataset through the shared engine, logged to MLflow.

    With ``training.eval_every`` set, FID on a fixed held-out subset (``evaluation.curve_images``)
    is logged as metric ``fid`` every ``eval_every`` epochs.
    """
    config = model_config(variant, data, model)
    train_cfg = TrainingConfig(**training)
    callbacks = [FidCurve(validated_dataset, data, evaluation)] if train_cfg.eval_every else []
    dataset = build_dataset(validated_dataset, data, "train", seed=train_cfg.seed)
    return run_tracked_training(
        model=VARIANTS[variant](config),
        dataset=dataset,
        training=train_cfg,
        output_dir=output_dir,
        tracking=TrackingConfig.from_params(tracking),
        params={"data": data, "model": config.model_dump(), "training": train_cfg.model_dump()},
        validation_report=validation_report,
        tags={
            "dataset_root": validated_dataset["root"],
            "dataset_format": validated_dataset["format"],
            "dataset_fingerprint": validated_dataset.get("fingerprint", ""),
            **holdout_tags(getattr(dataset, "holdout_summary", None)),
        },
        callbacks=callbacks,
    )


@on_rank_zero
def register_model(
    training_summary: dict[str, Any], validated_dataset: dict[str, Any], tracking: dict[str, Any]
) -> dict[str, Any]:
    """Register the trained generator as a new version (unless ``tracking.register`` is false).

    Under torchrun only rank 0 registers; the others return its answer.
    """
    if not TrackingConfig.from_params(tracking).register_model:
        logger.info("tracking.register is false: not registering")
        return {"registered": False, "run_id": training_summary["run_id"], "source": training_summary["model_uri"]}
    out = register_trained_model(
        training_summary, tracking, extra_tags={"dataset_fingerprint": validated_dataset.get("fingerprint", "")}
    )
    logger.info(
        "registered %s version %s; load it with transfigure.load_translator(%r, %s)",
        out["name"],
        out["version"],
        out["name"],
        out["version"],
    )
    return {"registered": True, **out}
