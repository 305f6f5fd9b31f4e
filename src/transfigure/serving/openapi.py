"""The service's API contract: the OpenAPI document ``/docs.json`` serves.

BentoML generates a document from the service's IO descriptors, but it can only say one media type
per request and per answer, and it declares the same 400/404/500 for every endpoint whatever they
answer, with its own error schemas. :func:`contract` takes BentoML's document and completes it from
the code that enforces the contract, so the two cannot drift:

* ``/translate``'s parameters: :class:`~transfigure.serving.validation.TranslateParams` (its fields'
  enums and ranges) with the ``width``/``height`` bounds of the served limits;
* both request forms (multipart with :data:`~.validation.FILE_FIELDS` and
  :data:`~.validation.TRANSLATE_FILES`; a raw ``image/*`` or :data:`~.validation.RAW_BODY_TYPES`
  body) and the output media types (:data:`~.validation.OUTPUT_FORMATS`);
* every error status an endpoint answers, with the one error schema
  (:class:`~transfigure.serving.validation.ErrorBody`) the middlewares guarantee;
* the limits of :class:`~transfigure.serving.config.ServingConfig` the worker runs with.

:class:`ContractMiddleware` answers ``GET /docs.json`` with it (BentoML's generator offers no hook
for responses or info); everything else in BentoML's document (further mounted apps, its component
schemas, its ``/schema.json`` for BentoML clients) is kept.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any, Final

from PIL import Image
from pydantic import BaseModel

from transfigure import __version__
from transfigure.serving.config import ServingConfig
from transfigure.serving.http import RESULT_HEADERS, TranslationDocument
from transfigure.serving.middleware import PROBE_PATHS
from transfigure.serving.studio import ASSETS, STUDIO_PATH
from transfigure.serving.validation import (
    DECODE_FORMATS,
    FILE_FIELDS,
    OUTPUT_FORMATS,
    RAW_BODY_TYPES,
    TRANSLATE_FILES,
    ErrorBody,
    translate_params_schema,
)

DOCS_PATH: Final = "/docs.json"
_REF: Final = "#/components/schemas/{model}"
_UNSUPPORTED_TYPE: Final = "no Content-Type, or one that is neither multipart/form-data nor image/*"

DESCRIPTION: Final = """\
Image-to-image translation (Pix2Pix, CycleGAN, UNIT, SPADE) with provenance: every image `/translate`
returns is watermarked, carries a signed manifest and is recorded in the provenance ledger;
`/verify` checks any image for all three.

**Requests.** Send the image as `multipart/form-data` (field `file`; SPADE also takes `instance` and
`style` files) or as the raw body with an image content type
(`curl --data-binary @in.png -H 'Content-Type: image/png' URL`). Parameters go in the query string
or, for multipart requests, in form fields.

