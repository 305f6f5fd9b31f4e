"""The evaluate_spade pipeline."""

from transfigure.pipelines.evaluate_spade.pipeline import create_pipeline

__all__ = ["create_pipeline"]
