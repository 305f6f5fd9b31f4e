"""``data_validation``: locate the data, tabulate image metadata, check it with Great Expectations.

Used standalone (``kedro run --pipeline=data_validation`` validates the data of every
variant's configuration) and as the first stage of each ``train_<variant>`` pipeline,
namespaced by variant (datasets ``<variant>.image_metadata`` etc., parameters
``<variant>.data`` / ``<variant>.validation``).
"""

from __future__ import annotations

from kedro.pipeline import Pipeline, node

from transfigure.pipelines.data_validation.nodes import describe_images, prepare_dataset, require_valid, validate_images


def validation_pipeline(namespace: str) -> Pipeline:
    base = Pipeline(
        [
            node(prepare_dataset, "params:data", "dataset", name="prepare_dataset"),
            node(describe_images, "dataset", "image_metadata", name="describe_images"),
            node(
                validate_images,
                ["image_metadata", "dataset", "params:validation"],
                ["validation_report", "validation_report_text"],
                name="validate_images",
            ),
            node(
                require_valid,
                ["validation_report", "validation_report_text", "dataset"],
                "validated_dataset",
                name="require_valid",
            ),
        ]
    )
    return Pipeline(base, namespace=namespace)


def create_pipeline(**kwargs) -> Pipeline:
    from transfigure.models import VARIANTS

    return sum((validation_pipeline(v) for v in sorted(VARIANTS)), Pipeline([]))
