"""``evaluate_unit``: validate data -> evaluate the latest registered ``unit`` version (or ``unit.evaluation.model_version``)."""

from __future__ import annotations

from kedro.pipeline import Pipeline

from transfigure.pipelines.evaluation.pipeline import standalone_evaluation_pipeline


def create_pipeline(**kwargs) -> Pipeline:
    return standalone_evaluation_pipeline("unit")
