"""The one decoder of untrusted image bytes (service uploads, transfigure verify): every failure has a kind."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from transfigure.untrusted import UntrustedImageError, decode_untrusted, open_untrusted


def png(size=(40, 30), fmt="PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (10, 200, 30)).save(buf, fmt)
    return buf.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width`` x ``height`` (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("data", "kind", "text"),
    [
        (b"", "empty", "0 bytes"),
        (b"plain text, not a picture", "not_image", "not a recognised image format"),
        (png_declaring(50_000, 50_000), "too_large", "2,500,000,000 pixels"),
        (png_declaring(3_000, 3_000), "too_large", "3000x3000 = 9,000,000 pixels"),
        (png((300, 200))[:300], "truncated", "truncated or corrupt PNG"),
    ],
    ids=["empty", "not-an-image", "bomb", "over-the-limit", "truncated"],
)
def test_each_failure_has_a_kind_and_a_reason(data, kind, text):
    with pytest.raises(UntrustedImageError) as caught:
        decode_untrusted(data, max_pixels=1_000_000)
    assert caught.value.kind == kind and text in caught.value.reason


def test_open_checks_the_declared_size_without_decoding_and_decode_gives_the_pixels():
    opened = open_untrusted(png(), max_pixels=1_000_000)
    assert opened.size == (40, 30)
    assert decode_untrusted(png(), max_pixels=1_000_000).getpixel((0, 0)) == (10, 200, 30)


def test_formats_restrict_the_decoders():
    with pytest.raises(UntrustedImageError, match=r"not a recognised image format \(PNG\)") as caught:
        open_untrusted(png(fmt="BMP"), max_pixels=1_000_000, formats=("PNG",))
    assert caught.value.kind == "not_image"
