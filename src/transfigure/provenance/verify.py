"""Verify an image: watermark (and its payload), C2PA manifest, ledger record, and a verdict.

:func:`verify_image_bytes` decodes untrusted bytes defensively (size limit before decoding, full
decode to catch truncation) and never raises for what it finds, only for input that is not a
usable image (:class:`ImageInputError`). Verdicts:

=========================  =====================================================================
``verified``               watermark found, recorded in the ledger, manifest valid and consistent
``traced``                 watermark found and recorded; the manifest is absent or invalid
``watermarked``            a watermark of this key, but no record in this ledger
``manifest-only``          a valid transfigure manifest, but no watermark was read
``conflict``               watermark and manifest name different provenance ids
``not-found``              no transfigure watermark and no valid manifest
=========================  =====================================================================
"""

from __future__ import annotations

import hashlib
from typing import Any

from PIL import Image

from transfigure.data.rules import MAX_PIXELS
from transfigure.provenance.config import ProvenanceConfig
from transfigure.provenance.ledger import Ledger
from transfigure.provenance.manifest import read_manifest
from transfigure.provenance.stamp import pixel_sha256
from transfigure.provenance.watermark import MIN_SIDE, detect_watermark
from transfigure.untrusted import UntrustedImageError, decode_untrusted

__all__ = ["FOUND_VERDICTS", "ImageInputError", "decode_image_bytes", "verify_image_bytes"]

#: verdicts that count as "transfigure provenance found" (CLI exit status 0)
FOUND_VERDICTS = ("verified", "traced", "watermarked", "manifest-only", "conflict")


class ImageInputError(ValueError):
    """The input is not a usable image (empty, not an image, truncated, or too many pixels)."""

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")


def decode_image_bytes(data: bytes, *, source: str = "<bytes>", max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode ``data`` completely, refusing anything that is not a sound image of at most ``max_pixels``.

    Raises:
        ImageInputError: zero bytes, not an image, a declared size over the limit (checked before
            decoding: decompression bombs), or truncated/corrupt data.
    """
    try:
        return decode_untrusted(data, max_pixels=max_pixels)
    except UntrustedImageError as exc:
        raise ImageInputError(source, exc.reason) from None


def verify_image_bytes(
    data: bytes, *, config: ProvenanceConfig | None = None, source: str = "<bytes>"
) -> dict[str, Any]:
    """Check one encoded image; returns a JSON-able report (see the module doc for ``verdict``).

    Raises:
        ImageInputError: the bytes are not a usable image.
    """
    config = config or ProvenanceConfig.from_env()
    image = decode_image_bytes(data, source=source, max_pixels=config.max_pixels)
    media_type = Image.MIME.get(image.format or "", "application/octet-stream")
    watermark = _watermark(image, config)
    manifest = _manifest(data, media_type, image, config)
    ledger = Ledger(config.ledger_path)
    wm_id = watermark.get("provenance_id")
    manifest_id = manifest.get("provenance_id") if manifest["status"] == "valid" else None
    record = ledger.get(wm_id) if wm_id else None
    traced_by = "watermark" if record else None
    if record is None and manifest_id:
        record, traced_by = ledger.get(manifest_id), "manifest"
    ledger_report = None
    if record is not None:
        ledger_report = {
            **record.to_dict(),
            "traced_by": traced_by,
            "exact_copy": record.output_sha256 == hashlib.sha256(data).hexdigest(),
        }
    verdict = _verdict(wm_id, manifest_id, record is not None)
    return {
        "source": source,
        "found": verdict in FOUND_VERDICTS,
        "verdict": verdict,
        "image": {
            "format": image.format,
            "media_type": media_type,
            "width": image.width,
            "height": image.height,
            "mode": image.mode,
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        },
        "watermark": watermark,
        "manifest": manifest,
        "ledger": ledger_report,
    }


def _watermark(image: Image.Image, config: ProvenanceConfig) -> dict[str, Any]:
    if min(image.size) < MIN_SIDE:
        return {
            "detected": False,
            "provenance_id": None,
            "payload": None,
            "reason": f"{image.width}x{image.height} is too small to carry a watermark (needs {MIN_SIDE}x{MIN_SIDE})",
        }
    det = detect_watermark(image, config.watermark_key)
    report = det.to_dict()
    report.pop("raw_payload", None)
    report["key_id"] = config.key_id
    return report


def _manifest(data: bytes, media_type: str, image: Image.Image, config: ProvenanceConfig) -> dict[str, Any]:
    result = read_manifest(data, media_type, config.trust_anchors_pem())
    claims = result.pop("claims", None) or {}
    out = {**result, **claims}
    if claims.get("pixels", {}).get("sha256"):
        out["pixels_match"] = claims["pixels"]["sha256"] == pixel_sha256(image)
    return out


def _verdict(wm_id: str | None, manifest_id: str | None, recorded: bool) -> str:
    if wm_id and manifest_id and wm_id != manifest_id:
        return "conflict"
    if wm_id:
        if not recorded:
            return "watermarked"
        return "verified" if manifest_id else "traced"
    return "manifest-only" if manifest_id else "not-found"
