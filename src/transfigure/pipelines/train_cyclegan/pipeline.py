"""``train_cyclegan``: validate data -> train (MLflow-tracked) -> register the generator."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node

from transfigure.pipelines.data_validation.pipeline import validation_pipeline
from transfigure.pipelines.train_cyclegan.nodes import register_model, train_cyclegan


def create_pipeline(**kwargs) -> Pipeline:
    training = Pipeline(
        [
            node(
                train_cyclegan,
                ["validated_dataset", "validation_report", "params:data", "params:model", "params:training",
                 "params:tracking", "params:output_dir"],
                "training_summary",
                name="train",
            ),
            node(register_model, ["training_summary", "validated_dataset", "params:tracking"], "registered_model",
                 name="register"),
        ]
    )
    return validation_pipeline("cyclegan") + Pipeline(training, namespace="cyclegan")
