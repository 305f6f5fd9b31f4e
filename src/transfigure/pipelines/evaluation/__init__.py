"""The evaluation stage."""

from transfigure.pipelines.evaluation.pipeline import evaluation_pipeline, standalone_evaluation_pipeline

__all__ = ["evaluation_pipeline", "standalone_evaluation_pipeline"]
