"""The train_cyclegan pipeline."""

from transfigure.pipelines.train_cyclegan.pipeline import create_pipeline

__all__ = ["create_pipeline"]
