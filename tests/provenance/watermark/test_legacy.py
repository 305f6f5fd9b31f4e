"""Images marked by the previous release (scheme "legacy-v1", before the tiled lattice) are still found:
the fixture is a 160 px photo marked by that release (git 19326dc) with payload 0123456789abcdef and
key b"watermark tests key". The README promises them as re-encoded, resized back, brightened or
contrasted; the previous release's own geometric searches are not run. (At 160 px the previous
release itself loses a halving and enlarging back; 0.6 is what it holds.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from transfigure.provenance import detect_watermark
from transfigure.provenance.attacks import brightness, jpeg, resize_back

KEY = b"watermark tests key"
PAYLOAD = bytes.fromhex("0123456789abcdef")
FIXTURE = Path(__file__).parent / "data" / "legacy_v1_mark.png"


@pytest.fixture(scope="module")
def old_mark() -> Image.Image:
    with Image.open(FIXTURE) as image:
        return image.convert("RGB")


@pytest.mark.parametrize("edit", ["none", "jpeg75", "resize0.6", "brightness+20"])
def test_a_mark_of_the_previous_release_is_found_with_its_payload(old_mark, edit):
    edited = {
        "none": lambda im: im,
        "jpeg75": lambda im: jpeg(im, 75),
        "resize0.6": lambda im: resize_back(im, 0.6),
        "brightness+20": lambda im: brightness(im, 1.2),
    }[edit](old_mark)
    detection = detect_watermark(edited, KEY)
    assert detection.detected and detection.payload == PAYLOAD
    assert detection.scheme == "legacy-v1"
    # the false-positive bound counts the decodes of both detectors
    assert detection.candidates > 1 and detection.p_value < 1e-6


def test_the_previous_release_is_asked_only_when_allowed_and_never_for_the_wrong_key(old_mark):
    assert not detect_watermark(old_mark, KEY, legacy=False).detected
    assert not detect_watermark(old_mark, b"another key").detected


def test_a_mark_of_this_release_says_so(photo):
    from transfigure.provenance import embed_watermark

    detection = detect_watermark(embed_watermark(photo("camera", 160), PAYLOAD, KEY), KEY)
    assert detection.detected and detection.scheme == "tiled-v2"
