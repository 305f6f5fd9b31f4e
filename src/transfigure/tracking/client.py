"""The one place an ``MlflowClient`` is made, and where the store is.

Default store: ``sqlite:///<project>/mlruns.db`` (MLflow 3's ``./mlruns`` file store is in
maintenance mode). ``$MLFLOW_TRACKING_URI`` overrides it, e.g. ``http://127.0.0.1:5000`` for a
tracking server; ``$MLFLOW_REGISTRY_URI`` moves the model registry elsewhere
(:mod:`transfigure.tracking.config` reads them). Imports only MLflow and that config
(``import transfigure`` has already switched MLflow's telemetry off), so every package may use it.
"""

from __future__ import annotations

from pathlib import Path

from mlflow import MlflowClient

from transfigure.tracking.config import resolve_registry_uri, resolve_tracking_uri


def is_local_store(uri: str) -> bool:
    """Whether ``uri`` is an embedded store (sqlite, files) rather than a tracking server."""
    return uri.startswith("sqlite:") or uri.startswith("file:") or "://" not in uri


def mlflow_client(tracking_uri: str | None = None, project_root: str | Path | None = None) -> MlflowClient:
    """A client on the project's tracking store and registry (see :func:`resolve_tracking_uri`)."""
    uri = resolve_tracking_uri(tracking_uri, project_root)
    return MlflowClient(tracking_uri=uri, registry_uri=resolve_registry_uri(uri))


__all__ = ["is_local_store", "mlflow_client"]
