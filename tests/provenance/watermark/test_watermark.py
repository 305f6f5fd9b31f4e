"""The watermark: round trips in every size class and mode, the signal-processing attacks, false
positives, key mismatch, input checks. Real photos throughout (scikit-image's bundled ones).
Geometric edits: test_geometry.py; the search's parts: test_sync.py, test_read.py, test_cues.py."""

from __future__ import annotations

import io
import json
import logging

import numpy as np
import pytest
from PIL import Image

from transfigure.provenance import detect_watermark, embed_watermark, keys
from transfigure.provenance.attacks import ATTACKS
from transfigure.provenance.watermark import MAX_DECODES, psnr

KEY = b"watermark tests key"
PAYLOAD = bytes.fromhex("0123456789abcdef")


def as_mode(image: Image.Image, mode: str) -> Image.Image:
    """``image`` in ``mode``; 16-bit and adaptive-palette versions built explicitly."""
    if mode == "I;16":
        return Image.fromarray(np.asarray(image.convert("L"), dtype=np.uint16) * 257)
    if mode == "P":
        return image.convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    if mode == "RGBA":
        rgba = np.asarray(image.convert("RGBA")).copy()
        rgba[..., 3] = np.linspace(40, 255, rgba.shape[1], dtype=np.uint8)[None, :]
        return Image.fromarray(rgba, "RGBA")
    return image.convert(mode)


@pytest.mark.parametrize(
    ("size", "mode"),
    [
        ((64, 64), "RGB"),
        ((160, 96), "RGB"),
        ((256, 256), "RGB"),
        ((48, 40), "RGB"),
        ((640, 480), "RGB"),
        ((128, 96), "RGBA"),
        ((128, 96), "L"),
        ((128, 96), "LA"),
        ((128, 96), "P"),
        ((128, 96), "I;16"),
        ((128, 96), "CMYK"),
        ((128, 96), "YCbCr"),
    ],
)
def test_round_trip_keeps_size_and_mode_and_recovers_the_payload(photo, size, mode):
    original = as_mode(photo("astronaut", size), mode)
    marked = embed_watermark(original, PAYLOAD, KEY)
    assert marked.size == original.size and marked.mode == original.mode
    detection = detect_watermark(marked, KEY)
    assert detection.detected and detection.payload == PAYLOAD
    assert detection.provenance_id == PAYLOAD.hex() and detection.bit_errors is not None
    if mode in ("RGB", "L", "RGBA", "LA", "I;16"):
        scale = 1 / 257 if mode == "I;16" else 1.0  # PSNR on a 0..255 scale
        assert psnr(np.asarray(original) * scale, np.asarray(marked) * scale) >= 42.0


def test_psnr_is_at_least_42_db_on_real_photos(photo):
    for name in ("astronaut", "camera", "grass", "hubble_deep_field", "page"):
        original = photo(name, 256)
        assert psnr(original, embed_watermark(original, PAYLOAD, KEY)) >= 42.0, name


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_payload_survives_each_signal_processing_attack(photo, attack):
    for name, payload in (("astronaut", PAYLOAD), ("coffee", bytes(range(8)))):
        marked = embed_watermark(photo(name, 256), payload, KEY)
        detection = detect_watermark(ATTACKS[attack](marked), KEY)
        assert detection.detected, f"{attack} on {name}: {detection}"
        assert detection.payload == payload


@pytest.mark.slow
def test_no_false_positives_on_clean_photos_crops_and_copies(photos, photo):
    """Three dozen unmarked images: photos at several sizes, crops of any aspect, flips, JPEG copies."""
    rng = np.random.default_rng(0)
    clean = []
    for i, (name, image) in enumerate(photos.items()):
        clean.append(photo(name, (256, 256) if i % 2 else (200, 144)))
        w, h = image.size
        cw, ch = int(rng.integers(64, min(w, 400))), int(rng.integers(64, min(h, 400)))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        crop = image.crop((x, y, x + cw, y + ch))
        clean.append(crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if i % 3 == 0 else ATTACKS["jpeg75"](crop))
    assert len(clean) >= 36
    for image in clean:
        detection = detect_watermark(image, KEY)
        assert not detection.detected and detection.payload is None
        assert detection.p_value > 1e-6 and detection.candidates <= MAX_DECODES


def test_a_wrong_key_finds_nothing(photo):
    for name in ("astronaut", "rocket", "moon"):
        marked = embed_watermark(photo(name, 256), PAYLOAD, KEY)
        assert detect_watermark(marked, KEY).detected
        other = detect_watermark(marked, b"another key")
        assert not other.detected and other.payload is None


def test_detection_statistics(photo):
    detection = detect_watermark(embed_watermark(photo("chelsea", 256), PAYLOAD, KEY), KEY)
    assert detection.check_bits_matched == 32 and 1 <= detection.candidates <= MAX_DECODES
    assert detection.p_value <= MAX_DECODES * 2.0**-32 and detection.confidence == 1.0 - detection.p_value
    doc = json.loads(json.dumps(detection.to_dict()))
    assert doc["payload"] == doc["provenance_id"] == PAYLOAD.hex()


def test_embedding_is_deterministic_and_survives_lossless_reencoding(photo):
    original = photo("rocket", 200)
    a, b = embed_watermark(original, PAYLOAD, KEY), embed_watermark(original, PAYLOAD, KEY)
    assert a.tobytes() == b.tobytes()
    buf = io.BytesIO()
    a.save(buf, "PNG")
    assert detect_watermark(Image.open(buf), KEY).payload == PAYLOAD


