"""``validate_unit``: the unit data through the validation that starts ``train_unit``, on its own.

Writes ``unit.image_metadata``, ``unit.validation_report(_text)`` and ``unit.validated_dataset``
(the DVC stage ``validate_unit``; the stage ``train_unit`` then starts from the persisted dataset).
"""

from __future__ import annotations

from kedro.pipeline import Pipeline

from transfigure.pipelines.data_validation.pipeline import validation_pipeline


def create_pipeline(**kwargs) -> Pipeline:
    return validation_pipeline("unit")
