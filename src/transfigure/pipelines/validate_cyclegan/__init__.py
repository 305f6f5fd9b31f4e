"""The validate_cyclegan pipeline."""

from transfigure.pipelines.validate_cyclegan.pipeline import create_pipeline

__all__ = ["create_pipeline"]
