"""Stamp a generated image: fresh provenance id -> watermark -> encode -> signed manifest -> ledger row.

:func:`stamp_output` is the one function every transfigure output goes through (the BentoML
service and the inference pipeline call it). It is thread-safe: the watermark and manifest code
keep no shared mutable state, and the ledger opens one connection per call
(sqlite) or takes one from its pool (PostgreSQL).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Final

from PIL import Image

from transfigure.provenance.config import ProvenanceConfig
from transfigure.provenance.ledger import DuplicateIdError, Ledger, LedgerRecord
from transfigure.provenance.manifest import sign_manifest
from transfigure.provenance.watermark import PAYLOAD_BYTES, embed_watermark

__all__ = ["FORMATS", "DeadlinePassed", "ModelInfo", "Stamped", "WATERMARK_SCHEME", "pixel_sha256", "stamp_output"]

#: format name -> media type (JPG is accepted for JPEG)
FORMATS: Final = {"PNG": "image/png", "JPEG": "image/jpeg", "JPG": "image/jpeg", "WEBP": "image/webp"}
WATERMARK_SCHEME: Final = "transfigure-stdm-v1"
_DEFAULT_QUALITY: Final = {"JPEG": 95, "WEBP": 90}
_PNG_MODES: Final = ("1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA")
_MAX_ATTEMPTS: Final = 5


class DeadlinePassed(ValueError):
    """``config.deadline`` passed before the output was recorded: nothing was recorded or returned.

    A ``ValueError``, so that :func:`transfigure.inference.translate_and_stamp` reports it for the
    image concerned and goes on with the others.
    """

    def __init__(self, deadline: float, now: float) -> None:
        super().__init__(f"the deadline passed {now - deadline:.2f} s before this output could be recorded")
        self.deadline = deadline
        self.now = now


def _check_deadline(config: ProvenanceConfig) -> None:
    now = time.time()
    if config.deadline is not None and now > config.deadline:
        raise DeadlinePassed(config.deadline, now)


@dataclass(frozen=True)
class ModelInfo:
    """The model that produced an output: registry name and version, MLflow run id, variant."""

    name: str
    version: str
    run_id: str | None = None
    variant: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": str(self.version), "variant": self.variant, "run_id": self.run_id}


@dataclass(frozen=True)
class Stamped:
    """An encoded, watermarked, signed and recorded output."""

    data: bytes = field(repr=False)
    media_type: str
    provenance_id: str  # 16 hex characters: the watermark payload and ledger key
    manifest: dict[str, Any]


def pixel_sha256(image: Image.Image) -> str:
    """SHA-256 of decoded pixels (mode, size and raw bytes): independent of metadata and container."""
    h = hashlib.sha256(f"{image.mode}:{image.width}x{image.height}:".encode())
    h.update(image.tobytes())
    return h.hexdigest()


def _compatible(image: Image.Image, fmt: str) -> Image.Image:
    """The image in a mode the format stores losslessly (alpha composited over white for JPEG)."""
    mode = image.mode
    if fmt == "PNG":
        return image if mode in _PNG_MODES else image.convert("RGBA" if "A" in mode else "RGB")
    if fmt == "JPEG":
        if mode in ("L", "RGB"):
            return image
        if "A" in mode or (mode == "P" and "transparency" in image.info):
            rgba = image.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(white, rgba).convert("RGB")
        return image.convert("L" if mode in ("1", "I", "I;16", "F") else "RGB")
    return image if mode in ("RGB", "RGBA") else image.convert("RGBA" if "A" in mode else "RGB")  # WEBP


def _encode(image: Image.Image, fmt: str, quality: int | None) -> bytes:
    buf = io.BytesIO()
    if fmt == "PNG":
        image.save(buf, "PNG")
    else:
        image.save(buf, fmt, quality=quality if quality is not None else _DEFAULT_QUALITY[fmt])
    return buf.getvalue()


def _decoded_digest(data: bytes) -> str:
    with Image.open(io.BytesIO(data)) as decoded:
        decoded.load()
        return pixel_sha256(decoded)


def stamp_output(
    image: Image.Image,
    *,
    model: ModelInfo,
    fmt: str = "PNG",
    quality: int | None = None,
    config: ProvenanceConfig | None = None,
) -> Stamped:
    """Watermark ``image`` with a fresh provenance id, encode it, sign a C2PA manifest and record it.

    ``fmt``: PNG (lossless), JPEG (quality default 95; alpha over white) or WEBP (default 90).
    ``config`` defaults to :meth:`ProvenanceConfig.from_env` (development key and certificate, with
    warnings, when nothing is configured).

    With ``config.deadline`` set, nothing is recorded once that time has passed (checked before the
    work and again just before the ledger row is written).

    Raises:
        ValueError: unknown format, bad quality, an image smaller than 32x32 or of an unusable mode.
        DeadlinePassed: ``config.deadline`` passed (a ``ValueError`` too).
    """
    fmt_key = fmt.upper()
    if fmt_key not in FORMATS:
        raise ValueError(f"unknown output format {fmt!r}: use PNG, JPEG or WEBP")
    fmt_key = "JPEG" if fmt_key == "JPG" else fmt_key
    if quality is not None and not 1 <= int(quality) <= 100:
        raise ValueError(f"quality must be between 1 and 100, got {quality}")
    config = config or ProvenanceConfig.from_env()
    _check_deadline(config)
    signer = config.signer_material()
    ledger = Ledger(config.ledger_path)
    prepared = _compatible(image, fmt_key)
    media_type = FORMATS[fmt_key]
    for _ in range(_MAX_ATTEMPTS):
        payload = secrets.token_bytes(PAYLOAD_BYTES)
        provenance_id = payload.hex()
        if ledger.contains(provenance_id):
            continue
        encoded = _encode(embed_watermark(prepared, payload, config.watermark_key), fmt_key, quality)
        claims = _claims(provenance_id, model, config, prepared, _decoded_digest(encoded), media_type)
        signed = sign_manifest(encoded, media_type, claims, signer)
        record = LedgerRecord(
            id=provenance_id,
            model_name=model.name,
            model_version=str(model.version),
            model_variant=model.variant,
            run_id=model.run_id,
            created_at=claims["created_at"],
            output_sha256=hashlib.sha256(signed).hexdigest(),
            pixel_sha256=claims["pixels"]["sha256"],
            media_type=media_type,
            width=prepared.width,
            height=prepared.height,
            key_id=config.key_id,
        )
        _check_deadline(config)  # the last moment: after the row, the output counts as delivered
        try:
            ledger.append(record)
        except DuplicateIdError:  # another process took the same id meanwhile (p ~ 2**-64): draw again
            continue
        manifest = {**claims, "format": "c2pa", "signer": signer.source, "output_sha256": record.output_sha256}
        return Stamped(data=signed, media_type=media_type, provenance_id=provenance_id, manifest=manifest)
    raise RuntimeError(f"could not allocate a fresh provenance id in {ledger.location} after {_MAX_ATTEMPTS} attempts")


def _claims(
    provenance_id: str, model: ModelInfo, config: ProvenanceConfig, image: Image.Image, pixels: str, media_type: str
) -> dict[str, Any]:
    from transfigure import __version__

    return {
        "provenance_id": provenance_id,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "model": model.to_dict(),
        "watermark": {"scheme": WATERMARK_SCHEME, "payload": provenance_id, "key_id": config.key_id},
        "pixels": {"sha256": pixels, "width": image.width, "height": image.height, "media_type": media_type},
        "transfigure_version": __version__,
    }
