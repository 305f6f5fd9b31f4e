"""The train_spade pipeline."""

from transfigure.pipelines.train_spade.pipeline import create_pipeline

__all__ = ["create_pipeline"]
