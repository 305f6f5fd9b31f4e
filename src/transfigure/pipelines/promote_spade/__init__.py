"""The promote_spade pipeline."""

from transfigure.pipelines.promote_spade.pipeline import create_pipeline

__all__ = ["create_pipeline"]