**Errors.** Every 4xx/5xx answer is JSON `{"error": ..., "detail": ...}` (schema `ErrorBody`):
`error` names the problem, `detail` says why and how to fix it.
"""

#: the verification report of :func:`transfigure.provenance.verify_image_bytes` (its documented keys)
VERIFICATION_REPORT: Final = {
    "title": "VerificationReport",
    "type": "object",
    "description": "what transfigure provenance the image carries; `verdict` sums it up",
    "required": ["source", "found", "verdict", "image", "watermark", "manifest", "ledger"],
    "properties": {
        "source": {"type": "string", "description": "where the image came from (the form field or the body)"},
        "found": {"type": "boolean", "description": "whether any transfigure provenance was found"},
        "verdict": {
            "type": "string",
            "description": "verified, traced, watermarked, manifest-only, conflict or not-found",
        },
        "image": {"type": "object", "description": "format, media type, size, mode, bytes and SHA-256 of the input"},
        "watermark": {"type": "object", "description": "the invisible watermark: detected, payload, confidence"},
        "manifest": {"type": "object", "description": "the embedded signed manifest: status (valid, absent, ...)"},
        "ledger": {
            "type": "object",
            "nullable": True,
            "description": "the ledger's record of the output (null when none matches)",
        },
    },
}


def _oas30(schema: Any) -> Any:
    """A pydantic (JSON Schema 2020-12) schema in OpenAPI 3.0's dialect: ``X | None`` as ``nullable``."""
    if isinstance(schema, list):
        return [_oas30(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _oas30(v) for k, v in schema.items()}
    branches = out.get("anyOf")
    if isinstance(branches, list) and {"type": "null"} in branches:
        rest = [b for b in branches if b != {"type": "null"}]
        del out["anyOf"]
        out.update(rest[0] if len(rest) == 1 else {"anyOf": rest})
        out["nullable"] = True
    if "const" in out:
        out["enum"] = [out.pop("const")]
    return out


def _referenced(root: Any, schemas: dict[str, Any]) -> set[str]:
    """The component schemas ``root`` refers to, directly or through other schemas."""
    prefix = _REF.format(model="")
    found: set[str] = set()
    pending = [root]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(prefix) and ref[len(prefix) :] not in found:
                name = ref[len(prefix) :]
                found.add(name)
                pending.append(schemas.get(name))
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return found & set(schemas)


def _model_schemas(*models: type[BaseModel]) -> dict[str, Any]:
    """Component schemas of pydantic models (nested models as components of their own)."""
    schemas: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template=_REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return {name: _oas30(s) for name, s in schemas.items()}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref("ErrorBody")}}}


def _binary(description: str) -> dict[str, Any]:
    return {"type": "string", "format": "binary", "description": description}


def _upload_body(
    config: ServingConfig, *, files: tuple[str, ...], params: dict[str, Any], label_maps: bool
) -> dict[str, Any]:
    """The two request forms: multipart (the image, further ``files``, ``params`` as fields) or the raw image."""
    image, *aliases = FILE_FIELDS
    what = f"the image ({', '.join(DECODE_FORMATS)}{'; a single-channel label map for SPADE' if label_maps else ''})"
    properties = {image: _binary(f"{what}; also accepted as field {', '.join(map(repr, aliases))}")}
    properties |= {f: _binary(f"SPADE only: the {f} image") for f in files}
    properties |= params
    multipart = {
        "schema": {"type": "object", "required": [image], "properties": properties},
        "encoding": {f: {"contentType": "image/*"} for f in (image, *files)},
    }
    raw = {"schema": _binary(what)}
    return {
        "required": True,
        "description": f"at most {config.max_body_bytes:,} bytes (TRANSFIGURE_MAX_BODY_BYTES), "
        f"images of at most {config.max_pixels:,} pixels (TRANSFIGURE_MAX_PIXELS)",
        "content": {"multipart/form-data": multipart, "image/*": raw, **{t: raw for t in RAW_BODY_TYPES}},
    }


def upload_schema(config: ServingConfig) -> dict[str, Any]:
    """``/translate``'s multipart form (what BentoML's ``/schema.json`` shows for the upload endpoints)."""
    params = translate_params_schema(min_side=config.min_side, max_pixels=config.max_pixels)
    body = _upload_body(config, files=TRANSLATE_FILES, params=params, label_maps=True)
    return {"title": "ImageUpload", **body["content"]["multipart/form-data"]["schema"]}


def _body_limit(config: ServingConfig) -> str:
    return f"request body over {config.max_body_bytes:,} bytes (TRANSFIGURE_MAX_BODY_BYTES)"


