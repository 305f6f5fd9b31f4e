"""`bentoml serve` for real, on loopback, serving two registered champions (CycleGAN and a SPADE with
a style encoder and instance maps): stamped outputs, SPADE seeds, styles and instance maps,
verification, model info, adaptive batching of concurrent mixed-size requests, the large-job lane,
JSON {"error", "detail"} for every kind of bad input (BentoML's own answers included), and a server
that stays healthy afterwards."""

from __future__ import annotations

import base64
import concurrent.futures as cf
import io
import json
import re
import shutil

import pytest
from PIL import Image

from _serving import (
    BAD_REQUESTS,
    MAX_BODY,
    MAX_OUTPUT_PIXELS,
    MAX_PIXELS,
    PROJECT,
    Served,
    Server,
    encode,
    label_map,
    ledger_holds,
    noise_image,
    psnr,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_cyclegan(served):
    """The champion loaded in this process, to compare the server's outputs against."""
    from transfigure.tracking.registry import load_translator

    return load_translator("cyclegan", served.cyclegan["version"])


@pytest.fixture(scope="module")
def local_spade(served):
    from transfigure.tracking.registry import load_translator

    return load_translator("spade", served.spade["version"])


def check_stamped(served: Served, reply, expected_size: tuple[int, int], media_type: str = "image/png") -> Image.Image:
    """200, the image decodes at the expected size, carries its provenance id as watermark and a valid
    manifest, and the ledger recorded it."""
    from transfigure.provenance import detect_watermark, verify_image_bytes

    assert reply.status == 200, reply.body[:500]
    assert reply.headers["content-type"] == media_type
    pid = reply.headers["x-provenance-id"]
    assert re.fullmatch(r"[0-9a-f]{16}", pid)
    image = reply.image()
    assert image.size == expected_size
    detection = detect_watermark(image)
    assert detection.detected and detection.payload.hex() == pid
    report = verify_image_bytes(reply.body, source="served output")
    assert report["manifest"]["status"] == "valid", report["manifest"]
    assert pid in json.dumps(report["watermark"]) and report["ledger"] is not None
    assert ledger_holds(served.ledger, pid)
    return image


# -- translate -------------------------------------------------------------------------------------------
def test_multipart_upload_returns_the_stamped_translation(served, local_cyclegan):
    source = noise_image(96, 80, seed=1)  # watermarks need >= 64 px
    reply = served.server.post_multipart(
        "/translate", {"file": ("day.png", encode(source), "image/png")}, {"direction": "BtoA"}
    )
    image = check_stamped(served, reply, (96, 80))
    assert reply.headers["x-model-name"] == "cyclegan" and reply.headers["x-model-variant"] == "cyclegan"
    assert reply.headers["x-model-version"] == served.cyclegan["version"]
    assert reply.headers["x-model-run-id"] == served.cyclegan["run_id"]
    # the same pixels as translating locally, up to the (invisible) watermark
    assert psnr(image, local_cyclegan.translate(source, direction="BtoA")) > 30


def test_raw_body_with_size_format_and_json_answer(served, local_cyclegan):
    source = noise_image(96, 80, seed=2)
    jpeg = encode(source, "JPEG", quality=95)
    webp = served.server.post_image("/translate?width=128&format=webp&quality=90", jpeg, "image/jpeg")
    check_stamped(served, webp, (128, 107), media_type="image/webp")  # height from the aspect ratio
    assert webp.headers["content-disposition"].endswith('.webp"')

    reply = served.server.post_image("/translate?height=64&format=jpeg", jpeg, "image/jpeg", Accept="application/json")
    assert reply.status == 200 and reply.headers["content-type"] == "application/json"
    doc = reply.json()
    assert doc["provenance_id"] == reply.headers["x-provenance-id"] and doc["media_type"] == "image/jpeg"
    assert doc["model"] == {
        "name": "cyclegan",
        "version": served.cyclegan["version"],
        "variant": "cyclegan",
        "run_id": served.cyclegan["run_id"],
    }
    assert isinstance(doc["manifest"], dict) and doc["manifest"]
    image = Image.open(io.BytesIO(base64.b64decode(doc["image"])))
    assert image.format == "JPEG" and image.size == (77, 64)


def test_spade_translates_label_maps_and_refuses_unknown_ids(served):
    reply = served.server.post_image("/translate?model=spade", encode(label_map(80, 96)))
    check_stamped(served, reply, (80, 96))
    assert reply.headers["x-model-name"] == "spade" and reply.headers["x-model-version"] == served.spade["version"]

    bad = served.server.post_multipart(
        "/translate?model=spade", {"file": ("labels.png", encode(label_map(80, 96, (0, 1, 9, 200))), "image/png")}
    )
    assert bad.status == 422, bad.body
    assert bad.json()["error"] == "unknown label ids"
    assert "[9, 200]" in bad.json()["detail"] and "labels.png" in bad.json()["detail"]
    colour = served.server.post_image("/translate?model=spade", encode(noise_image(80, 96)))
    assert colour.status == 422 and "mode 'RGB'" in colour.json()["detail"]
    wrong_direction = served.server.post_image("/translate?model=spade&direction=BtoA", encode(label_map(80, 96)))
    assert wrong_direction.status == 400 and "AtoB" in wrong_direction.json()["detail"]


def test_spade_seeds_styles_and_instance_maps(served, local_spade):
    labels = label_map(80, 64)
    server = served.server

    def send(fields=None, **files):
        parts = {"file": ("labels.png", encode(labels), "image/png")}
        parts.update({k: (f"{k}.png", encode(v), "image/png") for k, v in files.items()})
        return server.post_multipart("/translate?model=spade", parts, fields or {})

    seed7, seed7_again, seed8 = send({"seed": "7"}), send({"seed": "7"}), send({"seed": "8"})
    images = [check_stamped(served, r, (80, 64)) for r in (seed7, seed7_again, seed8)]
    local7, local8 = local_spade.translate(labels, seed=7), local_spade.translate(labels, seed=8)
    # the same seed gives the same pixels (up to each output's own watermark), another seed another image
    assert psnr(images[0], local7) > 30 and psnr(images[1], local7) > 30 and psnr(images[0], images[1]) > 30
    assert psnr(images[2], local8) > 30 and psnr(images[2], local7) < psnr(images[2], local8) - 3
    style = noise_image(96, 96, seed=11)
    styled = check_stamped(served, send(style=style), (80, 64))
    assert psnr(styled, local_spade.translate(labels, style=style)) > 30
    instances = label_map(80, 64, (0, 1, 2, 3))
    with_instances = check_stamped(served, send({"seed": "7"}, instance=instances), (80, 64))
    assert psnr(with_instances, local_spade.translate(labels, instance=instances, seed=7)) > 30

    refusals = {
        "seed for cyclegan": server.post_image("/translate?seed=3", encode(noise_image(64, 64))),
        "style for cyclegan": server.post_multipart(
            "/translate",
            {
                "file": ("a.png", encode(noise_image(64, 64)), "image/png"),
                "style": ("s.png", encode(style), "image/png"),
            },
        ),
        "seed and style": send({"seed": "1"}, style=style),
        "instance of another size": send(instance=label_map(64, 64)),
        "bad seed": server.post_image("/translate?model=spade&seed=-4", encode(labels)),
    }
    expected = {
        "seed for cyclegan": (400, "for SPADE models"),
        "style for cyclegan": (400, "a style image"),
        "seed and style": (400, "exclude each other"),
        "instance of another size": (422, "same size"),
        "bad seed": (400, "seed"),
    }
    for case, reply in refusals.items():
        status, words = expected[case]
        assert reply.status == status and words in reply.json()["detail"], (case, reply.body[:300])


def test_large_outputs_run_in_the_large_job_lane(served):
    before = lane_batches(served.server)
    big = served.server.post_image("/translate?width=540&height=540", encode(noise_image(96, 80, seed=12)))
    check_stamped(served, big, (540, 540))
    small = served.server.post_image("/translate?width=256&height=256", encode(noise_image(96, 80, seed=13)))
    check_stamped(served, small, (256, 256))
    after = lane_batches(served.server)
    assert after["transfigure-model-large"] == before["transfigure-model-large"] + 1
    assert after["transfigure-model"] == before["transfigure-model"] + 1
    over = served.server.post_image("/translate?width=600&height=600", encode(noise_image(96, 80)))
    assert over.status == 413 and "TRANSFIGURE_MAX_OUTPUT_PIXELS" in over.json()["detail"], over.body


def lane_batches(server: Server) -> dict[str, float]:
    """Batches each model lane ran so far, from BentoML's Prometheus metrics."""
    text = server.request("GET", "/metrics").body.decode()
    counts = {"transfigure-model": 0.0, "transfigure-model-large": 0.0}
    for labels, value in re.findall(r"adaptive_batch_size_count{([^}]*)} ([0-9.e+]+)", text):
        lane = re.search(r'runner_name="([^"]+)"', labels)
        if 'method_name="translate_batch"' in labels and lane and lane.group(1) in counts:
            counts[lane.group(1)] += float(value)
    return counts


def test_concurrent_mixed_size_requests_are_batched_and_each_gets_its_own_output(served, local_cyclegan):
    sizes = [(64, 64), (96, 80), (128, 128), (80, 112)] * 4
    sources = [noise_image(w, h, seed=100 + i) for i, (w, h) in enumerate(sizes)]
    before = batch_histogram(served.server)

    def send(i: int):
        return served.server.post_image("/translate", encode(sources[i]))

    with cf.ThreadPoolExecutor(len(sources)) as pool:
        replies = list(pool.map(send, range(len(sources))))
    after = batch_histogram(served.server)

    ids = set()
    for i, reply in enumerate(replies):
        image = check_stamped(served, reply, sizes[i])
        ids.add(reply.headers["x-provenance-id"])
        own = psnr(image, local_cyclegan.translate(sources[i]))
        other = psnr(image, local_cyclegan.translate(sources[(i + 4) % len(sources)]))  # same size, other input
        assert own > 30 and own > other + 3, (i, own, other)
    assert len(ids) == len(sources)
    batches, images = after[0] - before[0], after[1] - before[1]
    assert images == len(sources) and batches < len(sources), (batches, images)  # some batch held several


def batch_histogram(server: Server) -> tuple[float, float]:
    """(number of batches, number of jobs) of translate_batch so far, from BentoML's Prometheus metrics."""
    text = server.request("GET", "/metrics").body.decode()
    values = {}
    for kind in ("count", "sum"):
        found = re.findall(
            rf'adaptive_batch_size_{kind}{{[^}}]*method_name="translate_batch"[^}}]*}} ([0-9.e+]+)', text
        )
        values[kind] = sum(float(v) for v in found)
    return values["count"], values["sum"]


# -- bad input: 4xx JSON, never 500 ------------------------------------------------------------------------
@pytest.mark.parametrize("case", list(BAD_REQUESTS), ids=list(BAD_REQUESTS))
def test_bad_input_gets_a_4xx_json_error(served, case):
    (path, body, headers), status, words = BAD_REQUESTS[case]
    reply = served.server.request("POST", path, body, headers)
    assert reply.status == status, (case, reply.status, reply.body[:300])
    assert reply.headers["content-type"] == "application/json"
    doc = reply.json()
    assert words in doc["error"] and doc["detail"], doc
    assert served.server.request("GET", "/livez").status == 200


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "error"),
    [
        ("GET", "/nowhere", None, 404, "not found"),
        ("GET", "/translate", None, 405, "method not allowed"),
    ],
)
def test_bentoml_s_own_error_answers_have_the_same_shape(served, method, path, body, status, error):
    reply = served.server.request(method, path, body, {"Content-Type": "application/json"})
    assert reply.status == status and reply.headers["content-type"] == "application/json"
    doc = reply.json()
    assert set(doc) == {"error", "detail"} and doc["error"] == error and doc["detail"], doc


