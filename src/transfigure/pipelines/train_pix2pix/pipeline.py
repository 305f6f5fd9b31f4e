"""``train_pix2pix``: validate paired data -> train Pix2Pix (MLflow-tracked) -> register ``pix2pix``."""

from __future__ import annotations

from kedro.pipeline import Pipeline

from transfigure.pipelines.training.pipeline import training_pipeline


def create_pipeline(**kwargs) -> Pipeline:
    return training_pipeline("pix2pix")
