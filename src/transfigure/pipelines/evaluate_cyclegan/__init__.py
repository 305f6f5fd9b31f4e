"""The evaluate_cyclegan pipeline."""

from transfigure.pipelines.evaluate_cyclegan.pipeline import create_pipeline

__all__ = ["create_pipeline"]
