"""The transfigure BentoML service.

At start-up it loads the generator registered as ``$TRANSFIGURE_MODEL@$TRANSFIGURE_MODEL_ALIAS``
(default ``cyclegan@champion``) from the MLflow registry (``$MLFLOW_TRACKING_URI``, default
the project's ``sqlite:///mlruns.db``) and fails with instructions when there is none.

This first version answers model information and BentoML's health/metrics endpoints only.
The image endpoint arrives together with provenance watermarking: transfigure never
returns an unmarked generated image.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from transfigure._env import disable_telemetry

disable_telemetry()

import bentoml  # noqa: E402

logger = logging.getLogger(__name__)

MODEL_NAME = os.environ.get("TRANSFIGURE_MODEL", "cyclegan")
MODEL_ALIAS = os.environ.get("TRANSFIGURE_MODEL_ALIAS", "champion")


def _preflight() -> None:
    """Fail ``bentoml serve`` itself (not just a worker, which BentoML would restart forever)
    when the configured model cannot be resolved in the registry.

    ``bentoml serve`` imports this module in its main process before starting workers.
    ``TRANSFIGURE_SKIP_PREFLIGHT=1`` skips it (e.g. for ``bentoml build`` on a machine without the registry).
    """
    if os.environ.get("TRANSFIGURE_SKIP_PREFLIGHT") == "1":
        return
    from mlflow import MlflowClient

    from transfigure.tracking.mlflow_utils import resolve_registry_uri, resolve_tracking_uri
    from transfigure.tracking.registry import resolve_model_uri

    uri = resolve_tracking_uri()
    try:
        resolve_model_uri(MlflowClient(tracking_uri=uri, registry_uri=resolve_registry_uri(uri)), MODEL_NAME, MODEL_ALIAS)
    except LookupError as exc:
        raise SystemExit(f"transfigure service cannot start: {exc} (registry: {uri})") from None


_preflight()


@bentoml.service(name="transfigure", traffic={"timeout": 60})
class Transfigure:
    def __init__(self) -> None:
        from transfigure.inference import load_translator

        self.model_name = MODEL_NAME
        self.alias = MODEL_ALIAS
        self.translator = load_translator(self.model_name, self.alias)
        logger.info("serving %s@%s", self.model_name, self.alias)

    @bentoml.api
    def info(self) -> dict[str, Any]:
        """Which model is served: registry name, alias, variant, directions, MLflow run and training step."""
        return {
            "model": self.model_name,
            "alias": self.alias,
            "variant": self.translator.variant,
            "directions": self.translator.directions,
            "run_id": self.translator.metadata.get("mlflow_run_id"),
            "step": self.translator.metadata.get("step"),
            "device": str(self.translator.device),
        }
