"""The node of ``translate_<variant>``: translate a folder with a registered generator, stamped, in an MLflow run.

Parameters: ``translate.<variant>`` (``conf/base/parameters_translate.yml``, typed by
:class:`TranslationParams`) and ``<variant>.tracking`` (the store the variant's models are registered in).
The work is :func:`transfigure.tracking.translation.translate_tracked`, which ``transfigure translate``
runs too.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from transfigure.inference.batch import BatchOptions
from transfigure.tracking.config import TrackingConfig
from transfigure.tracking.translation import load_generator, translate_tracked

logger = logging.getLogger(__name__)


class TranslationParams(BatchOptions):
    """``translate.<variant>``: what to translate with which model, where to, and how (:class:`BatchOptions`)."""

    model: str | None = Field(
        None, description="name@alias, name@version or a generator folder; null = <name>@champion"
    )
    input: str | list[str] = Field(description="image folder(s) or file(s)")
    output_root: str = Field("data/07_model_output", description="outputs go to <output_root>/<variant>/<run_name>/")
    run_name: str | None = Field(None, description="output folder and MLflow run name; null = the input folder's name")
    experiment: str | None = Field(None, description="MLflow experiment; null = translate-<variant>")
    device: str = Field("auto", description="auto (CUDA when present), cpu, cuda")

    def options(self) -> BatchOptions:
        return BatchOptions(**self.model_dump(include=set(BatchOptions.model_fields)))

    @property
    def inputs(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


def _params(variant: str, translate: dict[str, Any]) -> TranslationParams:
    try:
        return TranslationParams(**(translate or {}))
    except ValidationError as exc:
        problems = "; ".join(f"translate.{variant}.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"invalid translate.{variant} parameters: {problems}") from None


def translate_images(variant: str, translate: dict[str, Any], tracking: dict[str, Any]) -> dict[str, Any]:
    """Translate ``translate.input`` with ``translate.model`` into ``<output_root>/<variant>/<run_name>/``.

    Returns the summary (counts, images/s, every refused input with its reason, the MLflow run id),
    saved as ``data/08_reporting/<variant>/translation_summary.json``. Refused inputs do not fail the
    run; a missing input folder, an unknown model or options the model cannot take do.
    """
    params = _params(variant, translate)
    tracking_config = TrackingConfig.from_params(tracking)
    missing = [i for i in params.inputs if not Path(i).exists()]
    if missing:
        raise FileNotFoundError(
            f"translate.{variant}.input {', '.join(missing)} does not exist: `kedro run --pipeline=train_{variant}` "
            f"builds the embedded default dataset, or set translate.{variant}.input to your images"
        )
    ref = params.model or f"{tracking_config.model_name_for(variant)}@champion"
    model = load_generator(ref, device=params.device, tracking_uri=tracking_config.tracking_uri)
    if model.info.variant and model.info.variant != variant:
        logger.warning("translate_%s runs a %s model (%s)", variant, model.info.variant, ref)
    run_name = params.run_name or Path(params.inputs[0]).resolve().name
    output_dir = Path(params.output_root) / variant / run_name
    result, run_id = translate_tracked(
        model,
        params.inputs,
        output_dir,
        options=params.options(),
        experiment=params.experiment or f"translate-{variant}",
        run_name=run_name,
        tracking_uri=tracking_config.tracking_uri,
    )
    (logger.warning if result.refused else logger.info)("%s", result.summary_text())
    return {**result.summary(), "model_ref": ref, "mlflow_run_id": run_id}


__all__ = ["TranslationParams", "translate_images"]
