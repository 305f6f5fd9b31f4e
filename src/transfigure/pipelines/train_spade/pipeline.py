"""``train_spade``: validate label-map data (ids < label_nc) -> train SPADE (MLflow-tracked) -> register ``spade``."""

from __future__ import annotations

from kedro.pipeline import Pipeline

from transfigure.pipelines.training.pipeline import training_pipeline


def create_pipeline(**kwargs) -> Pipeline:
    return training_pipeline("spade")