def test_bad_multipart_uploads_and_streamed_oversize_bodies(served):
    server = served.server
    no_file = server.post_multipart("/translate", {}, {"direction": "AtoB"})
    assert no_file.status == 400 and no_file.json()["error"] == "no image"
    wrong_field = server.post_multipart("/translate", {"picture": ("a.png", encode(noise_image(64, 64)), "image/png")})
    assert wrong_field.status == 400 and "'file'" in wrong_field.json()["detail"]
    big = b"\0" * (MAX_BODY + 100_000)
    for path in ("/translate", "/verify", "/info"):  # BentoML's own JSON endpoint is limited too
        streamed = server.request("POST", path, big, {"Content-Type": "image/png"}, chunked=True)
        assert streamed.status == 413 and streamed.json()["error"] == "request body too large", (
            path,
            streamed.body[:200],
        )
    multipart_big = server.post_multipart("/translate", {"file": ("big.png", big, "image/png")})
    assert multipart_big.status == 413


def test_server_stays_healthy_after_bad_input(served):
    for path in ("/healthz", "/livez", "/readyz"):
        assert served.server.request("GET", path).status == 200
    check_stamped(served, served.server.post_image("/translate", encode(noise_image(64, 64, seed=9))), (64, 64))
    log = served.server.output()
    assert "Traceback" not in log and "status=500" not in log, log[-3000:]
    assert served.server.proc.poll() is None