def _upload_errors(config: ServingConfig, *, translate: bool) -> dict[str, Any]:
    """The 4xx answers of an endpoint that reads an image (:mod:`.validation`; for ``/translate`` also
    :mod:`.http` and the model lanes' refusals)."""
    bad_request = "malformed request: unknown, conflicting or invalid parameter or form field, bad multipart body, "
    too_large = f"{_body_limit(config)}; an image over {config.max_pixels:,} pixels (TRANSFIGURE_MAX_PIXELS)"
    unusable = "the bytes are no usable image: not an image, truncated, corrupt, unsupported mode"
    if not translate:
        bad_request += "empty image"
        return {
            "400": _error(bad_request),
            "413": _error(too_large),
            "415": _error(_UNSUPPORTED_TYPE),
            "422": _error(unusable),
        }
    return {
        "400": _error(f"{bad_request}empty image, an option the model cannot take (style, seed, instance map)"),
        "404": _error("unknown model: `model` names no served model (see /info)"),
        "413": _error(
            f"{too_large}; an output over {config.max_output_pixels:,} pixels (TRANSFIGURE_MAX_OUTPUT_PIXELS)"
        ),
        "415": _error(_UNSUPPORTED_TYPE),
        "422": _error(
            f"{unusable}, smaller than {config.min_side} px, label ids the model does not know, "
            "an instance map of another size"
        ),
    }


def _server_errors(
    config: ServingConfig, *, probe: bool = False, translate: bool = False, only: str | None = None
) -> dict[str, Any]:
    """500 and 504 (:mod:`.middleware`) for every request; 503 for those the concurrency limit may refuse (not the
    probes); ``only``: just that one of them."""
    errors = {"500": _error("an unexpected error (the server log has the traceback)")}
    if not probe:
        errors["503"] = _error(
            "overloaded: too many requests in flight (TRANSFIGURE_MAX_CONCURRENCY; see Retry-After)"
            + ("; or a model lane is overloaded or down" if translate else "")
        )
    errors["504"] = _error(f"not finished within {config.timeout:g} s (TRANSFIGURE_TIMEOUT)")
    return {only: errors[only]} if only else errors


def _translate(op: dict[str, Any], config: ServingConfig) -> None:
    params = translate_params_schema(min_side=config.min_side, max_pixels=config.max_pixels)
    headers = {name: {"description": text, "schema": {"type": "string"}} for name, text in RESULT_HEADERS.items()}
    Image.init()  # Pillow's MIME table fills as its plugins load
    images = sorted({Image.MIME[f] for f in OUTPUT_FORMATS.values()})
    op["parameters"] = [
        {"name": name, "in": "query", "required": False, "description": schema.get("description", ""), "schema": schema}
        for name, schema in params.items()
    ]
    op["requestBody"] = _upload_body(config, files=TRANSLATE_FILES, params=params, label_maps=True)
    op["responses"] = {
        "200": {
            "description": "the stamped image (watermarked, manifest embedded, recorded in the ledger) in the "
            "requested `format`; JSON with the image in base64 for `Accept: application/json`",
            "headers": headers,
            "content": {
                **{m: {"schema": _binary("the stamped image")} for m in images},
                "application/json": {"schema": _ref(TranslationDocument.__name__)},
            },
        },
        **_upload_errors(config, translate=True),
        **_server_errors(config, translate=True),
    }


def _verify(op: dict[str, Any], config: ServingConfig) -> None:
    op.pop("parameters", None)  # /verify takes none: any query parameter is refused (400)
    op["requestBody"] = _upload_body(config, files=(), params={}, label_maps=False)
    op["responses"] = {
        "200": {
            "description": "the verification report",
            "content": {"application/json": {"schema": _ref("VerificationReport")}},
        },
        **_upload_errors(config, translate=False),
        **_server_errors(config),
    }


def _bentoml_api(op: dict[str, Any], config: ServingConfig) -> None:
    """An endpoint BentoML reads itself (``/info``): its JSON body is validated by BentoML (400)."""
    generated = {str(status): answer for status, answer in op.get("responses", {}).items()}  # int keys before JSON
    ok = generated.get("200", {"description": "Successful Response"})
    op["responses"] = {
        "200": ok,
        "400": _error("the JSON body is not valid for this endpoint"),
        "413": _error(_body_limit(config)),
        **_server_errors(config),
    }


