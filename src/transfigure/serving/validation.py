"""Request validation for the HTTP service: bodies, uploads, parameters and untrusted image bytes.

Every problem becomes an :class:`InputError` carrying an HTTP status (4xx) and a JSON body
``{"error": <what>, "detail": <why, and how to fix it>}``; nothing here raises anything else for
bad input, so a bad request can neither answer 500 nor take a worker down.

Pure functions over bytes and mappings (plus one coroutine reading a starlette ``Request``), so
they are tested without a server.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from PIL import Image, ImageOps
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse

from transfigure.data.rules import LABEL_MODES
from transfigure.untrusted import UntrustedImageError, decode_untrusted, open_untrusted

#: Pillow decoders the service accepts (the others stay switched off: less attack surface)
DECODE_FORMATS: Final = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF", "PPM")
#: ``format=`` values and the encoder each selects
OUTPUT_FORMATS: Final = {"png": "PNG", "jpeg": "JPEG", "jpg": "JPEG", "webp": "WEBP"}
#: raw (non-multipart) request bodies: any ``image/*`` or these
RAW_BODY_TYPES: Final = ("application/octet-stream",)
#: multipart field names that may hold the image
FILE_FIELDS: Final = ("file", "image")
#: further multipart file fields of ``/translate`` (SPADE): the instance-id map and the style image
TRANSLATE_FILES: Final = ("instance", "style")
DIRECTIONS: Final = ("AtoB", "BtoA")
#: ``seed`` may be any unsigned 32-bit integer
MAX_SEED: Final = 2**32 - 1
#: what ``model=`` may name: registry names, nothing a path or a shell could misread
MODEL_NAME_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
#: modes a decoded image may keep on its way to the model (everything else is converted to RGB);
#: every label-map mode, so that a label map reaches the model with its ids intact
_KEEP_MODES: Final = (*LABEL_MODES, "F", "RGB", "RGBA", "LA", "PA", "La", "RGBa")
_TO_RGB_MODES: Final = ("RGBX", "CMYK", "YCbCr", "HSV")

SEND_HINT: Final = (
    "send the image as multipart/form-data (curl -F file=@input.png URL) or as the raw body with an "
    "image content type (curl --data-binary @input.png -H 'Content-Type: image/png' URL)"
)


class ErrorBody(BaseModel):
    """The service's one error shape, ``{"error": ..., "detail": ...}``: every 4xx/5xx answer has it (the
    middlewares rewrite BentoML's and Starlette's own), and /docs.json declares it for every error status."""

    model_config = ConfigDict(extra="forbid", strict=True)

    error: str = Field(description="what went wrong, in a few words (e.g. 'not an image', 'request body too large')")
    detail: str = Field(description="why, and how to fix it")


class InputError(Exception):
    """A request the service refuses: HTTP ``status`` (4xx), short ``error``, explanatory ``detail``."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(f"{status} {error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail

    def response(self) -> JSONResponse:
        return error_response(self.status, self.error, self.detail)


class BodyTooLarge(Exception):
    """Raised by the body-limit middleware's ``receive`` once a body passes the limit."""

    def __init__(self, limit: int, received: int) -> None:
        super().__init__(f"request body passed {limit} bytes ({received} read)")
        self.limit = limit
        self.received = received


def error_response(status: int, error: str, detail: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The service's one error shape (:class:`ErrorBody`) as a response."""
    return JSONResponse(
        ErrorBody(error=error, detail=detail).model_dump(), status_code=status, headers=dict(headers or {})
    )


def body_too_large(limit: int) -> InputError:
    return InputError(
        413,
        "request body too large",
        f"the body is larger than {limit:,} bytes (TRANSFIGURE_MAX_BODY_BYTES); send a smaller image",
    )


# -- bodies and uploads --------------------------------------------------------------------------
@dataclass
class Upload:
    """An image as received: its bytes, where it came from (for messages), the other parameters, and the
    further files (``field -> (bytes, source)``) of the fields the endpoint allows."""

    data: bytes
    source: str
    params: dict[str, str] = field(default_factory=dict)
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)


def media_type_of(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_body(request: Request, max_body_bytes: int) -> bytes:
    """The whole body, refusing (413) a declared or streamed length over ``max_body_bytes``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > max_body_bytes:
        raise body_too_large(max_body_bytes)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body_bytes:
                raise body_too_large(max_body_bytes)
            chunks.append(chunk)
    except BodyTooLarge:
        raise body_too_large(max_body_bytes) from None
    return b"".join(chunks)


def _query_params(request: Request, allowed: tuple[str, ...]) -> dict[str, str]:
    params: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        if key not in allowed:
            raise InputError(400, "unknown parameter", f"query parameter {key!r} is not one of {', '.join(allowed)}")
        if key in params and params[key] != value:
            raise InputError(
                400, "conflicting parameter", f"query parameter {key!r} is given twice with different values"
            )
        params[key] = value
    return params


async def read_upload(
    request: Request, *, max_body_bytes: int, allowed_params: tuple[str, ...], allowed_files: tuple[str, ...] = ()
) -> Upload:
    """The image of a request (multipart field ``file``/``image``, or the raw body) and its parameters.

    Parameters come from the query string and, for multipart requests, from the other form fields;
    multipart requests may carry further files in the fields ``allowed_files``.
    """
    params = _query_params(request, allowed_params)
    media = media_type_of(request)
    if media == "multipart/form-data":
        upload = await _read_multipart(request, params, max_body_bytes, allowed_params, allowed_files)
    elif media.startswith("image/") or media in RAW_BODY_TYPES:
        upload = Upload(await read_body(request, max_body_bytes), f"request body ({media})", params)
    elif not media:
        raise InputError(415, "missing content type", f"the request has no Content-Type header; {SEND_HINT}")
    else:
        raise InputError(415, "unsupported content type", f"Content-Type {media!r} is not accepted; {SEND_HINT}")
    if not upload.data:
        raise InputError(400, "empty image", f"{upload.source} holds 0 bytes; {SEND_HINT}")
    return upload


async def _read_multipart(
    request: Request,
    params: dict[str, str],
    max_body_bytes: int,
    allowed_params: tuple[str, ...],
    allowed_files: tuple[str, ...],
) -> Upload:
    from starlette.exceptions import HTTPException
    from starlette.formparsers import MultiPartException

    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > max_body_bytes:
        raise body_too_large(max_body_bytes)
    try:
        form = await request.form(
            max_files=1 + len(allowed_files), max_fields=len(allowed_params) + 1, max_part_size=64 * 1024
        )
    except BodyTooLarge:
        raise body_too_large(max_body_bytes) from None
    except (MultiPartException, HTTPException) as exc:
        detail = getattr(exc, "message", None) or getattr(exc, "detail", None) or str(exc)
        raise InputError(400, "malformed multipart body", f"{detail}; {SEND_HINT}") from None
    try:
        upload: UploadFile | None = None
        field_name = "file"
        extra: dict[str, UploadFile] = {}
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                if key in allowed_files:
                    if key in extra:
                        raise InputError(400, "conflicting form field", f"file field {key!r} is given twice")
                    extra[key] = value
                    continue
                if key not in FILE_FIELDS:
                    further = f" (further files: {', '.join(allowed_files)})" if allowed_files else ""
                    raise InputError(
                        400, "unknown form field", f"file field {key!r}: put the image in field 'file'{further}"
                    )
                if upload is not None:
                    raise InputError(400, "conflicting form field", "the image is given twice ('file'/'image')")
                upload, field_name = value, key
            elif key in allowed_files:
                raise InputError(400, "form field is not a file", f"form field {key!r} holds text; send it as a file")
            elif key in allowed_params:
                if key in params and params[key] != value:
                    raise InputError(
                        400,
                        "conflicting parameter",
                        f"{key!r} is given as a query parameter and a form field with different values",
                    )
                params[key] = value
            elif key in FILE_FIELDS:
                raise InputError(400, "image field is not a file", f"form field {key!r} holds text; {SEND_HINT}")
            else:
                raise InputError(
                    400,
                    "unknown form field",
                    f"form field {key!r} is not one of {', '.join(('file', *allowed_files, *allowed_params))}",
                )
        if upload is None:
            raise InputError(400, "no image", f"the multipart body has no file field 'file'; {SEND_HINT}")
        data = await upload.read()
        files = {}
        for key, part in extra.items():
            source = f"form field {key!r} ({part.filename or 'no file name'})"
            content = await part.read()
            if not content:
                raise InputError(400, f"empty {key}", f"{source} holds 0 bytes")
            files[key] = (content, source)
        return Upload(data, f"form field {field_name!r} ({upload.filename or 'no file name'})", params, files)
    finally:
        await form.close()


# -- parameters ------------------------------------------------------------------------------------
class TranslateParams(BaseModel):
    """Validated ``/translate`` parameters (the model and direction are checked against the served models later).

    The fields' constraints are the parameters' contract: :func:`parse_translate_params` checks the wire values
    against them and /docs.json publishes them (:func:`translate_params_schema`); only the bounds of
    ``width``/``height`` depend on the limits (:func:`side_range`).
    """

    model_config = ConfigDict(frozen=True, validate_by_name=True, validate_by_alias=True)

    model: str | None = Field(
        None, pattern=MODEL_NAME_PATTERN, description="the served model to use (default: the first served; see /info)"
    )
    direction: Literal[DIRECTIONS] | None = Field(  # type: ignore[valid-type]
        None, description="for two-way models (CycleGAN, UNIT); default: the model's first direction (AtoB)"
    )
    width: int | None = Field(None, description="output width in pixels; given alone, the aspect ratio is kept")
    height: int | None = Field(None, description="output height in pixels; given alone, the aspect ratio is kept")
    fmt: Literal[tuple(sorted(set(OUTPUT_FORMATS.values())))] = Field(  # type: ignore[valid-type]
        "PNG",
        alias="format",
        description="output format (case-insensitive)",
        # on the wire: the names OUTPUT_FORMATS maps to the encoder kept here
        json_schema_extra={"enum": list(OUTPUT_FORMATS), "default": "png"},
    )
    quality: int | None = Field(None, ge=1, le=100, description="JPEG/WebP quality; not for PNG (lossless)")
    seed: int | None = Field(
        None, ge=0, le=MAX_SEED, description="SPADE with a style encoder: the random style; excludes a style image"
    )


#: the ``/translate`` parameters, by their names on the wire (query string or form fields)
TRANSLATE_PARAMS: Final = tuple(f.alias or name for name, f in TranslateParams.model_fields.items())
_WIRE_NAMES: Final = dict(zip(TRANSLATE_PARAMS, TranslateParams.model_fields))


def side_range(*, min_side: int, max_pixels: int) -> tuple[int, int]:
    """The smallest and largest ``width``/``height`` a request may ask for."""
    return min_side, max_pixels // min_side


def _field_range(wire_name: str) -> tuple[int, int]:
    """The ``ge``/``le`` bounds a :class:`TranslateParams` field declares."""
    meta = TranslateParams.model_fields[_WIRE_NAMES[wire_name]].metadata
    return next(m.ge for m in meta if hasattr(m, "ge")), next(m.le for m in meta if hasattr(m, "le"))


def translate_params_schema(*, min_side: int, max_pixels: int) -> dict[str, dict[str, Any]]:
    """JSON schema of each ``/translate`` parameter (wire name -> schema; an absent parameter means its default),
    with the ``width``/``height`` bounds of these limits: what /docs.json publishes."""
    props = TranslateParams.model_json_schema(by_alias=True)["properties"]
    schemas: dict[str, dict[str, Any]] = {}
    for name, prop in props.items():
        prop = dict(prop)
        branches = [b for b in prop.pop("anyOf", []) if b.get("type") != "null"]
        schema = {**(branches[0] if branches else {}), **prop}
        schema.pop("title", None)
        if schema.get("default", ...) is None:
            del schema["default"]
        if name in ("width", "height"):
            schema["minimum"], schema["maximum"] = side_range(min_side=min_side, max_pixels=max_pixels)
        if "enum" in schema:
            schema["type"] = "string"
            schema.pop("const", None)
        schemas[name] = schema
    return schemas


def _int_param(params: Mapping[str, str], key: str, lo: int, hi: int) -> int | None:
    raw = params.get(key)
    if raw is None or raw == "":
        return None
    if not re.fullmatch(r"\s*\d{1,10}\s*", raw):
        raise InputError(400, f"invalid {key}", f"{key}={raw!r} is not a whole number")
    value = int(raw)
    if not lo <= value <= hi:
        raise InputError(400, f"invalid {key}", f"{key}={value} is outside {lo}..{hi}")
    return value


def parse_translate_params(params: Mapping[str, str], *, min_side: int, max_pixels: int) -> TranslateParams:
    """Check the syntax and range of every ``/translate`` parameter against :class:`TranslateParams`."""
    fmt_raw = params.get("format", "png").strip().lower() or "png"
    if fmt_raw not in OUTPUT_FORMATS:
        raise InputError(400, "invalid format", f"format={fmt_raw!r}: use one of {', '.join(OUTPUT_FORMATS)}")
    fmt = OUTPUT_FORMATS[fmt_raw]
    quality = _int_param(params, "quality", *_field_range("quality"))
    if quality is not None and fmt == "PNG":
        raise InputError(400, "invalid quality", "quality applies to format=jpeg or webp; PNG is lossless")
    direction = params.get("direction") or None
    if direction is not None and direction not in DIRECTIONS:
        raise InputError(400, "invalid direction", f"direction={direction!r}: use one of {', '.join(DIRECTIONS)}")
    model = params.get("model") or None
    if model is not None and not re.fullmatch(MODEL_NAME_PATTERN, model):
        raise InputError(400, "invalid model", f"model={model!r} is not a model name")
    sides = side_range(min_side=min_side, max_pixels=max_pixels)
    width = _int_param(params, "width", *sides)
    height = _int_param(params, "height", *sides)
    seed = _int_param(params, "seed", *_field_range("seed"))
    return TranslateParams(
        model=model, direction=direction, width=width, height=height, fmt=fmt, quality=quality, seed=seed
    )


def output_size(
    image_size: tuple[int, int],
    params: TranslateParams,
    *,
    min_side: int,
    max_pixels: int,
    max_output_pixels: int | None = None,
) -> tuple[int, int] | None:
    """The requested output (width, height): both given, or one with the input's aspect ratio kept;
    None keeps the input's size (which must then satisfy the limits itself).

    ``max_output_pixels`` bounds the work of one request (what the generator computes); an output
    above it is refused with 413 naming ``TRANSFIGURE_MAX_OUTPUT_PIXELS``.
    """
    w0, h0 = image_size
    if params.width is None and params.height is None:
        if min(w0, h0) < min_side:
            raise InputError(
                422,
                "image too small",
                f"the image is {w0}x{h0}; both sides must be at least {min_side} pixels "
                "(or ask for a larger output with width/height)",
            )
        if max_output_pixels is not None and w0 * h0 > max_output_pixels:
            raise _output_too_large(w0, h0, max_output_pixels, "the input's size; ask for a smaller width/height")
        return None
    width = params.width if params.width is not None else max(1, round(w0 * params.height / h0))  # type: ignore[operator]
    height = params.height if params.height is not None else max(1, round(h0 * params.width / w0))  # type: ignore[operator]
    if min(width, height) < min_side:
        raise InputError(
            400, "output too small", f"the output would be {width}x{height}; both sides must be at least {min_side}"
        )
    if width * height > max_pixels:
        raise InputError(
            413,
            "output too large",
            f"the output would be {width}x{height} = {width * height:,} pixels, more than {max_pixels:,} "
            "(TRANSFIGURE_MAX_PIXELS)",
        )
    if max_output_pixels is not None and width * height > max_output_pixels:
        raise _output_too_large(width, height, max_output_pixels, "ask for a smaller width/height")
    return width, height


def _output_too_large(width: int, height: int, limit: int, hint: str) -> InputError:
    return InputError(
        413,
        "output too large",
        f"the output would be {width}x{height} = {width * height:,} pixels, more than the {limit:,} one request may "
        f"cost (TRANSFIGURE_MAX_OUTPUT_PIXELS, about {int(limit**0.5)}x{int(limit**0.5)}); {hint}",
    )


# -- untrusted image bytes -------------------------------------------------------------------------
#: how each kind of unusable upload is answered: HTTP status and the short ``error``
_UNTRUSTED_ANSWERS: Final = {
    "empty": (400, "empty image"),
    "not_image": (422, "not an image"),
    "too_large": (413, "image too large"),
    "truncated": (422, "truncated image"),
    "corrupt": (422, "corrupt image"),
}


def _refusal(exc: UntrustedImageError, source: str) -> InputError:
    status, error = _UNTRUSTED_ANSWERS[exc.kind]
    return InputError(
        status,
        error,
        f"{source}: {exc.reason} (TRANSFIGURE_MAX_PIXELS)" if exc.kind == "too_large" else f"{source}: {exc.reason}",
    )


def open_checked(data: bytes, *, max_pixels: int, source: str) -> Image.Image:
    """Identify ``data`` and check its declared size, without decoding pixels (decompression-bomb guard)."""
    try:
        return open_untrusted(data, max_pixels=max_pixels, formats=DECODE_FORMATS)
    except UntrustedImageError as exc:
        raise _refusal(exc, source) from None


def decode_image(data: bytes, *, max_pixels: int, source: str) -> Image.Image:
    """Fully decode untrusted ``data``: size checked before any pixel is decoded, EXIF orientation applied,
    and the mode made transportable (palette and alpha kept; CMYK, YCbCr etc. converted to RGB)."""
    try:
        img = decode_untrusted(data, max_pixels=max_pixels, formats=DECODE_FORMATS)
    except UntrustedImageError as exc:
        raise _refusal(exc, source) from None
    fmt = img.format or "image"
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not lose the pixels
        pass
    if img.mode in _TO_RGB_MODES:
        img = img.convert("RGB")
    elif img.mode not in _KEEP_MODES:
        raise InputError(
            422,
            "unsupported image mode",
            f"{source} is a {fmt} of mode {img.mode!r}; send RGB, greyscale or palette images",
        )
    return img
