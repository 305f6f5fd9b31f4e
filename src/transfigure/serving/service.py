"""The transfigure BentoML service: ``bentoml serve`` from the project root (declared in bentofile.yaml).

Two services, BentoML's documented pattern for adaptive batching of requests with several
parameters (docs: "Adaptive batching > Handle multiple parameters"):

* :class:`Transfigure` (HTTP, ``TRANSFIGURE_WORKERS`` processes) reads and validates every
  request itself (body limit, content type, parameters, safe decoding of untrusted bytes), and
  answers ``/translate``, ``/verify`` and ``/info``; BentoML adds ``/healthz``, ``/livez``,
  ``/readyz``, ``/metrics`` and ``/docs.json``.
* :class:`TransfigureModel` (``TRANSFIGURE_MODEL_WORKERS`` processes, the GPU when present) owns
  the generators. Its batchable ``translate_batch`` receives the jobs of concurrent requests as
  one list (adaptive batching: ``TRANSFIGURE_MAX_BATCH_SIZE``, ``TRANSFIGURE_MAX_LATENCY_MS``)
  and runs them through :func:`transfigure.inference.translate_and_stamp`, which groups equal
  sizes into generator batches and watermarks, signs and records every output. There is no path
  that returns an unmarked image.

At start-up (``on_deployment``, in ``bentoml serve``'s main process, before any worker) the
configured models (``TRANSFIGURE_MODELS``, default ``cyclegan@champion``) are resolved in the
MLflow registry (``$MLFLOW_TRACKING_URI``, default the project's ``sqlite:///mlruns.db``) or
taken from the Bento's bundle; without them the server does not start and says how to train
and promote a model. Settings: :mod:`transfigure.serving.config`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from transfigure._env import disable_telemetry

disable_telemetry()

import bentoml  # noqa: E402
from pydantic import BaseModel, ConfigDict, Field  # noqa: E402
from starlette.concurrency import run_in_threadpool  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse, Response  # noqa: E402

from transfigure.serving.config import ConfigError, ServingConfig  # noqa: E402
from transfigure.serving.middleware import BodyLimitMiddleware  # noqa: E402
from transfigure.serving.validation import (  # noqa: E402
    TRANSLATE_PARAMS,
    InputError,
    decode_image,
    error_response,
    open_checked,
    output_size,
    parse_translate_params,
    read_upload,
)

logger = logging.getLogger("transfigure.serving")

try:
    CONFIG = ServingConfig.from_env()
except ConfigError as _exc:
    raise SystemExit(f"transfigure service: {_exc}") from None


OUTPUTS = bentoml.metrics.Counter(
    name="transfigure_outputs",
    documentation="Stamped images returned by /translate",
    labelnames=["model", "version", "format"],
)
REFUSED = bentoml.metrics.Counter(
    name="transfigure_refused_requests",
    documentation="Requests answered with a JSON error, by endpoint, status and error",
    labelnames=["endpoint", "status", "error"],
)


# -- the wire format between the two services (pickled over a local socket) ----------------------------
class TranslationJob(BaseModel):
    """One image to translate, decoded and validated by the HTTP service."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    image: Any = Field(description="the decoded PIL image")
    source: str = Field(description="where the image came from, for error messages")
    model: str | None = None
    direction: str | None = None
    width: int | None = None
    height: int | None = None
    fmt: str = "PNG"
    quality: int | None = None


class TranslationResult(BaseModel):
    """The stamped output of one job, or why it was refused (``status`` >= 400)."""

    status: int = 200
    error: str | None = None
    detail: str | None = None
    data: bytes = b""
    media_type: str = ""
    provenance_id: str = ""
    manifest: dict[str, Any] = Field(default_factory=dict)
    model: str = ""
    version: str = ""
    variant: str | None = None
    run_id: str | None = None


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
        """What OpenAPI (/docs.json) shows: a multipart upload (the raw body with ``Content-Type: image/*`` works too)."""
        return {
            "title": "ImageUpload",
            "type": "object",
            "properties": {
                "file": {
                    "type": "string",
                    "format": "binary",
                    "description": "the image (PNG, JPEG, WebP, BMP, TIFF, GIF)",
                },
                **{
                    p: {"type": "string", "description": "also accepted as a query parameter"} for p in TRANSLATE_PARAMS
                },
            },
            "required": ["file"],
        }

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
        return {
            "title": "VerificationReport",
            "type": "object",
            "properties": {k: {"type": "object"} for k in ("watermark", "manifest", "ledger")},
        }


