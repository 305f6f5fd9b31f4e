"""The prepare_data pipeline."""

from transfigure.pipelines.prepare_data.pipeline import create_pipeline

__all__ = ["create_pipeline"]