def _infra(path: str, config: ServingConfig) -> dict[str, Any]:
    """BentoML's health, metrics and contract routes, with what they answer here."""
    if path == DOCS_PATH:  # answered before the timeout and concurrency limit (ContractMiddleware sits outside them)
        json_doc = {"application/json": {"schema": {"type": "object"}}}
        return {"200": {"description": "this document", "content": json_doc}, **_server_errors(config, only="500")}
    if path == "/metrics":
        ok: dict[str, Any] = {
            "description": "Prometheus metrics (text exposition format)",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    else:
        ok = {"description": "ready: both model lanes answer" if path == "/readyz" else "alive"}
    responses = {"200": ok, **_server_errors(config, probe=True)}
    if path == "/readyz":
        responses["503"] = _error("not ready: a model lane did not answer (down, restarting or still loading)")
    return responses


def _studio_paths(config: ServingConfig) -> dict[str, Any]:
    """The web studio's routes (a mounted Starlette app, which BentoML's generator does not see): its page files,
    the Models view's data and the sample grids that data names."""
    errors = _server_errors(config)

    def get(summary: str, media: str, schema: dict[str, Any], **more: Any) -> dict[str, Any]:
        ok = {"description": summary, "content": {media: {"schema": schema}}}
        return {"get": {"tags": ["Studio"], "summary": summary, "responses": {"200": ok, **more, **errors}}}

    text = {"type": "string"}
    paths = {
        f"{STUDIO_PATH}/{'' if name == 'index.html' else name}": get(f"the studio's {name}", media.split(";")[0], text)
        for name, media in ASSETS.items()
    }
    paths[f"{STUDIO_PATH}/api/models"] = get(
        "the served models with their champion/challenger versions, metrics and sample-grid URLs",
        "application/json",
        {"type": "object", "required": ["models"], "properties": {"models": {"type": "array", "items": {}}}},
    )
    grid = get(
        "a served version's sample grid",
        "image/png",
        {"type": "string", "format": "binary"},
        **{"404": _error("no sample grid for this model and version")},
    )
    grid["get"]["parameters"] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}} for name in ("model", "version")
    ]
    paths[f"{STUDIO_PATH}/api/grid/{{model}}/{{version}}"] = grid
    return paths


def contract(generated: dict[str, Any], config: ServingConfig) -> dict[str, Any]:
    """The full API contract: BentoML's generated document ``generated`` completed for ``config``."""
    doc = copy.deepcopy(generated)
    doc["info"] = {
        "title": "transfigure",
        "version": __version__,
        "description": DESCRIPTION,
        "x-limits": config.limits(),
    }
    paths = doc.setdefault("paths", {})
    components = doc.setdefault("components", {})
    for path in (*sorted(PROBE_PATHS), DOCS_PATH):
        item = paths.setdefault(path, {"get": {"tags": ["Infrastructure"]}})
        item.setdefault("get", {})["responses"] = _infra(path, config)
    for path, item in paths.items():
        op = item.get("post")
        if op is None or "x-bentoml-name" not in op:
            continue  # not one of this service's APIs (a mounted app's route)
        if path == "/translate":
            _translate(op, config)
        elif path == "/verify":
            _verify(op, config)
        else:
            _bentoml_api(op, config)
    paths.update(_studio_paths(config))
    components["responses"] = {
        "NotFound": _error("no such route (every answer to an unknown path)"),
        "MethodNotAllowed": _error("the route does not take this method (every answer to a wrong method)"),
    }
    schemas = components.setdefault("schemas", {})
    schemas.update(_model_schemas(ErrorBody, TranslationDocument))
    schemas["VerificationReport"] = VERIFICATION_REPORT
    # BentoML's own error and task schemas, and its IO descriptors' ones, are no longer referred to: dropped
    used = _referenced([paths, components["responses"]], schemas)
    components["schemas"] = {name: _oas30(schemas[name]) for name in sorted(used)}
    return doc


class ContractMiddleware:
    """Answer ``GET``/``HEAD`` :data:`DOCS_PATH` with ``document()`` (computed once); all else passes through."""

    def __init__(self, app: Any, document: Callable[[], dict[str, Any]]) -> None:
        self.app = app
        self.document = document
        self.body: bytes | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") != DOCS_PATH or scope.get("method") not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        if self.body is None:
            self.body = json.dumps(self.document()).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(self.body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": self.body if scope["method"] == "GET" else b""})
