"""The transfigure BentoML service: ``bentoml serve`` from the project root (declared in bentofile.yaml).

This module only declares the services; the work lives beside it. Three services, each its own
processes (BentoML's documented pattern for adaptive batching of requests with several
parameters, "Adaptive batching > Handle multiple parameters"):

* :class:`Transfigure` (HTTP, ``TRANSFIGURE_WORKERS`` processes) answers ``/translate``,
  ``/verify`` and ``/info``, and serves the web studio at ``/studio/`` (:mod:`.studio`); BentoML adds ``/healthz``, ``/livez``, ``/readyz``, ``/metrics`` and
  ``/docs.json``. It reads and checks every request itself (:mod:`.http`, :mod:`.validation`) into
  a :class:`~transfigure.serving.jobs.TranslationJob` and routes it by output size to a model lane.
* :class:`TransfigureModel` (the small-job lane, ``TRANSFIGURE_MODEL_WORKERS`` processes, the GPU
  when present) and :class:`TransfigureModelLarge` (the large-job lane: outputs above
  ``TRANSFIGURE_LARGE_OUTPUT_PIXELS``, one process with fewer threads and a lower CPU priority)
  own the generators. Their batchable ``translate_batch`` receives the jobs of concurrent requests
  as one list (adaptive batching) and runs them (:func:`~transfigure.serving.runner.run_jobs`)
  through :func:`transfigure.inference.translate_and_stamp`, which watermarks, signs and records
  every output. There is no path that returns an unmarked image.

At start-up (``on_deployment``, in ``bentoml serve``'s main process, before any worker) the
service refuses to listen beyond loopback with development provenance keys
(:meth:`~transfigure.serving.config.ServingConfig.check_bind`), then resolves the configured
models (:mod:`.resolution`); without them it does not start and says how to train and promote
one. Settings: :mod:`transfigure.serving.config`. Middlewares (:mod:`.middleware`): one error
shape, request timeout and concurrency limit, body limit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from transfigure._env import disable_telemetry

disable_telemetry()
# OpenMP threads that sleep instead of spinning: the model lanes share the cores (a spinning torch on
# an oversubscribed CPU is 20-60x slower); set before any worker imports torch
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import bentoml  # noqa: E402
from pydantic import ConfigDict  # noqa: E402
from starlette.concurrency import run_in_threadpool  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse, Response  # noqa: E402

from transfigure.serving.config import DEFAULT_HOST, ConfigError, ServingConfig  # noqa: E402
from transfigure.serving.http import answer, read_job, refuse, upstream_error  # noqa: E402
from transfigure.serving.jobs import TranslationJob, TranslationResult  # noqa: E402
from transfigure.serving.middleware import (  # noqa: E402
    BodyLimitMiddleware,
    ErrorShapeMiddleware,
    TrafficMiddleware,
)
from transfigure.serving.openapi import VERIFICATION_REPORT, ContractMiddleware, contract, upload_schema  # noqa: E402
from transfigure.serving.studio import STUDIO_PATH, studio_app  # noqa: E402
from transfigure.serving.studio.catalog import STUDIO_ENV, models_summary  # noqa: E402
from transfigure.serving.validation import InputError, open_checked, read_upload  # noqa: E402

logger = logging.getLogger("transfigure.serving")

try:
    CONFIG = ServingConfig.from_env()
except ConfigError as _exc:
    raise SystemExit(f"transfigure service: {_exc}") from None

#: how long ``/readyz`` waits for each model lane's own readiness probe
READY_PROBE_S = 0.5


class RawRequest(bentoml.IODescriptor):
    """Input spec that hands an endpoint the undecoded starlette ``Request``.

    BentoML would otherwise read and parse the body itself (no size limit, 500 for undecodable
    images); the endpoint reads it with :func:`~transfigure.serving.validation.read_upload`.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    request: Request

    @classmethod
    async def from_http_request(cls, request: Request, serde: Any) -> RawRequest:  # type: ignore[override]
        return cls.model_construct(request=request)

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """A multipart upload (/docs.json, :func:`~transfigure.serving.openapi.contract`, adds the raw-body form)."""
        return upload_schema(CONFIG)

    @classmethod
    def mime_type(cls) -> str:
        return "multipart/form-data"


