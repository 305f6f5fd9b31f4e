"""The batch translation stage: ``translate_<variant>`` translates a folder with a registered generator."""

from transfigure.pipelines.translation.pipeline import translation_pipeline

__all__ = ["translation_pipeline"]
