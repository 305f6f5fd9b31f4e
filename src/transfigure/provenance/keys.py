"""Where the watermark key comes from, and the keyed derivations of everything secret.

The watermark key is a secret shared by the embedder (the service) and whoever verifies. It comes
from ``$TRANSFIGURE_WATERMARK_KEY`` (any string: a passphrase or hex; it is stretched with HKDF-SHA256,
never used as is). Without it a fixed *development* key is used and a warning is issued once per
process: anyone can read and forge development watermarks, so never ship with it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = [
    "DEV_KEY_WARNING",
    "WATERMARK_KEY_ENV",
    "derive",
    "dev_watermark_key",
    "is_dev_watermark_key",
    "resolve_watermark_key",
    "watermark_key_from_text",
]

logger = logging.getLogger(__name__)

WATERMARK_KEY_ENV: Final = "TRANSFIGURE_WATERMARK_KEY"
#: Public on purpose: the development key protects nothing.
_DEV_KEY_TEXT: Final = "transfigure-development-watermark-key (public, not a secret)"
DEV_KEY_WARNING: Final = (
    f"${WATERMARK_KEY_ENV} is not set: using the public DEVELOPMENT watermark key. Anyone can read and "
    f"forge these watermarks; set {WATERMARK_KEY_ENV} to a secret for real use."
)
_warned = False
_warn_lock = threading.Lock()


def watermark_key_from_text(text: str) -> bytes:
    """32 key bytes from a configured string (HKDF-SHA256; any length or alphabet)."""
    if not text:
        raise ValueError(f"the watermark key is empty; set {WATERMARK_KEY_ENV} to a non-empty secret")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"transfigure", info=b"watermark-key-v1").derive(
        text.encode("utf-8")
    )


def _warn_dev_key_once() -> None:
    global _warned
    with _warn_lock:
        if _warned:
            return
        _warned = True
    logger.warning(DEV_KEY_WARNING)


def resolve_watermark_key(key: bytes | None) -> bytes:
    """``key`` itself, else the key from the environment, else the development key (with a warning)."""
    if key is not None:
        if not isinstance(key, (bytes, bytearray)) or not key:
            raise TypeError(f"the watermark key must be non-empty bytes, got {type(key).__name__}")
        return bytes(key)
    text = os.environ.get(WATERMARK_KEY_ENV)
    if text:
        return watermark_key_from_text(text)
    return dev_watermark_key()


def dev_watermark_key() -> bytes:
    """The public development key (warns once per process)."""
    _warn_dev_key_once()
    return watermark_key_from_text(_DEV_KEY_TEXT)


def is_dev_watermark_key(key: bytes) -> bool:
    """Whether ``key`` is the public development key (no warning)."""
    return hmac.compare_digest(bytes(key), watermark_key_from_text(_DEV_KEY_TEXT))


def derive(key: bytes, label: str) -> bytes:
    """An independent 32-byte sub-key for one purpose (HMAC-SHA256 of the label)."""
    return hmac.new(key, b"transfigure/" + label.encode("ascii"), hashlib.sha256).digest()
