"""The validate_pix2pix pipeline."""

from transfigure.pipelines.validate_pix2pix.pipeline import create_pipeline

__all__ = ["create_pipeline"]
