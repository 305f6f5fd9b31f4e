"""The train_unit pipeline."""

from transfigure.pipelines.train_unit.pipeline import create_pipeline

__all__ = ["create_pipeline"]
