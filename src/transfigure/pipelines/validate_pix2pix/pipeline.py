"""``validate_pix2pix``: the pix2pix data through the validation that starts ``train_pix2pix``, on its own.

Writes ``pix2pix.image_metadata``, ``pix2pix.validation_report(_text)`` and ``pix2pix.validated_dataset``
(the DVC stage ``validate_pix2pix``; the stage ``train_pix2pix`` then starts from the persisted dataset).
"""

from __future__ import annotations

from kedro.pipeline import Pipeline

from transfigure.pipelines.data_validation.pipeline import validation_pipeline


def create_pipeline(**kwargs) -> Pipeline:
    return validation_pipeline("pix2pix")