def test_bad_arguments_are_refused_clearly(photo):
    image = photo("astronaut", 128)
    with pytest.raises(ValueError, match="exactly 8 bytes"):
        embed_watermark(image, b"short", KEY)
    with pytest.raises(ValueError, match="at least 32x32"):
        embed_watermark(image.resize((20, 40)), PAYLOAD, KEY)
    with pytest.raises(ValueError, match="bilevel"):
        embed_watermark(image.convert("1"), PAYLOAD, KEY)
    with pytest.raises(TypeError, match="non-empty bytes"):
        embed_watermark(image, PAYLOAD, "a string key")  # type: ignore[arg-type]


def test_without_a_configured_key_the_development_key_is_used_with_one_warning(photo, monkeypatch, caplog):
    monkeypatch.delenv(keys.WATERMARK_KEY_ENV, raising=False)
    monkeypatch.setattr(keys, "_warned", False)
    image = photo("coffee", 128)
    with caplog.at_level(logging.WARNING, logger="transfigure.provenance.keys"):
        marked = embed_watermark(image, PAYLOAD)
        assert detect_watermark(marked).payload == PAYLOAD
    assert sum("DEVELOPMENT watermark key" in r.getMessage() for r in caplog.records) == 1
    monkeypatch.setenv(keys.WATERMARK_KEY_ENV, "a configured secret")
    assert not detect_watermark(marked).detected  # the configured key is a different key


@pytest.mark.parametrize("size", [(320, 240), (200, 320)])
def test_geometric_attacks_on_non_square_images(photo, size):
    marked = embed_watermark(photo("chelsea", size), PAYLOAD, KEY)
    for attack in ("crop90", "rotate-5", "resize0.5+jpeg75"):
        assert detect_watermark(ATTACKS[attack](marked), KEY).payload == PAYLOAD, attack


def test_saturated_areas_stay_untouched_and_the_mark_survives_brightening(photo):
    """Pure white / black areas (a product shot's background) carry no mark, so clipping them is harmless."""
    arr = np.asarray(photo("coffee", 256)).copy()
    arr[:, :64] = 255  # a white margin
    arr[:, -48:] = 0  # a black margin
    original = Image.fromarray(arr)
    marked = embed_watermark(original, PAYLOAD, KEY)
    out = np.asarray(marked)
    assert (out[:, :64] == 255).all() and (out[:, -48:] == 0).all()
    assert psnr(original, marked) >= 42.0
    assert detect_watermark(ATTACKS["brightness+20"](marked), KEY).payload == PAYLOAD


def test_the_read_clamp_follows_brightness_and_contrast_changes_exactly():
    """Clipping by a brightness/contrast change leaves the clamped read an exact affine copy."""
    from transfigure.provenance.watermark.planes import clamped_luma, read_clamp

    rng = np.random.default_rng(0)
    channels = rng.uniform(0, 255, (64, 64, 3)).astype(np.float32)
    mean = float(clamped_luma(channels, None).mean())
    low, high = read_clamp(mean)
    for a, b in ((1.1, 0.0), (0.8, 0.0), (1.1, (1 - 1.1) * mean), (0.8, (1 - 0.8) * mean)):
        attacked = np.clip(np.rint(a * channels + b), 0, 255).astype(np.float32)
        read = clamped_luma(attacked, (a * low + b, a * high + b))
        expected = a * clamped_luma(channels, (low, high)) + b
        assert np.abs(read - expected).max() <= 0.51, (a, b)  # rounding only


@pytest.mark.parametrize(("name", "exposure"), [("astronaut", 1.6), ("chelsea", 2.0)])
def test_clipping_brightness_and_contrast_changes_on_over_exposed_photos(photo, name, exposure):
    """Over-exposed photos (large near-white textured areas, like snow or a product shot's backdrop):
    brightening clips a fifth of the image and more. The read clamps below that and the detector
    moves the clamp with the change, so the mark is read on (the unclamped read of the previous
    release lost both photos under brightness +20 %)."""
    bright = Image.fromarray(np.clip(np.asarray(photo(name, 256), np.float32) * exposure, 0, 255).astype(np.uint8))
    assert (np.asarray(ATTACKS["brightness+20"](bright).convert("L")) == 255).mean() > 0.2
    for payload in (PAYLOAD, bytes(range(8))):
        marked = embed_watermark(bright, payload, KEY)
        for attack in ("brightness+20", "contrast+20", "brightness-20", "contrast-20"):
            detection = detect_watermark(ATTACKS[attack](marked), KEY)
            assert detection.payload == payload, f"{attack}: {detection}"


def test_colour_images_carry_more_mark_per_squared_error_with_a_limited_tint(photo):
    """R, G and B change half way between equal deltas and the luma weights' proportion: per unit of
    squared error that moves the luminance ~1.23 times as much as equal deltas, while the chroma of the
    change stays well under what the least-squares share would put into grey areas."""
    original = photo("chelsea", 256)
    marked = embed_watermark(original, PAYLOAD, KEY)
    delta = np.asarray(marked, np.float64) - np.asarray(original, np.float64)
    luma = delta @ np.array([0.299, 0.587, 0.114])
    cb = delta @ np.array([-0.168736, -0.331264, 0.5])
    assert np.mean(luma**2) / np.mean(delta**2) > 1.15
    assert np.sqrt(np.mean(cb**2) / np.mean(luma**2)) < 0.35  # least squares: 0.45
    rms = np.sqrt(np.mean(delta**2, axis=(0, 1)))
    assert rms[1] > rms[0] > rms[2]  # G carries most, B least
    assert psnr(original, marked) >= 42.0
