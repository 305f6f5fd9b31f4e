"""Typed ``tracking`` and ``promotion`` parameters, and what tracking reads from the environment.

The parameter sections (``conf/base/parameters_train_<variant>.yml``) are validated like the
model, training and evaluation sections: unknown keys are errors. The environment variables
that steer MLflow, DVC and the promotion gate are read here and nowhere else in this package.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

DEFAULT_DB = "mlruns.db"


def _validated(cls: type[BaseModel], section: str, params: dict[str, Any] | None) -> Any:
    try:
        return cls(**(params or {}))
    except ValidationError as exc:
        problems = "; ".join(f"{section}.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"invalid {section} parameters: {problems}") from None


class TrackingConfig(BaseModel):
    """The ``<variant>.tracking`` parameters: where a training is logged and registered."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    experiment: str | None = Field(None, description="MLflow experiment; null = 'transfigure-<variant>'")
    tracking_uri: str | None = Field(
        None, description="null = sqlite:///mlruns.db in the project; $MLFLOW_TRACKING_URI wins"
    )
    run_name: str | None = None
    # the YAML key is ``register``; as a field name it would shadow pydantic's (ABC) ``register``
    register_model: bool = Field(
        True, alias="register", description="register the trained generator as a new model version"
    )
    registered_model_name: str | None = Field(None, description="null = the variant's name")

    @classmethod
    def from_params(cls, params: TrackingConfig | dict[str, Any] | None) -> TrackingConfig:
        return params if isinstance(params, cls) else _validated(cls, "tracking", params)

    def experiment_for(self, variant: str) -> str:
        return self.experiment or f"transfigure-{variant}"

    def model_name_for(self, variant: str) -> str:
        return self.registered_model_name or variant


class PromotionConfig(BaseModel):
    """The ``<variant>.promotion`` parameters of the metric gate."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    primary_metric: str = Field("fid", description="a key of transfigure.tracking.metric_tags.METRIC_DIRECTIONS")
    margin: float = Field(
        0.0, ge=0, allow_inf_nan=False, description="the candidate must beat the champion by MORE than this"
    )
    force: bool = Field(False, description="promote regardless of the gate (needs a reason)")
    reason: str | None = None
    actor: str | None = Field(None, description="who decides; null = $USER")

    @classmethod
    def from_params(cls, params: PromotionConfig | dict[str, Any] | None) -> PromotionConfig:
        return params if isinstance(params, cls) else _validated(cls, "promotion", params)


def resolve_tracking_uri(configured: str | None = None, project_root: str | Path | None = None) -> str:
    """``$MLFLOW_TRACKING_URI`` > the configured URI > ``sqlite:///<project_root>/mlruns.db``."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    if configured:
        return configured
    root = Path(project_root or Path.cwd()).resolve()
    return f"sqlite:///{root / DEFAULT_DB}"


def resolve_registry_uri(tracking_uri: str) -> str:
    """The model registry: ``$MLFLOW_REGISTRY_URI`` when the user set one, else the tracking store.

    transfigure never calls ``mlflow.set_registry_uri``: MLflow stores that value in
    ``os.environ``, where it outlives the call and leaks into child processes (a later run
    with another tracking store would register its models in the old one).
    """
    return os.environ.get("MLFLOW_REGISTRY_URI") or tracking_uri


def default_actor() -> str:
    """Who acts on the registry: ``$USER``, else the login name, else ``unknown``."""
    try:
        return os.environ.get("USER") or getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def dvc_root_from_env() -> str | None:
    """``$DVC_ROOT``: the repository root ``dvc repro`` sets for the stages it runs."""
    return os.environ.get("DVC_ROOT") or None


def dvc_stage_from_env() -> str:
    """``$DVC_STAGE``: the DVC stage running this process ("" when not run by DVC)."""
    return os.environ.get("DVC_STAGE", "")


__all__ = ["PromotionConfig", "TrackingConfig", "default_actor", "resolve_registry_uri", "resolve_tracking_uri"]
