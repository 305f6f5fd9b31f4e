"""The train_pix2pix pipeline."""

from transfigure.pipelines.train_pix2pix.pipeline import create_pipeline

__all__ = ["create_pipeline"]
