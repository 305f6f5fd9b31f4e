"""``translate_<variant>``: ``translate.<variant>`` + ``<variant>.tracking`` -> ``<variant>.translation_summary``."""

from __future__ import annotations

import functools

from kedro.pipeline import Pipeline, node

from transfigure.models import VARIANTS
from transfigure.pipelines.translation.nodes import translate_images


def translation_pipeline(variant: str) -> Pipeline:
    """Translate ``translate.<variant>.input`` with the variant's champion (or ``translate.<variant>.model``)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; known: {sorted(VARIANTS)}")
    translate = functools.update_wrapper(functools.partial(translate_images, variant), translate_images)
    params = f"params:translate.{variant}"
    return Pipeline(
        [node(translate, [params, "params:tracking"], "translation_summary", name="translate")],
        namespace=variant,
        parameters={params},  # translate.<variant> lives outside the variant's namespace
    )
