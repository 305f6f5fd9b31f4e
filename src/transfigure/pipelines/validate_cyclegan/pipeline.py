"""``validate_cyclegan``: the cyclegan data through the validation that starts ``train_cyclegan``, on its own.

Writes ``cyclegan.image_metadata``, ``cyclegan.validation_report(_text)`` and ``cyclegan.validated_dataset``
(the DVC stage ``validate_cyclegan``; the stage ``train_cyclegan`` then starts from the persisted dataset).
"""

from __future__ import annotations

from kedro.pipeline import Pipeline

from transfigure.pipelines.data_validation.pipeline import validation_pipeline


def create_pipeline(**kwargs) -> Pipeline:
    return validation_pipeline("cyclegan")
