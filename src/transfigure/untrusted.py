"""Decoding image bytes that come from outside (uploads, files to verify) without trusting them.

One mechanism for the service's HTTP checks and ``transfigure verify``: the size a file declares is
checked before any pixel is decoded (decompression bombs), and every failure becomes an
:class:`UntrustedImageError` with a ``kind`` that callers map to their own terms (an HTTP status,
an exit code). Kept free of torch so that the CLI and the HTTP front start fast.
"""

from __future__ import annotations

import io
import re
import warnings

from PIL import Image, UnidentifiedImageError

__all__ = ["UntrustedImageError", "declared_pixels", "decode_untrusted", "open_untrusted"]


def declared_pixels(exc: Image.DecompressionBombError) -> str:
    """The pixel count Pillow's bomb guard names in its message (``"... (2500000000 pixels) ..."``)."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    return f"{int(found.group(1)):,} pixels" if found else "too many pixels"


class UntrustedImageError(ValueError):
    """Bytes from outside (an upload, a file to verify) that are not a usable image.

    Attributes:
        kind: ``"empty"``, ``"not_image"``, ``"too_large"`` (declared size over the limit: a possible
            decompression bomb, refused before decoding), ``"truncated"`` or ``"corrupt"``, so callers
            can map it to their own terms (an HTTP status, an exit code).
        reason: what was wrong, in words (without the source).
    """

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def open_untrusted(data: bytes, *, max_pixels: int, formats: tuple[str, ...] | None = None) -> Image.Image:
    """Identify untrusted ``data`` and check its declared size, decoding no pixel.

    Raises:
        UntrustedImageError: empty, not an image (of ``formats``, when given), an unreadable header,
            or more than ``max_pixels`` declared.
    """
    if not data:
        raise UntrustedImageError("empty", "empty input (0 bytes): not an image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=list(formats) if formats else None)
    except Image.DecompressionBombError as exc:
        raise UntrustedImageError(
            "too_large",
            f"the image declares {declared_pixels(exc)}, more than the limit of "
            f"{max_pixels:,} (possible decompression bomb); refused without decoding",
        ) from None
    except UnidentifiedImageError:
        accepted = f" ({', '.join(formats)})" if formats else ""
        raise UntrustedImageError(
            "not_image", f"not a recognised image format{accepted}: {len(data):,} bytes, starting with {data[:12]!r}"
        ) from None
    except Exception as exc:  # noqa: BLE001 - OSError, SyntaxError, ...: a decoder bug must not escape as a crash
        raise UntrustedImageError("corrupt", f"the image header cannot be read ({type(exc).__name__}: {exc})") from None
    width, height = image.size
    if width < 1 or height < 1:
        raise UntrustedImageError("corrupt", f"the image declares an empty {width}x{height} image")
    if width * height > max_pixels:
        raise UntrustedImageError(
            "too_large",
            f"the image declares {width}x{height} = {width * height:,} pixels, more "
            f"than the limit of {max_pixels:,} (possible decompression bomb); "
            "refused without decoding",
        )
    return image


def decode_untrusted(data: bytes, *, max_pixels: int, formats: tuple[str, ...] | None = None) -> Image.Image:
    """:func:`open_untrusted`, then decode every pixel (no EXIF or mode handling: callers differ there).

    Raises:
        UntrustedImageError: as :func:`open_untrusted`, or ``"truncated"`` / ``"corrupt"`` pixel data.
    """
    image = open_untrusted(data, max_pixels=max_pixels, formats=formats)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.load()
    except Image.DecompressionBombError as exc:
        raise UntrustedImageError(
            "too_large",
            f"the image declares {declared_pixels(exc)}, more than the limit of "
            f"{max_pixels:,} (possible decompression bomb)",
        ) from None
    except Exception as exc:  # noqa: BLE001 - OSError, SyntaxError, EOFError, ...
        text = str(exc) or type(exc).__name__
        kind = "truncated" if ("truncated" in text.lower() or isinstance(exc, EOFError)) else "corrupt"
        raise UntrustedImageError(kind, f"truncated or corrupt {image.format or 'image'} data ({text})") from None
    return image
