"""The promote_unit pipeline."""

from transfigure.pipelines.promote_unit.pipeline import create_pipeline

__all__ = ["create_pipeline"]
