"""Request validation without a server: untrusted image bytes, parameters, uploads and the body limit
(a small Starlette app under starlette's TestClient runs the same code the service runs)."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from _serving import bomb_png, encode, noise_image
from transfigure.serving.middleware import BodyLimitMiddleware
from transfigure.serving.validation import (
    MAX_SEED,
    TRANSLATE_FILES,
    TRANSLATE_PARAMS,
    InputError,
    TranslateParams,
    decode_image,
    open_checked,
    output_size,
    parse_translate_params,
    read_upload,
)

MP = 1_000_000


def refused(fn, *args, **kwargs) -> InputError:
    with pytest.raises(InputError) as info:
        fn(*args, **kwargs)
    return info.value


# -- untrusted bytes ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "I;16"])
def test_decode_keeps_size_and_transportable_modes(mode):
    source = noise_image(37, 23, mode="RGB")
    source = source.convert(mode) if mode != "I;16" else Image.fromarray(np.full((23, 37), 40000, np.uint16))
    img = decode_image(encode(source), max_pixels=MP, source="test")
    assert img.size == (37, 23) and img.mode == mode


def test_decode_converts_cmyk_keeps_palette_and_applies_exif_orientation():
    cmyk = decode_image(encode(noise_image(20, 10).convert("CMYK"), "JPEG"), max_pixels=MP, source="t")
    assert cmyk.mode == "RGB" and cmyk.size == (20, 10)
    pal = noise_image(20, 10).convert("P")
    got = decode_image(encode(pal), max_pixels=MP, source="t")
    assert got.mode == "P" and got.getpalette()[:30] == pal.getpalette()[:30]
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: the decoded image is upright, so 10x20
    rotated = decode_image(encode(noise_image(20, 10), "JPEG", exif=exif), max_pixels=MP, source="t")
    assert rotated.size == (10, 20)


@pytest.mark.parametrize(
    ("data", "status", "error"),
    [
        (b"", 400, "empty image"),
        (b"%PDF-1.7 definitely not an image", 422, "not an image"),
        (encode(noise_image(200, 100))[:400], 422, "truncated image"),
        (bomb_png(), 413, "image too large"),
        (bomb_png(1001, 1000), 413, "image too large"),  # over max_pixels, below Pillow's own guard
        (encode(Image.new("RGB", (2000, 501))), 413, "image too large"),
    ],
    ids=["empty", "not-an-image", "truncated", "bomb-50000x50000", "bomb-over-max-pixels", "over-max-pixels"],
)
def test_bad_bytes_are_refused_with_status_and_reason(data, status, error):
    err = refused(decode_image, data, max_pixels=MP, source="field 'file' (x.png)")
    assert (err.status, err.error) == (status, error)
    assert "field 'file' (x.png)" in err.detail


def test_mutated_files_of_every_format_only_ever_give_input_errors():
    """Truncations and bit flips of PNG, JPEG, WebP, TIFF, GIF and BMP files: a clean image or an InputError, nothing else."""
    rng = np.random.default_rng(0)
    for fmt in ("PNG", "JPEG", "WEBP", "TIFF", "GIF", "BMP"):
        data = encode(noise_image(40, 30, seed=1), fmt)
        for _ in range(40):
            mutated = bytearray(data[: rng.integers(1, len(data) + 1)])
            for pos in rng.integers(0, len(mutated), rng.integers(0, 4)):
                mutated[pos] ^= int(rng.integers(1, 256))
            try:
                img = decode_image(bytes(mutated), max_pixels=MP, source="fuzz")
            except InputError as err:
                assert 400 <= err.status < 500
            else:
                assert img.size[0] * img.size[1] <= MP


def test_size_is_checked_before_any_pixel_is_decoded():
    img = open_checked(bomb_png(1000, 1000), max_pixels=MP, source="t")  # declared size fits: not decoded yet
    assert img.size == (1000, 1000)
    err = refused(decode_image, bomb_png(1000, 1000), max_pixels=MP, source="t")  # the pixel data is short
    assert err.status == 422


# -- parameters ---------------------------------------------------------------------------------------------
def test_parameters_parse_and_default():
    p = parse_translate_params(
        {"direction": "BtoA", "width": "64", "format": "JPG", "quality": "80", "model": "cyclegan"},
        min_side=16,
        max_pixels=MP,
    )
    assert p == TranslateParams(model="cyclegan", direction="BtoA", width=64, height=None, fmt="JPEG", quality=80)
    assert parse_translate_params({}, min_side=16, max_pixels=MP) == TranslateParams()
    assert parse_translate_params({"seed": "0"}, min_side=16, max_pixels=MP).seed == 0
    assert parse_translate_params({"seed": str(MAX_SEED)}, min_side=16, max_pixels=MP).seed == MAX_SEED


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"format": "gif"}, "invalid format"),
        ({"quality": "80"}, "invalid quality"),
        ({"format": "webp", "quality": "101"}, "invalid quality"),
        ({"direction": "AtoC"}, "invalid direction"),
        ({"width": "-3"}, "invalid width"),
        ({"width": "8"}, "invalid width"),
        ({"height": "1e3"}, "invalid height"),
        ({"model": "../etc"}, "invalid model"),
        ({"seed": "-1"}, "invalid seed"),
        ({"seed": "4294967296"}, "invalid seed"),
        ({"seed": "abc"}, "invalid seed"),
    ],
)
def test_bad_parameters_are_400(params, error):
    err = refused(parse_translate_params, params, min_side=16, max_pixels=MP)
    assert err.status == 400 and err.error == error


def test_output_size_keeps_the_aspect_ratio_and_enforces_limits():
    assert output_size((200, 100), TranslateParams(width=64), min_side=16, max_pixels=MP) == (64, 32)
    assert output_size((200, 100), TranslateParams(height=50), min_side=16, max_pixels=MP) == (100, 50)
    assert output_size((200, 100), TranslateParams(), min_side=16, max_pixels=MP) is None
    assert refused(output_size, (200, 10), TranslateParams(width=64), min_side=16, max_pixels=MP).status == 400
    assert refused(output_size, (8, 8), TranslateParams(), min_side=16, max_pixels=MP).status == 422
    assert (
        refused(output_size, (10, 10), TranslateParams(width=1001, height=1000), min_side=16, max_pixels=MP).status
        == 413
    )


def test_output_pixel_limit_names_its_variable_for_asked_and_implied_sizes():
    limits = {"min_side": 16, "max_pixels": MP, "max_output_pixels": 256 * 256}
    assert output_size((300, 300), TranslateParams(width=256, height=256), **limits) == (256, 256)
    asked = refused(output_size, (64, 64), TranslateParams(width=512), **limits)  # 512x512 from the aspect ratio
    implied = refused(output_size, (300, 300), TranslateParams(), **limits)  # the input's own size
    for err in (asked, implied):
        assert (err.status, err.error) == (413, "output too large")
        assert "TRANSFIGURE_MAX_OUTPUT_PIXELS" in err.detail and "65,536" in err.detail
    assert "512x512" in asked.detail and "300x300" in implied.detail


# -- uploads and the body limit, over ASGI ----------------------------------------------------------------
LIMIT = 50_000


async def upload_endpoint(request: Request) -> JSONResponse:
    try:
        upload = await read_upload(request, max_body_bytes=LIMIT, allowed_params=TRANSLATE_PARAMS)
    except InputError as err:
        return err.response()
    return JSONResponse({"bytes": len(upload.data), "source": upload.source, "params": upload.params})


async def spade_upload_endpoint(request: Request) -> JSONResponse:
    try:
        upload = await read_upload(
            request, max_body_bytes=LIMIT, allowed_params=TRANSLATE_PARAMS, allowed_files=TRANSLATE_FILES
        )
    except InputError as err:
        return err.response()
    files = {k: [len(data), source] for k, (data, source) in upload.files.items()}
    return JSONResponse({"bytes": len(upload.data), "files": files, "params": upload.params})


async def json_endpoint(request: Request) -> JSONResponse:
    return JSONResponse({"bytes": len(await request.body())})  # reads the body without any limit of its own


@pytest.fixture(scope="module")
def client():
    app = Starlette(
        routes=[
            Route("/upload", upload_endpoint, methods=["POST"]),
            Route("/spade", spade_upload_endpoint, methods=["POST"]),
            Route("/json", json_endpoint, methods=["POST"]),
        ]
    )
    with TestClient(BodyLimitMiddleware(app, max_body_bytes=LIMIT)) as c:
        yield c


def test_multipart_and_raw_uploads(client):
    png = encode(noise_image(32, 32))
    r = client.post("/upload?direction=BtoA", files={"file": ("a.png", png, "image/png")}, data={"width": "64"})
    assert r.status_code == 200
    assert r.json() == {
        "bytes": len(png),
        "source": "form field 'file' (a.png)",
        "params": {"direction": "BtoA", "width": "64"},
    }
    r = client.post("/upload", content=png, headers={"Content-Type": "image/png"})
    assert r.status_code == 200 and r.json()["source"] == "request body (image/png)"


def test_spade_uploads_carry_an_instance_map_and_a_style_image(client):
    png = encode(noise_image(32, 32))
    files = {
        "file": ("l.png", png, "image/png"),
        "instance": ("i.png", b"ii", "image/png"),
        "style": ("s.png", b"s", ""),
    }
    r = client.post("/spade", files=files, data={"seed": "7"})
    assert r.status_code == 200, r.text
    assert r.json()["files"] == {
        "instance": [2, "form field 'instance' (i.png)"],
        "style": [1, "form field 'style' (s.png)"],
    }
    assert r.json()["params"] == {"seed": "7"}
    refusals = {
        "not a file": client.post("/spade", files={"file": ("l.png", png, "image/png")}, data={"style": "x"}),
        "empty": client.post("/spade", files={"file": ("l.png", png, "image/png"), "style": ("s.png", b"", "")}),
        "twice": client.post(
            "/spade",
            files=[("file", ("l.png", png, "")), ("style", ("a.png", b"a", "")), ("style", ("b.png", b"b", ""))],
        ),
        "elsewhere": client.post("/upload", files={"file": ("l.png", png, "image/png"), "style": ("s.png", b"s", "")}),
    }
    for case, reply in refusals.items():
        assert reply.status_code == 400, (case, reply.text)
    assert "style" in refusals["not a file"].json()["detail"] and refusals["empty"].json()["error"] == "empty style"


@pytest.mark.parametrize(
    ("kwargs", "status", "error"),
    [
        ({"content": b"x", "headers": {"Content-Type": "text/plain"}}, 415, "unsupported content type"),
        ({"content": b"x"}, 415, "missing content type"),
        ({"content": b"", "headers": {"Content-Type": "image/png"}}, 400, "empty image"),
        ({"files": {"picture": ("a.png", b"x", "image/png")}}, 400, "unknown form field"),
        ({"data": {"direction": "AtoB"}, "files": {"other": ("", b"", "text/plain")}}, 400, "unknown form field"),
        (
            {"files": {"file": ("a.png", b"x", "image/png")}, "data": {"width": "64"}, "params": {"width": "32"}},
            400,
            "conflicting parameter",
        ),
        (
            {"content": b"x", "headers": {"Content-Type": "image/png"}, "params": {"colour": "red"}},
            400,
            "unknown parameter",
        ),
        (
            {"content": b"--x\r\nno headers", "headers": {"Content-Type": "multipart/form-data"}},
            400,
            "malformed multipart body",
        ),
        (
            {"content": b"garbage", "headers": {"Content-Type": "multipart/form-data; boundary=zz"}},
            400,
            "malformed multipart body",
        ),
        (
            {"files": [("file", ("a.png", b"x", "image/png")), ("file", ("b.png", b"y", "image/png"))]},
            400,
            "malformed multipart body",
        ),
    ],
)
def test_bad_uploads(client, kwargs, status, error):
    r = client.post("/upload", **kwargs)
    assert r.status_code == status and r.json()["error"] == error, r.text


def test_body_limit_declared_streamed_and_multipart(client):
    big = b"\0" * (LIMIT + 1)
    declared = client.post("/upload", content=big, headers={"Content-Type": "image/png"})
    streamed = client.post("/upload", content=iter([big[:30_000], big[30_000:]]), headers={"Content-Type": "image/png"})
    form = client.post("/upload", files={"file": ("a.png", big, "image/png")})
    unprotected = client.post(
        "/json", content=iter([big[:30_000], big[30_000:]]), headers={"Content-Type": "application/json"}
    )
    for r in (declared, streamed, form, unprotected):
        assert r.status_code == 413 and r.json()["error"] == "request body too large", r.text
    assert client.post("/json", content=iter([b"{}"]), headers={"Content-Type": "application/json"}).json() == {
        "bytes": 2
    }
    assert client.post("/upload", content=b"\0" * LIMIT, headers={"Content-Type": "image/png"}).json()["bytes"] == LIMIT


def test_body_limit_guards_what_the_application_reads():
    """Past the declared-length and chunked checks (e.g. a lying client), the bytes read are still counted."""
    seen = []

    async def app(scope, receive, send):
        while True:
            message = await receive()
            seen.append(len(message.get("body", b"")))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    messages = [
        {"type": "http.request", "body": b"\0" * 40, "more_body": True},
        {"type": "http.request", "body": b"\0" * 40, "more_body": False},
    ]
    sent = []

    async def receive():
        return messages.pop(0)

    async def send(message):
        sent.append(message)

    asyncio.run(BodyLimitMiddleware(app, max_body_bytes=50)({"type": "http", "headers": []}, receive, send))
    assert sent[0]["status"] == 413 and json.loads(sent[1]["body"])["error"] == "request body too large"
    assert seen == [40]  # the application never got the bytes past the limit