class StampedImage(bentoml.IODescriptor):
    """Output spec (for OpenAPI) of ``/translate``: the watermarked image, its manifest embedded."""

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return {
            "title": "StampedImage",
            "type": "string",
            "format": "binary",
            "description": "PNG, JPEG or WebP; headers X-Provenance-Id, X-Model-Name, X-Model-Version",
        }

    @classmethod
    def mime_type(cls) -> str:
        return "image/png"


class VerificationReport(bentoml.IODescriptor):
    """Output spec (for OpenAPI) of ``/verify``: the verification JSON of transfigure.provenance."""

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return VERIFICATION_REPORT


# -- the model lanes ---------------------------------------------------------------------------------
def _model_service_options(name: str, workers: int, gpus: int) -> dict[str, Any]:
    options: dict[str, Any] = {
        "name": name,
        "workers": workers,
        # the HTTP service answers 504 at TRANSFIGURE_TIMEOUT; here the job's deadline drops the work
        "traffic": {"timeout": CONFIG.model_lane_timeout},
        # BentoML 1.4.39's client replaces its connection pool every 100 requests / 300 s by closing the
        # old one, in-flight requests included ("Server disconnected" under load, bentoml/BentoML#5540):
        # keep one pool for the life of the worker instead.
        "runner_connection": {"max_requests": 2**31 - 1, "max_age": 10.0**9},
    }
    if gpus:
        options["resources"] = {"gpu": gpus}
    return options


class _ModelLane:
    """A model service: owns the generators, translates and stamps adaptive batches of jobs."""

    lane = "small"

    def __init__(self) -> None:
        from transfigure.provenance import ProvenanceConfig
        from transfigure.serving.runner import load_models

        large = self.lane == "large"
        if large and CONFIG.large_nice:
            os.nice(CONFIG.large_nice)  # the cores go to the small-job lane first
        self.models = load_models(CONFIG, threads=CONFIG.large_threads if large else CONFIG.threads)
        self.provenance = ProvenanceConfig.from_env()

    @bentoml.api(batchable=True, max_batch_size=CONFIG.max_batch_size, max_latency_ms=CONFIG.max_latency_ms)
    def translate_batch(self, jobs: list[TranslationJob]) -> list[TranslationResult]:
        """Translate and stamp the jobs of concurrent requests; one result per job, in order."""
        from transfigure.serving.runner import run_jobs

        return run_jobs(self.models, jobs, provenance=self.provenance, batch_size=CONFIG.max_batch_size)

    @bentoml.api
    async def describe(self) -> list[dict[str, Any]]:
        """The served models, the default first."""
        return [m.describe() for m in self.models.values()]


@bentoml.service(**_model_service_options("transfigure-model", CONFIG.model_workers, CONFIG.gpus))
class TransfigureModel(_ModelLane):
    """The small-job lane: outputs up to ``TRANSFIGURE_LARGE_OUTPUT_PIXELS``."""

    lane = "small"


# declares no GPUs of its own (BentoML would hand it GPUs the small lane does not hold, or none): it sees them
# all and runs on the first, beside the small lane
@bentoml.service(**_model_service_options("transfigure-model-large", 1, 0))
class TransfigureModelLarge(_ModelLane):
    """The large-job lane: outputs above ``TRANSFIGURE_LARGE_OUTPUT_PIXELS``, so small requests never queue behind them."""

    lane = "large"


# -- the HTTP service --------------------------------------------------------------------------------
_SERVICE_OPTIONS: dict[str, Any] = {
    "name": "transfigure",
    "workers": CONFIG.workers,
    # a backstop: TrafficMiddleware answers first, in the service's error shape
    "traffic": {"timeout": CONFIG.backstop_timeout},
    # `bentoml serve` binds this unless given --host / BENTOML_HOST (BentoML's own default is 0.0.0.0)
    "http": {"host": DEFAULT_HOST},
    # /readyz probes the model lanes itself, with a short timeout (__is_ready__); BentoML's probe waits 5 s
    # per dependency, and a model worker that is restarting holds it that long
    "runner_probe": {"enabled": False},
}


