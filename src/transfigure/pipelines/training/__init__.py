"""The training stage."""

from transfigure.pipelines.training.pipeline import training_pipeline

__all__ = ["training_pipeline"]
