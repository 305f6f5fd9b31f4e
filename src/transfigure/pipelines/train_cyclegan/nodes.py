"""Nodes of ``train_cyclegan``: train through the shared engine under MLflow, then register."""

from __future__ import annotations

import logging
from typing import Any

from transfigure.data.datasets import make_dataset
from transfigure.data.transforms import TransformConfig
from transfigure.models.cyclegan import CycleGAN, CycleGANConfig
from transfigure.tracking.training import register_trained_model, run_tracked_training
from transfigure.training import TrainingConfig

logger = logging.getLogger(__name__)


def build_train_dataset(dataset: dict[str, Any], data: dict[str, Any], seed: int = 0):
    transform = TransformConfig(
        preprocess=data.get("preprocess", "resize_and_crop"),
        load_size=int(data.get("load_size", 286)),
        crop_size=int(data.get("crop_size", 256)),
        flip=bool(data.get("flip", True)),
    )
    return make_dataset(
        dataset["format"],
        dataset["root"],
        "train",
        transform=transform,
        direction=data.get("direction", "AtoB"),
        seed=seed,
        input_nc=int(data.get("input_nc", 3)),
        output_nc=int(data.get("output_nc", 3)),
    )


def train_cyclegan(
    validated_dataset: dict[str, Any],
    validation_report: dict[str, Any],
    data: dict[str, Any],
    model: dict[str, Any],
    training: dict[str, Any],
    tracking: dict[str, Any],
    output_dir: str,
) -> dict[str, Any]:
    """Train CycleGAN on the validated dataset; log params, losses, LR, images/s and samples to MLflow."""
    model_cfg = CycleGANConfig(**{"input_nc": data.get("input_nc", 3), "output_nc": data.get("output_nc", 3), **model})
    train_cfg = TrainingConfig(**training)
    dataset = build_train_dataset(validated_dataset, data, seed=train_cfg.seed)
    return run_tracked_training(
        model=CycleGAN(model_cfg),
        dataset=dataset,
        training=train_cfg,
        output_dir=output_dir,
        tracking=tracking,
        params={"data": data, "model": model_cfg.model_dump(), "training": train_cfg.model_dump()},
        validation_report=validation_report,
        tags={"dataset_root": validated_dataset["root"], "dataset_format": validated_dataset["format"],
              "dataset_fingerprint": validated_dataset.get("fingerprint", "")},
    )


def register_model(training_summary: dict[str, Any], validated_dataset: dict[str, Any], tracking: dict[str, Any]) -> dict[str, Any]:
    """Register the trained generator as a new version (unless ``tracking.register`` is false)."""
    if not tracking.get("register", True):
        logger.info("tracking.register is false: not registering")
        return {"registered": False, "run_id": training_summary["run_id"], "source": training_summary["model_uri"]}
    out = register_trained_model(training_summary, tracking,
                                 extra_tags={"dataset_fingerprint": validated_dataset.get("fingerprint", "")})
    logger.info("registered %s version %s — load it with transfigure.load_translator(%r, %s)",
                out["name"], out["version"], out["name"], out["version"])
    return {"registered": True, **out}
