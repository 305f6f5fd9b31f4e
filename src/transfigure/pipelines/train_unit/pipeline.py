"""``train_unit``: validate unpaired data -> train UNIT (MLflow-tracked) -> register ``unit``."""

from __future__ import annotations

from kedro.pipeline import Pipeline

from transfigure.pipelines.training.pipeline import training_pipeline


def create_pipeline(**kwargs) -> Pipeline:
    return training_pipeline("unit")