# -- verify, info, BentoML's endpoints ---------------------------------------------------------------------
def test_verify_reports_watermark_manifest_and_ledger(served):
    stamped = served.server.post_image("/translate", encode(noise_image(80, 80, seed=4)))
    pid = stamped.headers["x-provenance-id"]
    report = served.server.post_multipart("/verify", {"file": ("out.png", stamped.body, "image/png")})
    assert report.status == 200, report.body
    doc = report.json()
    assert doc["watermark"]["detected"] is True and pid in json.dumps(doc["watermark"])
    assert doc["manifest"]["status"] == "valid" and doc["ledger"] is not None

    plain = served.server.post_image("/verify", encode(noise_image(64, 64, seed=5)))
    assert plain.status == 200
    assert plain.json()["watermark"]["detected"] is False and plain.json()["manifest"]["status"] == "absent"


def test_info_lists_the_served_models_and_limits(served):
    reply = served.server.request("POST", "/info", b"{}", {"Content-Type": "application/json"})
    assert reply.status == 200
    info = reply.json()
    assert info["model"] == "cyclegan" and info["alias"] == "champion" and info["variant"] == "cyclegan"
    assert info["run_id"] == served.cyclegan["run_id"] and info["directions"] == ["AtoB", "BtoA"]
    cyc, spade = info["models"]
    assert spade["model"] == "spade" and spade["version"] == served.spade["version"]
    assert spade["takes_label_maps"] is True and spade["label_nc"] == {"AtoB": 4} and spade["directions"] == ["AtoB"]
    assert cyc["source"] == "registry" and cyc["device"] == "cpu" and "loss_G" in cyc["metrics"]
    assert spade["takes_style"] is True and spade["takes_instance_maps"] is True and cyc["takes_style"] is False
    assert info["limits"] == {
        "max_body_bytes": MAX_BODY,
        "max_pixels": MAX_PIXELS,
        "max_output_pixels": MAX_OUTPUT_PIXELS,
        "min_side": 64,
        "timeout_s": 60.0,
    }
    assert set(info["lanes"]) == {"small", "large"}


