"""The HTTP workers' side of ``/translate``: a request becomes a job, a result becomes a response.

:func:`read_job` reads, checks and decodes a request (body limit, parameters, untrusted image bytes,
the output-size limit) into a :class:`~transfigure.serving.jobs.TranslationJob` with its deadline;
the service hands the job to a model lane (:mod:`transfigure.serving.runner` runs it there) and
:func:`answer` turns the :class:`~transfigure.serving.jobs.TranslationResult` into the HTTP answer.
Every refusal is JSON ``{"error", "detail"}`` and counted in ``transfigure_refused_requests_total``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import time
from typing import Any, Final

import bentoml
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from transfigure.serving.config import ServingConfig
from transfigure.serving.jobs import TranslationJob, TranslationResult
from transfigure.serving.middleware import ARRIVAL_KEY, timeout_detail
from transfigure.serving.validation import (
    TRANSLATE_FILES,
    TRANSLATE_PARAMS,
    InputError,
    decode_image,
    error_response,
    output_size,
    parse_translate_params,
    read_upload,
)

logger = logging.getLogger("transfigure.serving")

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


#: the headers of a stamped answer (image or JSON), and what each holds
RESULT_HEADERS: Final = {
    "X-Provenance-Id": "the output's provenance id (16 hex digits): its watermark payload and ledger key",
    "X-Model-Name": "the registered model that translated the image",
    "X-Model-Version": "that model's registry version",
    "X-Model-Variant": "its GAN variant (pix2pix, cyclegan, unit, spade)",
    "X-Model-Run-Id": "the MLflow run that trained it",
}


class ModelRef(BaseModel):
    """The model that made an output."""

    name: str
    version: str
    variant: str | None
    run_id: str | None


class TranslationDocument(BaseModel):
    """``/translate``'s answer to ``Accept: application/json``: the stamped image in base64, with its manifest."""

    provenance_id: str = Field(description="the output's provenance id (16 hex digits)")
    media_type: str = Field(description="the image's media type (image/png, image/jpeg or image/webp)")
    manifest: dict[str, Any] = Field(description="the signed provenance manifest embedded in the image")
    model: ModelRef
    image: str = Field(description="the stamped image, base64-encoded")


async def read_job(request: Request, config: ServingConfig) -> TranslationJob:
    """Read, check and decode a ``/translate`` request into a job (raises :class:`InputError`)."""
    upload = await read_upload(
        request, max_body_bytes=config.max_body_bytes, allowed_params=TRANSLATE_PARAMS, allowed_files=TRANSLATE_FILES
    )
    params = parse_translate_params(upload.params, min_side=config.min_side, max_pixels=config.max_pixels)
    image = await run_in_threadpool(decode_image, upload.data, max_pixels=config.max_pixels, source=upload.source)
    size = output_size(
        image.size,
        params,
        min_side=config.min_side,
        max_pixels=config.max_pixels,
        max_output_pixels=config.max_output_pixels,
    )
    instance = style = style_key = None
    if "instance" in upload.files:
        data, source = upload.files["instance"]
        instance = await run_in_threadpool(decode_image, data, max_pixels=config.max_pixels, source=source)
        if instance.size != image.size:
            raise InputError(
                422,
                "instance map size mismatch",
                f"{source} is {instance.width}x{instance.height} but the label map is {image.width}x{image.height}; "
                "they must have the same size",
            )
    if "style" in upload.files:
        data, source = upload.files["style"]
        if params.seed is not None:
            raise InputError(
                400, "conflicting parameters", "seed and a style image exclude each other: the style image sets z"
            )
        style = await run_in_threadpool(decode_image, data, max_pixels=config.max_pixels, source=source)
        style_key = hashlib.sha256(data).hexdigest()
    arrival = request.scope.get(ARRIVAL_KEY, time.time())
    return TranslationJob(
        image=image,
        source=upload.source,
        model=params.model,
        direction=params.direction,
        width=size[0] if size else None,
        height=size[1] if size else None,
        fmt=params.fmt,
        quality=params.quality,
        instance=instance,
        style=style,
        style_key=style_key,
        seed=params.seed,
        deadline=config.job_deadline(arrival),
    )


def answer(result: TranslationResult, *, fmt: str, as_json: bool, config: ServingConfig) -> Response:
    """The HTTP answer to a job's result: the stamped image (or JSON), or the refusal."""
    if result.status == 504:
        return refuse("translate", 504, "timeout", timeout_detail(config.timeout))
    if not result.ok:
        return refuse("translate", result.status, result.error or "error", result.detail or "")
    OUTPUTS.labels(model=result.model, version=result.version, format=fmt).inc()
    return stamped_response(result, as_json=as_json)


def stamped_response(result: TranslationResult, *, as_json: bool) -> Response:
    """The stamped image (or JSON with it in base64) with the provenance and model headers."""
    values = (result.provenance_id, result.model, result.version, result.variant or "", result.run_id or "")
    headers = dict(zip(RESULT_HEADERS, values, strict=True))
    if as_json:
        doc = TranslationDocument(
            provenance_id=result.provenance_id,
            media_type=result.media_type,
            manifest=result.manifest,
            model=ModelRef(name=result.model, version=result.version, variant=result.variant, run_id=result.run_id),
            image=base64.b64encode(result.data).decode("ascii"),
        )
        return JSONResponse(doc.model_dump(), headers=headers)
    ext = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}.get(result.media_type, "bin")
    headers["Content-Disposition"] = f'inline; filename="transfigure-{result.provenance_id}.{ext}"'
    return Response(result.data, media_type=result.media_type, headers=headers)


def refuse(endpoint: str, status: int, error: str, detail: str) -> Response:
    """A 4xx (or 5xx) JSON error, counted in ``transfigure_refused_requests_total``."""
    REFUSED.labels(endpoint=endpoint, status=str(status), error=error).inc()
    return error_response(status, error, detail)


def upstream_error(exc: Exception, lane: str, config: ServingConfig) -> Response:
    """503/504 JSON for a model lane that is overloaded, too slow or unreachable."""
    text = f"{type(exc).__name__}: {exc}"
    status = int(getattr(exc, "error_code", 0) or 0)
    if isinstance(exc, asyncio.TimeoutError) or status == 504 or "timed out" in text.lower():
        return refuse("translate", 504, "timeout", timeout_detail(config.timeout))
    logger.warning("model service (%s lane) call failed: %s", lane, text)
    if status == 503:  # BentoML's adaptive batching refuses work it cannot start within max_latency_ms
        detail = f"the {lane}-job model lane has more queued work than it can start in time; retry later"
        return refuse("translate", 503, "overloaded", detail)
    return refuse(
        "translate",
        503,
        "model unavailable",
        f"the {lane}-job model service could not take the request ({text}); retry later",
    )
