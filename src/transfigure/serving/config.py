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
``TRANSFIGURE_MAX_OUTPUT_PIXELS``         largest output (pixels the generator computes) one request may
                                          ask for (1048576 = 1024x1024: one CPU model worker serves it well
                                          inside the timeout; raise it with a GPU)
``TRANSFIGURE_LARGE_OUTPUT_PIXELS``       outputs above this go to the large-job lane, a model service of
                                          their own, so small requests never queue behind them (262144 =
                                          512x512; set it to the output limit to route nothing there)
``TRANSFIGURE_THREADS``,                  torch threads of the model workers of the small and the large
``TRANSFIGURE_LARGE_THREADS``             lane (all cores / half the cores, at least 1)
``TRANSFIGURE_LARGE_NICE``                scheduling niceness added to the large lane's worker (10: it
                                          yields the cores to small requests; 0 to share them evenly)
``TRANSFIGURE_ALLOW_DEV_KEYS``            ``1`` lets ``bentoml serve`` bind a non-loopback address with the
                                          public development watermark key or the self-made signing
                                          certificate (refused otherwise; loopback is always allowed)
========================================  ==========================================================

``bentoml serve`` binds 127.0.0.1 unless told otherwise (``--host`` or ``BENTOML_HOST``); off
loopback it refuses to start without real provenance keys (:func:`check_bind`).
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from transfigure.data.rules import MAX_PIXELS

if TYPE_CHECKING:
    from transfigure.provenance import ProvenanceConfig

#: environment variable through which the main process hands resolved models to the workers
RESOLVED_ENV = "TRANSFIGURE_RESOLVED_MODELS"

DEFAULT_MODEL = "cyclegan"
DEFAULT_ALIAS = "champion"
DEFAULT_BUNDLE_DIR = "data/06_models/serving"
MODEL_SOURCES = ("auto", "registry", "bundle")
#: the address ``bentoml serve`` binds when not told otherwise (set in the service's ``http`` config)
DEFAULT_HOST = "127.0.0.1"
ALLOW_DEV_KEYS_ENV = "TRANSFIGURE_ALLOW_DEV_KEYS"

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


#: the largest output a request may ask for: a paper-size CycleGAN generator (resnet_9blocks, ngf 64) took one CPU
#: model worker 18 s for 1024x1024 on a slow, shared 2-core VM (benchmarks/serve.py --cost), under a third of the
#: 60 s timeout; 1536x1536 took 41 s, 2048x2048 74 s, and 4096x4096 takes minutes
DEFAULT_MAX_OUTPUT_PIXELS = 1024 * 1024
#: outputs above this go to the large-job lane (512x512 already took 3.6 s there, 256x256 0.9 s)
DEFAULT_LARGE_OUTPUT_PIXELS = 512 * 512


def _max_output_pixels(max_pixels: int) -> int:
    value = _env_int("TRANSFIGURE_MAX_OUTPUT_PIXELS", None)
    if value is None:
        return min(DEFAULT_MAX_OUTPUT_PIXELS, max_pixels)
    if value > max_pixels:
        raise ConfigError(
            f"TRANSFIGURE_MAX_OUTPUT_PIXELS={value} is above TRANSFIGURE_MAX_PIXELS={max_pixels}, the largest image "
            "the service takes at all; raise that too"
        )
    return value


