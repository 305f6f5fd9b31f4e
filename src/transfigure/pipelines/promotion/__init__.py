"""The promotion stage."""

from transfigure.pipelines.promotion.pipeline import promotion_pipeline, standalone_promotion_pipeline

__all__ = ["promotion_pipeline", "standalone_promotion_pipeline"]
