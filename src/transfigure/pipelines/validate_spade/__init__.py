"""The validate_spade pipeline."""

from transfigure.pipelines.validate_spade.pipeline import create_pipeline

__all__ = ["create_pipeline"]