def test_bentoml_health_metrics_and_openapi_stay_on(served):
    for path in ("/healthz", "/livez", "/readyz", "/metrics"):
        assert served.server.request("GET", path).status == 200, path
    spec = served.server.request("GET", "/docs.json").json()
    assert {"/translate", "/verify", "/info"} <= set(spec["paths"])
    assert "multipart/form-data" in spec["paths"]["/translate"]["post"]["requestBody"]["content"]
    metrics = served.server.request("GET", "/metrics").body.decode()
    assert "bentoml_service_request_total" in metrics
    assert re.search(r'transfigure_outputs_total{[^}]*model="cyclegan"', metrics)
    assert re.search(r'transfigure_refused_requests_total{[^}]*error="not an image"', metrics)  # after the bad inputs


# -- start-up ---------------------------------------------------------------------------------------------
def test_refuses_to_start_without_a_champion(tmp_path, mlflow_uri):
    shutil.copy(PROJECT / "bentofile.yaml", tmp_path / "bentofile.yaml")  # plain `bentoml serve`, as users run it
    server = Server(tmp_path, args=[], env={"TRANSFIGURE_MODEL_CACHE": str(tmp_path / "cache")})
    out = server.refused(timeout=90)  # without a champion
    assert "transfigure service cannot start" in out and "alias 'champion'" in out
    assert "kedro run --pipeline=train_cyclegan" in out and "transfigure promote cyclegan --version N" in out
