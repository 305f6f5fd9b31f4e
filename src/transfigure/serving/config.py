"""Serving configuration, read from environment variables (all optional).

Every process of ``bentoml serve`` (the main process, the HTTP workers and the model workers)
imports the service module and reads the same environment, so one ``export`` configures all.

========================================  ==========================================================
variable                                  meaning (default)
========================================  ==========================================================
``TRANSFIGURE_MODELS``                    comma-separated models to serve, each ``name``, ``name@alias``
                                          or ``name@version`` (``cyclegan@champion``); the first is
                                          the default of ``/translate``
``TRANSFIGURE_MODEL``,                    single-model shorthand when ``TRANSFIGURE_MODELS`` is unset
``TRANSFIGURE_MODEL_ALIAS``               (``cyclegan``, ``champion``)
``TRANSFIGURE_MODEL_SOURCE``              ``auto`` (a bundled model folder when the Bento has one, else
                                          the MLflow registry), ``registry`` or ``bundle``
``TRANSFIGURE_BUNDLE_DIR``                where bundled models live (``data/06_models/serving``)
``TRANSFIGURE_MODEL_CACHE``               where registry downloads are kept (``$XDG_CACHE_HOME`` or
                                          ``~/.cache``, then ``transfigure/models``)
``TRANSFIGURE_DEVICE``                    ``auto`` (CUDA when present), ``cpu``, ``cuda``, ``cuda:1``
``TRANSFIGURE_GPUS``                      GPUs BentoML assigns to the model workers (0: none declared)
``TRANSFIGURE_WORKERS``                   HTTP worker processes (decode, validate, verify) (1)
``TRANSFIGURE_MODEL_WORKERS``             model worker processes (translate + watermark) (1)
``TRANSFIGURE_TIMEOUT``                   request timeout in seconds (60)
``TRANSFIGURE_MAX_CONCURRENCY``           requests in flight per service before 503 (unlimited)
``TRANSFIGURE_MAX_BATCH_SIZE``            adaptive batching: largest batch (16)
``TRANSFIGURE_MAX_LATENCY_MS``            adaptive batching: longest a request may queue (50000)
``TRANSFIGURE_MAX_BODY_BYTES``            request body limit (20 MB = 20000000)
``TRANSFIGURE_MAX_PIXELS``                input and output pixel-count limit (16777216 = 4096x4096; at most
                                          ``transfigure.data.rules.MAX_PIXELS`` = 8192x8192)
``TRANSFIGURE_MIN_SIDE``                  smallest output side in pixels (64: smaller images cannot carry
                                          a reliably detectable watermark)
========================================  ==========================================================
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from transfigure.data.rules import MAX_PIXELS

#: environment variable through which the main process hands resolved models to the workers
RESOLVED_ENV = "TRANSFIGURE_RESOLVED_MODELS"

DEFAULT_MODEL = "cyclegan"
DEFAULT_ALIAS = "champion"
DEFAULT_BUNDLE_DIR = "data/06_models/serving"
MODEL_SOURCES = ("auto", "registry", "bundle")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def model_cache_dir() -> Path:
    """Where downloaded generators are kept (``$TRANSFIGURE_MODEL_CACHE``, default ``~/.cache/transfigure/models``)."""
    configured = os.environ.get("TRANSFIGURE_MODEL_CACHE", "").strip()
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(base) / "transfigure" / "models"


def resolved_models_json() -> str | None:
    """The resolved models the main process handed to this worker (:data:`RESOLVED_ENV`), if any."""
    return os.environ.get(RESOLVED_ENV) or None


class ConfigError(ValueError):
    """A serving setting (environment variable) has an invalid value."""


@dataclass(frozen=True)
class ModelSpec:
    """One model to serve: registered ``name`` and the alias or version to load (``ref``)."""

    name: str
    ref: str = DEFAULT_ALIAS

    @classmethod
    def parse(cls, text: str, default_ref: str = DEFAULT_ALIAS) -> ModelSpec:
        """``"cyclegan"``, ``"cyclegan@champion"`` or ``"cyclegan@3"``."""
        name, _, ref = text.strip().partition("@")
        name, ref = name.strip(), (ref.strip() or default_ref)
        if not _NAME_RE.match(name) or not _NAME_RE.match(ref):
            raise ConfigError(f"TRANSFIGURE_MODELS: {text!r} is not 'name', 'name@alias' or 'name@version'")
        return cls(name, ref)

    def __str__(self) -> str:
        return f"{self.name}@{self.ref}"


def _env_int(name: str, default: int | None, minimum: int = 1) -> int | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} must be >= {minimum}")
    return value


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if value <= 0:
        raise ConfigError(f"{name}={value} must be > 0")
    return value


#: a request's cost budget (input and output pixels), not the image rule: one 4096x4096 translation already takes
#: a CPU worker tens of seconds; it may be raised up to the decodable limit ``data.rules.MAX_PIXELS``
DEFAULT_MAX_PIXELS = 4096 * 4096


def _max_pixels() -> int:
    value = _env_int("TRANSFIGURE_MAX_PIXELS", DEFAULT_MAX_PIXELS) or DEFAULT_MAX_PIXELS
    if value > MAX_PIXELS:
        raise ConfigError(
            f"TRANSFIGURE_MAX_PIXELS={value} is above the largest image transfigure decodes ({MAX_PIXELS} = 8192x8192)"
        )
    return value


def model_specs_from_env() -> tuple[ModelSpec, ...] | None:
    """The models named by the environment, or None when neither variable is set."""
    many = os.environ.get("TRANSFIGURE_MODELS", "").strip()
    alias = os.environ.get("TRANSFIGURE_MODEL_ALIAS", "").strip() or DEFAULT_ALIAS
    if many:
        specs = [ModelSpec.parse(part, alias) for part in many.split(",") if part.strip()]
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ConfigError(f"TRANSFIGURE_MODELS={many!r} names a model twice")
        return tuple(specs)
    one = os.environ.get("TRANSFIGURE_MODEL", "").strip()
    if one or os.environ.get("TRANSFIGURE_MODEL_ALIAS", "").strip():
        return (ModelSpec.parse(one or DEFAULT_MODEL, alias),)
    return None


@dataclass(frozen=True)
class ServingConfig:
    """All serving settings; :meth:`from_env` reads them (see the module docstring)."""

    models: tuple[ModelSpec, ...] | None = None
    model_source: str = "auto"
    bundle_dir: Path = Path(DEFAULT_BUNDLE_DIR)
    device: str = "auto"
    gpus: int = 0
    workers: int = 1
    model_workers: int = 1
    timeout: float = 60.0
    max_concurrency: int | None = None
    max_batch_size: int = 16
    max_latency_ms: int = 50_000
    max_body_bytes: int = 20_000_000
    max_pixels: int = DEFAULT_MAX_PIXELS
    min_side: int = 64

    @classmethod
    def from_env(cls) -> ServingConfig:
        source = os.environ.get("TRANSFIGURE_MODEL_SOURCE", "auto").strip() or "auto"
        if source not in MODEL_SOURCES:
            raise ConfigError(f"TRANSFIGURE_MODEL_SOURCE={source!r}: use one of {', '.join(MODEL_SOURCES)}")
        max_batch = _env_int("TRANSFIGURE_MAX_BATCH_SIZE", 16, minimum=2)
        return cls(
            models=model_specs_from_env(),
            model_source=source,
            bundle_dir=Path(os.environ.get("TRANSFIGURE_BUNDLE_DIR", "").strip() or DEFAULT_BUNDLE_DIR),
            device=os.environ.get("TRANSFIGURE_DEVICE", "").strip() or "auto",
            gpus=_env_int("TRANSFIGURE_GPUS", 0, minimum=0) or 0,
            workers=_env_int("TRANSFIGURE_WORKERS", 1) or 1,
            model_workers=_env_int("TRANSFIGURE_MODEL_WORKERS", 1) or 1,
            timeout=_env_float("TRANSFIGURE_TIMEOUT", 60.0),
            max_concurrency=_env_int("TRANSFIGURE_MAX_CONCURRENCY", None),
            max_batch_size=max_batch or 16,
            max_latency_ms=_env_int("TRANSFIGURE_MAX_LATENCY_MS", 50_000) or 50_000,
            max_body_bytes=_env_int("TRANSFIGURE_MAX_BODY_BYTES", 20_000_000) or 20_000_000,
            max_pixels=_max_pixels(),
            min_side=_env_int("TRANSFIGURE_MIN_SIDE", 64) or 64,
        )

    def limits(self) -> dict[str, int]:
        """The request limits, as reported by ``/info``."""
        return {"max_body_bytes": self.max_body_bytes, "max_pixels": self.max_pixels, "min_side": self.min_side}
