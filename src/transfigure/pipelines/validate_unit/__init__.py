"""The validate_unit pipeline."""

from transfigure.pipelines.validate_unit.pipeline import create_pipeline

__all__ = ["create_pipeline"]
