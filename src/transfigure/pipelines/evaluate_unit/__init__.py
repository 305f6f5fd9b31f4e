"""The evaluate_unit pipeline."""

from transfigure.pipelines.evaluate_unit.pipeline import create_pipeline

__all__ = ["create_pipeline"]