def _bind_host() -> str:
    """The address ``bentoml serve`` is about to bind: its ``--host`` (or ``BENTOML_HOST``), else BentoML's
    ``http.host`` setting (this service's default, 127.0.0.1, unless a BentoML config file says otherwise)."""
    import click
    from bentoml.container import BentoMLContainer

    ctx = click.get_current_context(silent=True)
    while ctx is not None:
        if ctx.params.get("host"):
            return str(ctx.params["host"])
        ctx = ctx.parent
    return str(BentoMLContainer.http.host.get() or DEFAULT_HOST)


async def _lane_ready(proxy: Any) -> bool:
    """Whether a model lane answers its ``/readyz`` within :data:`READY_PROBE_S` (down or restarting: no)."""
    if not hasattr(proxy, "is_ready"):  # served in-process (bentoml.depends without a server): always there
        return True
    try:
        return bool(await asyncio.wait_for(proxy.is_ready(timeout=READY_PROBE_S), READY_PROBE_S))
    except Exception:  # noqa: BLE001 - a timeout, a refused or dropped connection: not ready
        return False


@bentoml.service(**_SERVICE_OPTIONS)
class Transfigure:
    """Image-to-image translation with provenance: every output is watermarked, signed and recorded."""

    model = bentoml.depends(TransfigureModel)
    model_large = bentoml.depends(TransfigureModelLarge)

    @bentoml.on_deployment
    def prepare() -> None:  # type: ignore[misc]
        """Once per ``bentoml serve``, before workers start: refuse development provenance keys beyond
        loopback, then pin each ``name@alias`` to a version and download it, or stop the server with
        instructions when a model is missing."""
        from transfigure.provenance import ProvenanceConfig
        from transfigure.serving.config import RESOLVED_ENV
        from transfigure.serving.resolution import ModelUnavailable, resolve_models

        host = _bind_host()
        try:
            CONFIG.check_bind(host, ProvenanceConfig.from_env())
        except ConfigError as exc:
            raise SystemExit(f"transfigure service cannot start: {exc}") from None
        config = CONFIG
        if Transfigure.bento is not None and not config.bundle_dir.is_absolute():
            # serving a built Bento: its bundled models lie in the Bento, not in the working directory
            config = replace(config, bundle_dir=Path(Transfigure.bento.path_of("src")) / config.bundle_dir)
        try:
            resolved = resolve_models(config)
        except ModelUnavailable as exc:
            raise SystemExit(f"transfigure service cannot start: {exc}") from None
        os.environ[RESOLVED_ENV] = json.dumps([r.to_dict() for r in resolved])
        os.environ[STUDIO_ENV] = json.dumps(models_summary(resolved))

    def __init__(self) -> None:
        from transfigure.provenance import ProvenanceConfig

        self.provenance = ProvenanceConfig.from_env()

    async def __is_ready__(self) -> bool:
        """``/readyz``: 200 while both model lanes answer, else 503 within about a second."""
        from starlette.exceptions import HTTPException

        lanes = {"small": self.model, "large": self.model_large}
        ready = await asyncio.gather(*(_lane_ready(proxy) for proxy in lanes.values()))
        down = [lane for lane, ok in zip(lanes, ready) if not ok]
        if down:
            raise HTTPException(
                503,
                detail=f"the {' and '.join(down)}-job model service did not answer within {READY_PROBE_S:g} s "
                "(its worker is down, restarting or still loading the models); retry shortly",
            )
        return True

    @bentoml.api(route="/translate", input_spec=RawRequest, output_spec=StampedImage)
    async def translate(self, request: Request) -> Response:
        """Translate an image: multipart field ``file`` (or the raw body with ``Content-Type: image/*``).

        Parameters (query string or form fields): ``model`` (default: the first served),
        ``direction`` (AtoB | BtoA for CycleGAN/UNIT), ``width``/``height`` (output size; one
        keeps the aspect ratio), ``format`` (png | jpeg | webp), ``quality`` (1-100, jpeg/webp).
        SPADE models take a label map (a single-channel PNG of class ids) and, multipart only, an
        ``instance`` map and a ``style`` image, or a ``seed``.
        Answers the watermarked image (manifest embedded) with ``X-Provenance-Id`` and
        ``X-Model-*`` headers, or JSON with base64 image and manifest for ``Accept: application/json``;
        JSON ``{"error", "detail"}`` otherwise.
        """
        try:
            job = await read_job(request, CONFIG)
        except InputError as err:
            return refuse("translate", err.status, err.error, err.detail)
        lane = CONFIG.lane_of(job.output_pixels)
        try:
            result = TranslationResult.model_validate((await self._translate_batch(lane, [job]))[0])
        except Exception as exc:  # noqa: BLE001 - the model lane is overloaded, timed out or down
            return upstream_error(exc, lane, CONFIG)
        return answer(
            result, fmt=job.fmt, as_json="application/json" in request.headers.get("accept", ""), config=CONFIG
        )

    async def _translate_batch(self, lane: str, jobs: list[TranslationJob]) -> list[Any]:
        """Call a model lane, once more if a pooled connection turned out closed (the model service's
        keep-alive timeout is shorter than the client's: the request never arrived)."""
        import aiohttp

        service = self.model_large if lane == "large" else self.model
        try:
            return await service.to_async.translate_batch(jobs)
        except aiohttp.ClientConnectionError as exc:
            if isinstance(exc, asyncio.TimeoutError):
                raise
            logger.info("model service connection dropped (%s: %s); retrying once", type(exc).__name__, exc)
            return await service.to_async.translate_batch(jobs)

    @bentoml.api(route="/verify", input_spec=RawRequest, output_spec=VerificationReport)
    async def verify(self, request: Request) -> Response:
        """Verify an image (multipart ``file`` or raw body): watermark, signed manifest and ledger record, as JSON."""
        from transfigure.provenance import ImageInputError, verify_image_bytes

        try:
            upload = await read_upload(request, max_body_bytes=CONFIG.max_body_bytes, allowed_params=())
            await run_in_threadpool(open_checked, upload.data, max_pixels=CONFIG.max_pixels, source=upload.source)
            report = await run_in_threadpool(
                verify_image_bytes, upload.data, config=self.provenance, source=upload.source
            )
        except InputError as err:
            return refuse("verify", err.status, err.error, err.detail)
        except ImageInputError as exc:
            return refuse("verify", 422, "unusable image", str(exc))
        return JSONResponse(report)

    @bentoml.api
    async def info(self) -> dict[str, Any]:
        """The served models (variant, version, alias, run id, metrics, device), limits, lanes and batching."""
        models = await self.model.to_async.describe()
        default = models[0]
        return {
            **default,
            "models": models,
            "limits": CONFIG.limits(),
            "lanes": CONFIG.lanes(),
            "batching": {"max_batch_size": CONFIG.max_batch_size, "max_latency_ms": CONFIG.max_latency_ms},
            "workers": {"http": CONFIG.workers, "model": CONFIG.model_workers, "model_large": 1},
        }


# the web studio (a static page calling /translate, /verify and /info) in the same workers, behind the same middlewares
Transfigure.mount_asgi_app(studio_app(), path=STUDIO_PATH)
# outermost first: one error shape for every answer, the API contract at /docs.json, then timeout + concurrency
# limit, then the body limit
Transfigure.add_asgi_middleware(ErrorShapeMiddleware)
Transfigure.add_asgi_middleware(
    ContractMiddleware, document=lambda: contract(Transfigure.openapi_spec.asdict(), CONFIG)
)
Transfigure.add_asgi_middleware(
    TrafficMiddleware,
    timeout=CONFIG.timeout,
    max_concurrency=CONFIG.http_concurrency(),
    limit_name=f"TRANSFIGURE_MAX_CONCURRENCY={CONFIG.max_concurrency} over {CONFIG.workers} HTTP worker(s)",
)
Transfigure.add_asgi_middleware(BodyLimitMiddleware, max_body_bytes=CONFIG.max_body_bytes)
