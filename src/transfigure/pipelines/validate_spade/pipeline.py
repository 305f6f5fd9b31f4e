"""``validate_spade``: the spade data through the validation that starts ``train_spade``, on its own.

Writes ``spade.image_metadata``, ``spade.validation_report(_text)`` and ``spade.validated_dataset``
(the DVC stage ``validate_spade``; the stage ``train_spade`` then starts from the persisted dataset).
"""

from __future__ import annotations

from kedro.pipeline import Pipeline

from transfigure.pipelines.data_validation.pipeline import validation_pipeline


def create_pipeline(**kwargs) -> Pipeline:
    return validation_pipeline("spade")
