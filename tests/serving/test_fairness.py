"""`bentoml serve` for real under expensive requests, with a short timeout: a request past its timeout
answers 504 and leaves no ledger row while small requests keep being served (the large-job lane),
requests over the concurrency limit get 503, and /readyz answers 503 at once while a model worker
is down, then 200 again."""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import signal
import socket
import time
from pathlib import Path

import pytest

from _serving import Server, encode, ledger_holds, noise_image, promote, server_env, train_cyclegan
from _support import make_unaligned

pytestmark = pytest.mark.slow

TIMEOUT = 3  # seconds: a 4096x4096 output takes even the tiny model far longer
CONCURRENCY = 3


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("fairness")
    env = server_env(
        root,
        "cyclegan",
        TRANSFIGURE_WATERMARK_KEY="transfigure-fairness-tests",
        TRANSFIGURE_TIMEOUT=str(TIMEOUT),
        TRANSFIGURE_MAX_OUTPUT_PIXELS=str(4096 * 4096),
        TRANSFIGURE_MAX_CONCURRENCY=str(CONCURRENCY),
    )
    uri = env["MLFLOW_TRACKING_URI"]
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        mp.chdir(root)
        registered = train_cyclegan(root / "cyclegan", make_unaligned(root / "unaligned"))
        promote(uri, "cyclegan", registered["version"])
        srv = Server(root)
        try:
            yield srv.wait_ready()
        finally:
            srv.stop()


def ledger_rows(ledger: Path) -> int:
    from transfigure.provenance import Ledger

    return Ledger(ledger).count() if ledger.exists() else 0


def test_a_request_past_its_timeout_answers_504_leaves_no_ledger_row_and_small_ones_go_on(server):
    ledger = Path(os.environ["TRANSFIGURE_LEDGER"])
    rows = ledger_rows(ledger)
    with cf.ThreadPoolExecutor(1) as pool:
        large = pool.submit(
            server.post_image, "/translate?width=4096&height=4096", encode(noise_image(256, 256, seed=1))
        )
        time.sleep(0.5)  # the large job is running in its own lane meanwhile
        small = server.post_image("/translate", encode(noise_image(96, 80, seed=2)))
        late = large.result()
    assert late.status == 504 and late.headers["content-type"] == "application/json"
    assert late.json()["error"] == "timeout" and "TRANSFIGURE_TIMEOUT" in late.json()["detail"]
    assert "x-provenance-id" not in late.headers
    assert small.status == 200, small.body[:300]
    # the large lane finishes its forward pass, then drops the job instead of stamping it
    deadline = time.time() + 300
    while "past their deadline" not in server.output() and time.time() < deadline:
        time.sleep(1)
    assert "dropped 1 of 1 job(s) past their deadline" in server.output()
    assert ledger_rows(ledger) == rows + 1 and ledger_holds(ledger, small.headers["x-provenance-id"])
    after = server.post_image("/translate", encode(noise_image(96, 80, seed=3)))
    assert after.status == 200 and ledger_rows(ledger) == rows + 2


def test_requests_over_the_concurrency_limit_get_503_with_retry_after(server):
    held = []
    try:
        for _ in range(CONCURRENCY):  # requests whose body never finishes: in flight until the timeout
            conn = socket.create_connection(("127.0.0.1", server.port))
            conn.sendall(
                b"POST /translate HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 1000\r\n\r\n"
            )
            held.append(conn)
        time.sleep(0.3)
        refused = server.post_image("/translate", encode(noise_image(64, 64)))
        probe = server.request("GET", "/readyz")
    finally:
        for conn in held:
            conn.close()
    assert refused.status == 503 and refused.headers["retry-after"] == "1"
    doc = refused.json()
    assert doc["error"] == "overloaded" and f"TRANSFIGURE_MAX_CONCURRENCY={CONCURRENCY}" in doc["detail"]
    assert probe.status == 200  # probes are never refused for load
    time.sleep(TIMEOUT + 1)
    assert server.post_image("/translate", encode(noise_image(64, 64))).status == 200


def test_readyz_answers_503_within_a_second_while_the_model_worker_is_down(server):
    (worker,) = server.worker_pids("transfigure-model")
    os.kill(worker, signal.SIGKILL)
    t0 = time.perf_counter()
    reply = server.request("GET", "/readyz", timeout=10)
    elapsed = time.perf_counter() - t0
    assert reply.status == 503 and elapsed < 1.0, (reply.status, elapsed)
    doc = json.loads(reply.body)
    assert doc["error"] == "not ready" and "small-job model service" in doc["detail"]
    deadline = time.time() + 180
    while time.time() < deadline:  # the worker is restarted and loads the model again
        if server.request("GET", "/readyz", timeout=10).status == 200:
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"not ready again after the model worker was killed:\n{server.output()[-3000:]}")
    assert server.worker_pids("transfigure-model") != [worker]
    assert server.post_image("/translate", encode(noise_image(64, 64))).status == 200
