"""Process-wide defaults that keep every run offline.

transfigure must never try the network at run time: the stack's telemetry
(Kedro, MLflow, BentoML, DVC and the generic ``DO_NOT_TRACK``) is switched
off here. Values a user already exported win (``setdefault``).
"""

from __future__ import annotations

import os

TELEMETRY_OFF = {
    "KEDRO_DISABLE_TELEMETRY": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "BENTOML_DO_NOT_TRACK": "true",
    "DVC_NO_ANALYTICS": "1",
    "DO_NOT_TRACK": "true",
    "GX_ANALYTICS_ENABLED": "False",
    # nothing may try to reach a model hub
    "HF_HUB_OFFLINE": "1",
    # no per-file progress bars in logs when MLflow copies artifacts
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


def disable_telemetry() -> None:
    """Switch off every telemetry/analytics client of the stack for this process."""
    for name, value in TELEMETRY_OFF.items():
        os.environ.setdefault(name, value)
