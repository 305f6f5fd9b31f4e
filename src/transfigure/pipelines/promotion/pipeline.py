"""``<variant>.registered_model`` + ``<variant>.evaluation_metrics`` -> the gate -> ``<variant>.promotion``."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node

from transfigure.models import VARIANTS
from transfigure.pipelines.data_validation.pipeline import validation_pipeline
from transfigure.pipelines.promotion.nodes import promote_registered_model


def promotion_pipeline(variant: str) -> Pipeline:
    """``<variant>.registered_model`` + ``<variant>.evaluation_metrics`` -> ``<variant>.promotion``."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; known: {sorted(VARIANTS)}")
    return Pipeline(
        [
            node(
                promote_registered_model,
                [
                    "registered_model",
                    "evaluation_metrics",
                    "params:promotion",
                    "validated_dataset",
                    "params:data",
                    "params:evaluation",
                ],
                "promotion",
                name="promote",
            )
        ],
        namespace=variant,
    )


def standalone_promotion_pipeline(variant: str) -> Pipeline:
    """``promote_<variant>``: validate the data, then gate the registered version.

    The validated data let the gate re-evaluate a champion that was evaluated on another split.
    """
    return validation_pipeline(variant) + promotion_pipeline(variant)
