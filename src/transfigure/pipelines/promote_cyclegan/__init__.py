"""The promote_cyclegan pipeline."""

from transfigure.pipelines.promote_cyclegan.pipeline import create_pipeline

__all__ = ["create_pipeline"]
