"""stamp_output -> verify_image_bytes with the real C2PA library, a real sqlite ledger and real
development certificates: valid / tampered / stripped manifests, ledger tracing, bad inputs."""

from __future__ import annotations

import io
import logging
import sqlite3
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
from PIL import Image

from transfigure.provenance import (
    DeadlinePassed,
    ImageInputError,
    Ledger,
    ModelInfo,
    ProvenanceConfig,
    detect_watermark,
    stamp_output,
    verify_image_bytes,
)
from transfigure.provenance.ledger import DuplicateIdError

MODEL = ModelInfo(name="cyclegan", version="3", run_id="0123456789abcdef0123456789abcdef", variant="cyclegan")


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, i = [], 8
    while i < len(data):
        (n,) = struct.unpack(">I", data[i : i + 4])
        chunks.append((data[i + 4 : i + 8], data[i + 8 : i + 8 + n]))
        i += 12 + n
    return chunks


def build_png(chunks: list[tuple[bytes, bytes]]) -> bytes:
    body = b"".join(struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d)) for t, d in chunks)
    return b"\x89PNG\r\n\x1a\n" + body


def encode(image: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize(("fmt", "media_type"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")])
def test_stamped_outputs_verify_in_every_format(provenance_config, photo, fmt, media_type):
    stamped = stamp_output(photo("astronaut", 160), model=MODEL, fmt=fmt, config=provenance_config)
    assert stamped.media_type == media_type and len(stamped.provenance_id) == 16
    assert Image.open(io.BytesIO(stamped.data)).size == (160, 160)
    assert stamped.manifest["model"]["version"] == "3" and stamped.manifest["provenance_id"] == stamped.provenance_id

    report = verify_image_bytes(stamped.data, config=provenance_config, source=f"out.{fmt.lower()}")
    assert report["found"] and report["verdict"] == "verified"
    assert report["watermark"]["detected"] and report["watermark"]["provenance_id"] == stamped.provenance_id
    assert report["manifest"]["status"] == "valid" and report["manifest"]["trusted"]
    assert report["manifest"]["model"] == MODEL.to_dict() and report["manifest"]["pixels_match"]
    record = report["ledger"]
    assert record["id"] == stamped.provenance_id and record["model_name"] == "cyclegan"
    assert record["run_id"] == MODEL.run_id and record["media_type"] == media_type
    assert record["exact_copy"] and record["traced_by"] == "watermark"
    assert record["created_at"].endswith("Z")


def test_changed_pixels_make_the_manifest_invalid_while_the_watermark_still_traces(provenance_config, photo):
    stamped = stamp_output(photo("coffee", 192), model=MODEL, config=provenance_config)
    image = Image.open(io.BytesIO(stamped.data)).convert("RGB")
    image.paste((255, 0, 0), (10, 10, 30, 30))  # edit pixels, keep the signed manifest chunk
    edited_idat = [c for c in png_chunks(encode(image)) if c[0] == b"IDAT"]
    chunks = [c for c in png_chunks(stamped.data) if c[0] != b"IDAT"]
    spliced = chunks[:-1] + edited_idat + chunks[-1:]  # ... caBX ..., new pixel data, IEND
    report = verify_image_bytes(build_png(spliced), config=provenance_config)
    assert report["manifest"]["status"] == "invalid"
    assert "changed after signing" in report["manifest"]["reason"]
    assert report["verdict"] == "traced" and report["ledger"]["id"] == stamped.provenance_id
    assert not report["ledger"]["exact_copy"]


def test_a_changed_manifest_is_invalid(provenance_config, photo):
    stamped = stamp_output(photo("chelsea", 128), model=MODEL, config=provenance_config)
    chunks = png_chunks(stamped.data)
    tags = [t for t, _ in chunks]
    assert b"caBX" in tags  # the C2PA manifest store (JUMBF) chunk
    forged = [(t, d.replace(b"cyclegan", b"pix2pix!")) if t == b"caBX" else (t, d) for t, d in chunks]
    report = verify_image_bytes(build_png(forged), config=provenance_config)
    assert report["manifest"]["status"] == "invalid" and report["manifest"]["reason"]
    assert report["watermark"]["detected"]


def test_stripped_metadata_is_absent_and_the_watermark_alone_finds_the_record(provenance_config, photo):
    stamped = stamp_output(photo("rocket", 256), model=MODEL, fmt="PNG", config=provenance_config)
    for data in (
        encode(Image.open(io.BytesIO(stamped.data))),  # re-saved: the caBX chunk is gone
        encode(Image.open(io.BytesIO(stamped.data)).convert("RGB"), "JPEG", quality=80),
    ):
        report = verify_image_bytes(data, config=provenance_config, source="copy")
        assert report["manifest"]["status"] == "absent"
        assert report["verdict"] == "traced" and report["found"]
        assert report["ledger"]["id"] == stamped.provenance_id and report["ledger"]["model_version"] == "3"
        assert report["ledger"]["traced_by"] == "watermark" and not report["ledger"]["exact_copy"]


def test_a_signer_outside_the_trust_anchors_is_invalid(provenance_config, photo, tmp_path):
    stamped = stamp_output(photo("astronaut", 128), model=MODEL, config=provenance_config)
    stranger = replace(provenance_config, dev_credentials_dir=tmp_path / "elsewhere")  # no CA there
    report = verify_image_bytes(stamped.data, config=stranger)
    assert report["manifest"]["status"] == "invalid" and "trust" in report["manifest"]["reason"]
    assert not report["manifest"]["trusted"]


def test_an_unmarked_image_is_not_found(provenance_config, photo):
    report = verify_image_bytes(encode(photo("moon", 200)), config=provenance_config, source="moon.png")
    assert report == {**report, "found": False, "verdict": "not-found", "ledger": None}
    assert report["manifest"]["status"] == "absent" and not report["watermark"]["detected"]


def test_an_image_marked_with_another_key_is_not_traced(provenance_config, photo):
    stamped = stamp_output(photo("coffee", 128), model=MODEL, config=provenance_config)
    other = replace(provenance_config, watermark_key=b"someone else's key")
    report = verify_image_bytes(encode(Image.open(io.BytesIO(stamped.data))), config=other)
    assert not report["watermark"]["detected"] and report["verdict"] == "not-found"


def png_declaring(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return build_png([(b"IHDR", ihdr), (b"IDAT", zlib.compress(b"\0" * 64)), (b"IEND", b"")])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "0 bytes"),
        (b"this is a text file, not a picture", "not a recognised image"),
        (png_declaring(50_000, 50_000), "decompression bomb"),
        (png_declaring(9_000, 9_000), "decompression bomb"),
    ],
)
def test_bad_inputs_raise_a_clear_image_input_error(provenance_config, data, message):
    with pytest.raises(ImageInputError, match=message) as info:
        verify_image_bytes(data, config=provenance_config, source="upload.png")
    assert isinstance(info.value, ValueError) and info.value.source == "upload.png"


def test_a_truncated_png_is_refused(provenance_config, photo):
    data = encode(photo("astronaut", 128))
    with pytest.raises(ImageInputError, match="truncated or corrupt"):
        verify_image_bytes(data[: len(data) // 2], config=provenance_config)


def test_the_ledger_is_append_only_and_ids_are_unique(provenance_config, photo):
    stamped = stamp_output(photo("camera", 96), model=MODEL, config=provenance_config)
    ledger = Ledger(provenance_config.ledger_path)
    record = ledger.get(stamped.provenance_id)
    assert record is not None and ledger.count() == 1
    with pytest.raises(DuplicateIdError):
        ledger.append(record)
    with sqlite3.connect(provenance_config.ledger_path) as conn:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE provenance SET model_version = '4'")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM provenance")
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert ledger.get(stamped.provenance_id) == record


def test_concurrent_stamping_gives_unique_recorded_ids(provenance_config, photo):
    images = [photo(name, 96) for name in ("astronaut", "coffee", "chelsea", "rocket")] * 2

    def stamp(image: Image.Image):
        return stamp_output(image, model=MODEL, fmt="JPEG", config=provenance_config)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(stamp, images))
    ids = {r.provenance_id for r in results}
    assert len(ids) == len(images) == Ledger(provenance_config.ledger_path).count()
    for r in results:
        assert (
            detect_watermark(Image.open(io.BytesIO(r.data)), provenance_config.watermark_key).provenance_id
            == r.provenance_id
        )


def test_stamping_refuses_unknown_formats_and_qualities(provenance_config, photo):
    with pytest.raises(ValueError, match="PNG, JPEG or WEBP"):
        stamp_output(photo("astronaut", 64), model=MODEL, fmt="GIF", config=provenance_config)
    with pytest.raises(ValueError, match="quality"):
        stamp_output(photo("astronaut", 64), model=MODEL, fmt="JPEG", quality=0, config=provenance_config)


def test_config_from_env_and_development_signing_credentials(tmp_path, monkeypatch, caplog):
    env = {"TRANSFIGURE_WATERMARK_KEY": "k1", "TRANSFIGURE_LEDGER": "ledgers/l.sqlite"}
    config = ProvenanceConfig.from_env(env, root=tmp_path)
    assert config.ledger_path == tmp_path / "ledgers/l.sqlite"
    assert config.dev_credentials_dir == tmp_path / "conf/local/provenance"
    assert config.key_id == ProvenanceConfig.from_env(env, root=tmp_path).key_id
    assert config.key_id != ProvenanceConfig.from_env({**env, "TRANSFIGURE_WATERMARK_KEY": "k2"}, root=tmp_path).key_id
    assert config.trust_anchors_pem() is None  # nothing created yet
    with caplog.at_level(logging.WARNING, logger="transfigure.provenance.signing"):
        material = config.signer_material()
    assert "DEVELOPMENT certificate" in caplog.text and material.algorithm == "es256"
    assert len(material.certificates) == 2  # signer + CA: C2PA refuses self-signed signers
    assert (tmp_path / "conf/local/provenance/dev_signer.key").stat().st_mode & 0o777 == 0o600
    assert "BEGIN CERTIFICATE" in (config.trust_anchors_pem() or "")
    with pytest.raises(ValueError, match="both"):
        ProvenanceConfig.from_env({**env, "TRANSFIGURE_SIGNING_KEY": "k.pem"}, root=tmp_path).signer_material()


def test_an_output_past_its_deadline_is_neither_recorded_nor_returned(provenance_config, photo):
    import time

    late = replace(provenance_config, deadline=time.time() - 1)
    with pytest.raises(DeadlinePassed, match="deadline passed"):
        stamp_output(photo("astronaut", 64), model=MODEL, config=late)
    assert not provenance_config.ledger_path.exists() or Ledger(provenance_config.ledger_path).count() == 0
    in_time = replace(provenance_config, deadline=time.time() + 60)
    assert stamp_output(photo("astronaut", 64), model=MODEL, config=in_time).provenance_id


def test_development_keys_are_named_until_both_keys_are_configured(tmp_path):
    configured = {
        "TRANSFIGURE_WATERMARK_KEY": "a secret",
        "TRANSFIGURE_SIGNING_KEY": "signer.key",
        "TRANSFIGURE_SIGNING_CERT": "chain.pem",
    }
    assert not ProvenanceConfig.from_env(configured, root=tmp_path).uses_dev_keys
    no_watermark_key = ProvenanceConfig.from_env({**configured, "TRANSFIGURE_WATERMARK_KEY": ""}, root=tmp_path)
    no_signer = ProvenanceConfig.from_env({"TRANSFIGURE_WATERMARK_KEY": "a secret"}, root=tmp_path)
    assert no_watermark_key.uses_dev_keys and no_signer.uses_dev_keys
    assert ["TRANSFIGURE_WATERMARK_KEY" in p for p in no_watermark_key.dev_key_problems()] == [True]
    assert ["TRANSFIGURE_SIGNING_KEY" in p for p in no_signer.dev_key_problems()] == [True]
    assert len(ProvenanceConfig.from_env({}, root=tmp_path).dev_key_problems()) == 2


@pytest.mark.parametrize("edit", ["flip + crop", "rotate 12"])
def test_a_flipped_cropped_or_rotated_copy_is_traced_and_its_report_is_json(provenance_config, photo, edit):
    import json

    from transfigure.provenance.attacks import crop, rotate

    stamped = stamp_output(photo("chelsea", 256), model=MODEL, fmt="PNG", config=provenance_config)
    with Image.open(io.BytesIO(stamped.data)) as image:
        image = image.convert("RGB")
        copy = (
            crop(image.transpose(Image.Transpose.FLIP_LEFT_RIGHT), 0.7, "top-left")
            if edit == "flip + crop"
            else rotate(image, 12)
        )
    report = verify_image_bytes(encode(copy, "JPEG", quality=85), config=provenance_config)
    assert report["verdict"] == "traced" and report["watermark"]["provenance_id"] == stamped.provenance_id
    assert report["watermark"]["flipped"] is (edit == "flip + crop")
    assert json.loads(json.dumps(report)) == report  # plain JSON, as `transfigure verify` prints it