def _env_flag(name: str) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name}={raw!r}: use 1 or 0")


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address as ``bentoml serve --host`` takes it) is reachable from this machine only."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


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
    max_output_pixels: int = DEFAULT_MAX_OUTPUT_PIXELS
    large_output_pixels: int = DEFAULT_LARGE_OUTPUT_PIXELS
    threads: int = 1
    large_threads: int = 1
    large_nice: int = 10
    allow_dev_keys: bool = False

    @classmethod
    def from_env(cls) -> ServingConfig:
        source = os.environ.get("TRANSFIGURE_MODEL_SOURCE", "auto").strip() or "auto"
        if source not in MODEL_SOURCES:
            raise ConfigError(f"TRANSFIGURE_MODEL_SOURCE={source!r}: use one of {', '.join(MODEL_SOURCES)}")
        max_batch = _env_int("TRANSFIGURE_MAX_BATCH_SIZE", 16, minimum=2)
        max_pixels = _max_pixels()
        cores = _cores()
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
            max_pixels=max_pixels,
            min_side=_env_int("TRANSFIGURE_MIN_SIDE", 64) or 64,
            max_output_pixels=_max_output_pixels(max_pixels),
            large_output_pixels=_env_int("TRANSFIGURE_LARGE_OUTPUT_PIXELS", DEFAULT_LARGE_OUTPUT_PIXELS)
            or DEFAULT_LARGE_OUTPUT_PIXELS,
            threads=_env_int("TRANSFIGURE_THREADS", cores) or cores,
            large_threads=_env_int("TRANSFIGURE_LARGE_THREADS", max(1, cores // 2)) or 1,
            large_nice=_env_int("TRANSFIGURE_LARGE_NICE", 10, minimum=0) or 0,
            allow_dev_keys=_env_flag(ALLOW_DEV_KEYS_ENV),
        )

    @property
    def grace(self) -> float:
        """How long before the timeout a job's deadline falls: time for a stamped result to reach the client."""
        return min(5.0, max(0.5, 0.05 * self.timeout), self.timeout / 2)

    def job_deadline(self, arrival: float) -> float:
        """The wall-clock deadline of the job of a request that arrived at ``arrival`` (``time.time()``)."""
        return arrival + self.timeout - self.grace

    @property
    def backstop_timeout(self) -> float:
        """BentoML's own traffic timeout of the HTTP service: later than ours (the middleware answers 504
        first, in the service's error shape)."""
        return self.timeout + max(5.0, self.timeout / 2)

    @property
    def model_lane_timeout(self) -> float:
        """BentoML's traffic timeout of the model lanes: far out. Cancelling a handler there cannot stop a
        running batch (it only logs a traceback); the work is bounded by the jobs' deadlines instead."""
        return max(600.0, 10 * self.timeout)

    def http_concurrency(self) -> int | None:
        """Requests in flight per HTTP worker before 503 (``TRANSFIGURE_MAX_CONCURRENCY`` shared by the workers)."""
        return math.ceil(self.max_concurrency / self.workers) if self.max_concurrency else None

    def lane_of(self, output_pixels: int) -> str:
        """``"large"`` for outputs above ``TRANSFIGURE_LARGE_OUTPUT_PIXELS``, else ``"small"``."""
        return "large" if output_pixels > self.large_output_pixels else "small"

    def check_bind(self, host: str, provenance: ProvenanceConfig) -> None:
        """Refuse (:class:`ConfigError`) to serve on a non-loopback ``host`` with development provenance keys.

        Development keys are public (anyone could forge the watermark) or self-made (manifests no
        one else trusts): fine on 127.0.0.1, not on an address others reach, unless
        ``TRANSFIGURE_ALLOW_DEV_KEYS=1`` says so explicitly.
        """
        if is_loopback(host) or self.allow_dev_keys or not provenance.uses_dev_keys:
            return
        missing = "; ".join(provenance.dev_key_problems())
        raise ConfigError(
            f"refusing to serve on {host} (not loopback) with development provenance keys: {missing}. "
            "Configure real keys: TRANSFIGURE_WATERMARK_KEY=<a secret>, TRANSFIGURE_SIGNING_KEY=<PEM private key> and "
            "TRANSFIGURE_SIGNING_CERT=<PEM certificate chain, end-entity first> (for a test deployment, "
            "`transfigure provenance-cert` writes a development chain to conf/local/provenance/ that you can point "
            f"them at); or serve on 127.0.0.1 only (--host 127.0.0.1, the default); or set {ALLOW_DEV_KEYS_ENV}=1 "
            "to serve development keys on purpose"
        )

    def limits(self) -> dict[str, int | float]:
        """The request limits, as reported by ``/info``."""
        return {
            "max_body_bytes": self.max_body_bytes,
            "max_pixels": self.max_pixels,
            "max_output_pixels": self.max_output_pixels,
            "min_side": self.min_side,
            "timeout_s": self.timeout,
        }

    def lanes(self) -> dict[str, dict[str, int | str]]:
        """The model lanes, as reported by ``/info``."""
        return {
            "small": {"outputs": f"<= {self.large_output_pixels} pixels", "threads": self.threads},
            "large": {
                "outputs": f"> {self.large_output_pixels} pixels",
                "threads": self.large_threads,
                "nice": self.large_nice,
            },
        }
