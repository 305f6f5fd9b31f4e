"""``promote_spade``: validate data -> gate the registered SPADE version into ``spade@champion``."""

from __future__ import annotations

from kedro.pipeline import Pipeline

from transfigure.pipelines.data_validation.pipeline import validation_pipeline
from transfigure.pipelines.promotion.pipeline import promotion_pipeline


def create_pipeline(**kwargs) -> Pipeline:
    return validation_pipeline("spade") + promotion_pipeline("spade")