# -- the model service -------------------------------------------------------------------------------
_MODEL_SERVICE_OPTIONS: dict[str, Any] = {
    "name": "transfigure-model",
    "workers": CONFIG.model_workers,
    "traffic": {"timeout": CONFIG.timeout},
    # BentoML 1.4.39's client replaces its connection pool every 100 requests / 300 s by closing the
    # old one, in-flight requests included ("Server disconnected" under load, bentoml/BentoML#5540):
    # keep one pool for the life of the worker instead.
    "runner_connection": {"max_requests": 2**31 - 1, "max_age": 10.0**9},
}
if CONFIG.gpus:
    _MODEL_SERVICE_OPTIONS["resources"] = {"gpu": CONFIG.gpus}


@bentoml.service(**_MODEL_SERVICE_OPTIONS)
class TransfigureModel:
    """Owns the generators; translates and stamps adaptive batches of jobs."""

    def __init__(self) -> None:
        from transfigure.provenance import ProvenanceConfig
        from transfigure.serving.models import load_models

        self.models = load_models(CONFIG)
        self.provenance = ProvenanceConfig.from_env()

    @bentoml.api(batchable=True, max_batch_size=CONFIG.max_batch_size, max_latency_ms=CONFIG.max_latency_ms)
    def translate_batch(self, jobs: list[TranslationJob]) -> list[TranslationResult]:
        """Translate and stamp the jobs of concurrent requests; one result per job, in order."""
        from transfigure.serving.models import run_jobs

        results = run_jobs(self.models, jobs, provenance=self.provenance, batch_size=CONFIG.max_batch_size)
        return [TranslationResult(**r) for r in results]

    @bentoml.api
    async def describe(self) -> list[dict[str, Any]]:
        """The served models, the default first."""
        return [m.describe() for m in self.models.values()]


# -- the HTTP service --------------------------------------------------------------------------------
_SERVICE_OPTIONS: dict[str, Any] = {
    "name": "transfigure",
    "workers": CONFIG.workers,
    "traffic": {"timeout": CONFIG.timeout},
}
if CONFIG.max_concurrency:
    _SERVICE_OPTIONS["traffic"]["max_concurrency"] = CONFIG.max_concurrency


@bentoml.service(**_SERVICE_OPTIONS)
class Transfigure:
    """Image-to-image translation with provenance: every output is watermarked, signed and recorded."""

    model = bentoml.depends(TransfigureModel)

    @bentoml.on_deployment
    def resolve_models() -> None:  # type: ignore[misc]
        """Once per ``bentoml serve``, before workers start: pin each ``name@alias`` to a version and
        download it, or stop the server with instructions when a model is missing."""
        from transfigure.serving.config import RESOLVED_ENV
        from transfigure.serving.models import ModelUnavailable
        from transfigure.serving.models import resolve_models as resolve

        config = CONFIG
        if Transfigure.bento is not None and not config.bundle_dir.is_absolute():
            # serving a built Bento: its bundled models lie in the Bento, not in the working directory
            config = replace(config, bundle_dir=Path(Transfigure.bento.path_of("src")) / config.bundle_dir)
        try:
            resolved = resolve(config)
        except ModelUnavailable as exc:
            raise SystemExit(f"transfigure service cannot start: {exc}") from None
        os.environ[RESOLVED_ENV] = json.dumps([r.to_dict() for r in resolved])

    def __init__(self) -> None:
        from transfigure.provenance import ProvenanceConfig

        self.provenance = ProvenanceConfig.from_env()

    @bentoml.api(route="/translate", input_spec=RawRequest, output_spec=StampedImage)
    async def translate(self, request: Request) -> Response:
        """Translate an image: multipart field ``file`` (or the raw body with ``Content-Type: image/*``).

        Parameters (query string or form fields): ``model`` (default: the first served),
        ``direction`` (AtoB | BtoA for CycleGAN/UNIT), ``width``/``height`` (output size; one
        keeps the aspect ratio), ``format`` (png | jpeg | webp), ``quality`` (1-100, jpeg/webp).
        SPADE models take a label map: a single-channel PNG of class ids.
        Answers the watermarked image (manifest embedded) with ``X-Provenance-Id`` and
        ``X-Model-*`` headers, or JSON with base64 image and manifest for ``Accept: application/json``;
        4xx JSON ``{"error", "detail"}`` for bad input.
        """
        try:
            job = await _read_job(request)
        except InputError as err:
            return _refuse("translate", err.status, err.error, err.detail)
        try:
            result = TranslationResult.model_validate((await self._translate_batch([job]))[0])
        except Exception as exc:  # noqa: BLE001 - the model service is overloaded, timed out or down
            return _upstream_error(exc)
        if result.status != 200:
            return _refuse("translate", result.status, result.error or "error", result.detail or "")
        OUTPUTS.labels(model=result.model, version=result.version, format=job.fmt).inc()
        return _stamped_response(result, as_json="application/json" in request.headers.get("accept", ""))

    async def _translate_batch(self, jobs: list[TranslationJob]) -> list[Any]:
        """Call the model service, once more if a pooled connection turned out closed (the model
        service's keep-alive timeout is shorter than the client's: the request never arrived)."""
        import aiohttp

        try:
            return await self.model.to_async.translate_batch(jobs)
        except aiohttp.ClientConnectionError as exc:
            if isinstance(exc, asyncio.TimeoutError):
                raise
            logger.info("model service connection dropped (%s: %s); retrying once", type(exc).__name__, exc)
            return await self.model.to_async.translate_batch(jobs)

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
            return _refuse("verify", err.status, err.error, err.detail)
        except ImageInputError as exc:
            return _refuse("verify", 422, "unusable image", str(exc))
        return JSONResponse(report)

    @bentoml.api
    async def info(self) -> dict[str, Any]:
        """The served models (variant, version, alias, run id, metrics, device), limits and batching settings."""
        models = await self.model.to_async.describe()
        default = models[0]
        return {
            **default,
            "models": models,
            "limits": CONFIG.limits(),
            "batching": {"max_batch_size": CONFIG.max_batch_size, "max_latency_ms": CONFIG.max_latency_ms},
            "workers": {"http": CONFIG.workers, "model": CONFIG.model_workers},
        }


