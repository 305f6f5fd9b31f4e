"""``train_<variant>``: validate data -> train (MLflow-tracked) -> register -> curves -> evaluate -> promote (gated)."""

from __future__ import annotations

import functools

from kedro.pipeline import Pipeline, node

from transfigure.models import VARIANTS
from transfigure.pipelines.data_validation.pipeline import validation_pipeline
from transfigure.pipelines.evaluation.nodes import training_curves
from transfigure.pipelines.evaluation.pipeline import evaluation_pipeline
from transfigure.pipelines.promotion.pipeline import promotion_pipeline
from transfigure.pipelines.training.nodes import register_model, train


def training_pipeline(variant: str) -> Pipeline:
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; known: {sorted(VARIANTS)}")
    train_node = functools.update_wrapper(functools.partial(train, variant), train)
    steps = Pipeline(
        [
            node(
                train_node,
                [
                    "validated_dataset",
                    "validation_report",
                    "params:data",
                    "params:model",
                    "params:training",
                    "params:tracking",
                    "params:output_dir",
                    "params:evaluation",
                ],
                "training_summary",
                name="train",
            ),
            node(
                register_model,
                ["training_summary", "validated_dataset", "params:tracking"],
                "registered_model",
                name="register",
            ),
            node(
                training_curves,
                ["training_summary", "params:tracking"],
                ["loss_curve", "fid_curve"],
                name="training_curves",
            ),
        ]
    )
    return (
        validation_pipeline(variant)
        + Pipeline(steps, namespace=variant)
        + evaluation_pipeline(variant)
        + promotion_pipeline(variant)
    )
