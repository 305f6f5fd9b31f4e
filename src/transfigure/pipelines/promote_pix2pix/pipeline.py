"""``promote_pix2pix``: validate data -> gate the registered Pix2Pix version into ``pix2pix@champion``."""

from __future__ import annotations

from kedro.pipeline import Pipeline

from transfigure.pipelines.data_validation.pipeline import validation_pipeline
from transfigure.pipelines.promotion.pipeline import promotion_pipeline


def create_pipeline(**kwargs) -> Pipeline:
    return validation_pipeline("pix2pix") + promotion_pipeline("pix2pix")