async def _read_job(request: Request) -> TranslationJob:
    """Read, check and decode a ``/translate`` request into a job for the model service."""
    upload = await read_upload(request, max_body_bytes=CONFIG.max_body_bytes, allowed_params=TRANSLATE_PARAMS)
    params = parse_translate_params(upload.params, min_side=CONFIG.min_side, max_pixels=CONFIG.max_pixels)
    image = await run_in_threadpool(decode_image, upload.data, max_pixels=CONFIG.max_pixels, source=upload.source)
    size = output_size(image.size, params, min_side=CONFIG.min_side, max_pixels=CONFIG.max_pixels)
    return TranslationJob(
        image=image,
        source=upload.source,
        model=params.model,
        direction=params.direction,
        width=size[0] if size else None,
        height=size[1] if size else None,
        fmt=params.fmt,
        quality=params.quality,
    )


def _stamped_response(result: TranslationResult, *, as_json: bool) -> Response:
    """The stamped image (or JSON with it in base64) with the provenance and model headers."""
    headers = {
        "X-Provenance-Id": result.provenance_id,
        "X-Model-Name": result.model,
        "X-Model-Version": result.version,
        "X-Model-Variant": result.variant or "",
        "X-Model-Run-Id": result.run_id or "",
    }
    if as_json:
        doc = {
            "provenance_id": result.provenance_id,
            "media_type": result.media_type,
            "manifest": result.manifest,
            "model": {
                "name": result.model,
                "version": result.version,
                "variant": result.variant,
                "run_id": result.run_id,
            },
            "image": base64.b64encode(result.data).decode("ascii"),
        }
        return JSONResponse(doc, headers=headers)
    ext = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}.get(result.media_type, "bin")
    headers["Content-Disposition"] = f'inline; filename="transfigure-{result.provenance_id}.{ext}"'
    return Response(result.data, media_type=result.media_type, headers=headers)


def _refuse(endpoint: str, status: int, error: str, detail: str) -> Response:
    """A 4xx (or 5xx) JSON error, counted in ``transfigure_refused_requests_total``."""
    REFUSED.labels(endpoint=endpoint, status=str(status), error=error).inc()
    return error_response(status, error, detail)


def _upstream_error(exc: Exception) -> Response:
    """503/504 JSON for a model service that is overloaded, too slow or unreachable."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, asyncio.TimeoutError) or "timeout" in text.lower() or "timed out" in text.lower():
        return _refuse(
            "translate",
            504,
            "model timeout",
            f"the model did not answer within {CONFIG.timeout:g} s (TRANSFIGURE_TIMEOUT)",
        )
    logger.warning("model service call failed: %s", text)
    return _refuse(
        "translate", 503, "model unavailable", f"the model service could not take the request ({text}); retry later"
    )


Transfigure.add_asgi_middleware(BodyLimitMiddleware, max_body_bytes=CONFIG.max_body_bytes)
