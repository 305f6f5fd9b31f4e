"""``transfigure verify`` and ``transfigure provenance-cert`` as real subprocesses."""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from PIL import Image

from transfigure.provenance import ModelInfo, stamp_output


def transfigure(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    exe = shutil.which("transfigure")
    assert exe, "the transfigure console script is installed with the package"
    return subprocess.run([exe, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


@pytest.fixture
def cli_env(provenance_config, tmp_path) -> dict[str, str]:
    """The test's key and ledger for the subprocess (it runs in tmp_path, beside the dev certificate)."""
    return {
        **os.environ,
        "TRANSFIGURE_WATERMARK_KEY": os.environ["TRANSFIGURE_WATERMARK_KEY"],
        "TRANSFIGURE_LEDGER": str(provenance_config.ledger_path),
    }


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt)
    return buf.getvalue()


@pytest.mark.slow
def test_verify_prints_json_per_image_and_exit_status_tells_found(provenance_config, cli_env, photo, tmp_path):
    model = ModelInfo("pix2pix", "7", run_id="r1", variant="pix2pix")
    png = stamp_output(photo("astronaut", 192), model=model, fmt="PNG", config=provenance_config)
    jpg = stamp_output(photo("coffee", 192), model=model, fmt="JPEG", config=provenance_config)
    (tmp_path / "a.png").write_bytes(png.data)
    (tmp_path / "b.jpg").write_bytes(jpg.data)
    (tmp_path / "copy.png").write_bytes(encode(Image.open(io.BytesIO(png.data))))  # manifest stripped
    (tmp_path / "clean.png").write_bytes(encode(photo("moon", 192)))

    found = transfigure("verify", "a.png", "b.jpg", "copy.png", cwd=tmp_path, env=cli_env)
    assert found.returncode == 0, found.stderr
    reports = [json.loads(line) for line in found.stdout.splitlines()]
    assert [r["source"] for r in reports] == ["a.png", "b.jpg", "copy.png"]
    assert [r["verdict"] for r in reports] == ["verified", "verified", "traced"]
    assert reports[0]["watermark"]["provenance_id"] == png.provenance_id
    assert reports[1]["ledger"]["model_name"] == "pix2pix" and reports[1]["manifest"]["status"] == "valid"
    assert reports[2]["manifest"]["status"] == "absent" and reports[2]["ledger"]["id"] == png.provenance_id

    some_missing = transfigure("verify", "a.png", "clean.png", cwd=tmp_path, env=cli_env)
    assert some_missing.returncode == 1
    assert [json.loads(line)["found"] for line in some_missing.stdout.splitlines()] == [True, False]


@pytest.mark.slow
def test_bad_files_get_a_clear_message_exit_2_and_no_traceback(provenance_config, cli_env, photo, tmp_path):
    good = stamp_output(photo("chelsea", 128), model=ModelInfo("cyclegan", "1"), config=provenance_config)
    (tmp_path / "good.png").write_bytes(good.data)
    (tmp_path / "notes.png").write_text("meeting notes, not an image\n")
    data = encode(photo("rocket", 128))
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.png").write_bytes(b"")
    ihdr = struct.pack(">IIBBBBB", 50_000, 50_000, 8, 2, 0, 0, 0)
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))  # noqa: E731
    (tmp_path / "bomb.png").write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 99)) + chunk(b"IEND", b"")
    )
    names = ["good.png", "notes.png", "truncated.png", "empty.png", "bomb.png", "missing.png"]

    result = transfigure("verify", *names, cwd=tmp_path, env=cli_env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["source"] for line in lines] == names
    assert lines[0]["verdict"] == "verified"
    errors = {line["source"]: line["error"] for line in lines[1:]}
    assert "not a recognised image" in errors["notes.png"]
    assert "truncated or corrupt" in errors["truncated.png"]
    assert "0 bytes" in errors["empty.png"]
    assert "decompression bomb" in errors["bomb.png"] and "2,500,000,000" in errors["bomb.png"]
    assert "No such file" in errors["missing.png"]
    for name in names[1:]:
        assert f"transfigure verify: {name}: " in result.stderr


@pytest.mark.slow
def test_provenance_cert_creates_the_development_chain(tmp_path):
    env = {**os.environ}
    out = tmp_path / "creds"
    result = transfigure("provenance-cert", "--dir", str(out), cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert {p.name for p in out.iterdir()} == {"dev_ca.pem", "dev_signer_chain.pem", "dev_signer.key"}
    assert (out / "dev_signer.key").stat().st_mode & 0o777 == 0o600
    assert "TRANSFIGURE_SIGNING_KEY" in result.stdout
    again = transfigure("provenance-cert", "--dir", str(out), cwd=tmp_path, env=env)
    assert "kept existing" in again.stdout
