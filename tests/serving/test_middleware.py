"""The HTTP service's ASGI middlewares without a server: every error answer in one shape, the request
timeout and the concurrency limit (the body limit: test_validation.py)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from transfigure.serving.middleware import ARRIVAL_KEY, ErrorShapeMiddleware, TrafficMiddleware


async def call(app: Any, path: str = "/translate", method: str = "POST") -> tuple[int, dict[str, str], bytes]:
    """One request through ``app``: (status, headers, body)."""
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    await app({"type": "http", "method": method, "path": path, "headers": []}, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body


def answering(status: int, body: bytes, content_type: bytes = b"application/json", chunks: int = 1) -> Any:
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", content_type)]})
        step = max(1, len(body) // chunks)
        parts = [body[i : i + step] for i in range(0, len(body), step)] or [b""]
        for i, part in enumerate(parts):
            await send({"type": "http.response.body", "body": part, "more_body": i < len(parts) - 1})

    return app


# -- one error shape ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "status", "body", "error", "words"),
    [
        ("/readyz", 503, b"Service is not ready", "not ready", "Service is not ready"),
        ("/translate", 429, b'{"error": "Too many requests"}', "overloaded", "retry later"),
        ("/translate", 504, b'{"error": "Not able to process the request in 60 seconds"}', "gateway timeout", "60"),
        (
            "/info",
            400,
            b'{"error": "1 validation error for Input", "detail": [{"msg": "Invalid JSON", "loc": []}]}',
            "bad request",
            "1 validation error for Input: Invalid JSON (at the body)",
        ),
        ("/nowhere", 404, b'{"detail": "Not Found"}', "not found", "POST /translate"),
        ("/translate", 405, b"Method Not Allowed", "method not allowed", "/translate does not take POST"),
        (
            "/info",
            500,
            b'{"error": "An unexpected error has occurred, please check the server log."}',
            "internal error",
            "log",
        ),
    ],
)
def test_foreign_error_answers_are_reshaped(path, status, body, error, words):
    got_status, headers, got = asyncio.run(call(ErrorShapeMiddleware(answering(status, body, chunks=3)), path))
    doc = json.loads(got)
    assert got_status == status and set(doc) == {"error", "detail"}
    assert doc["error"] == error and words in doc["detail"], doc
    assert headers["content-type"] == "application/json" and int(headers["content-length"]) == len(got)


def test_shaped_errors_and_successes_pass_untouched():
    shaped = json.dumps({"error": "output too large", "detail": "ask for less"}).encode()
    assert asyncio.run(call(ErrorShapeMiddleware(answering(413, shaped))))[2] == shaped
    image = b"\x89PNG" + bytes(range(256)) * 40
    status, headers, body = asyncio.run(call(ErrorShapeMiddleware(answering(200, image, b"image/png", chunks=4))))
    assert (status, headers["content-type"], body) == (200, "image/png", image)


def test_an_exception_before_the_answer_becomes_a_shaped_500():
    async def broken(scope, receive, send):
        raise RuntimeError("boom")

    status, _, body = asyncio.run(call(ErrorShapeMiddleware(broken)))
    assert status == 500 and json.loads(body)["error"] == "internal error"


# -- timeout and concurrency ----------------------------------------------------------------------------
def sleeping(seconds: float, seen: dict[str, Any]) -> Any:
    async def app(scope, receive, send):
        seen["arrival"] = scope.get(ARRIVAL_KEY)
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            seen["cancelled"] = True
            raise
        await answering(200, b"{}")(scope, receive, send)

    return app


def test_a_request_past_the_timeout_is_cancelled_and_answered_504():
    seen: dict[str, Any] = {}
    status, _, body = asyncio.run(call(TrafficMiddleware(sleeping(5, seen), timeout=0.2)))
    doc = json.loads(body)
    assert status == 504 and doc["error"] == "timeout" and seen["cancelled"] is True
    assert "TRANSFIGURE_TIMEOUT" in doc["detail"] and "0.2 s" in doc["detail"] and "no image" in doc["detail"]
    assert isinstance(seen["arrival"], float)
    assert asyncio.run(call(TrafficMiddleware(sleeping(0, seen), timeout=5)))[0] == 200


def test_requests_over_the_concurrency_limit_get_503_but_probes_pass():
    async def scenario():
        middleware = TrafficMiddleware(sleeping(0.3, {}), timeout=5, max_concurrency=2, limit_name="LIMIT=2")
        calls = [call(middleware) for _ in range(3)] + [call(middleware, "/readyz", "GET")]
        return await asyncio.gather(*calls)

    replies = asyncio.run(scenario())
    statuses = sorted(status for status, _, _ in replies)
    assert statuses == [200, 200, 200, 503], statuses  # two requests and the probe; the third request refused
    status, headers, body = next(r for r in replies if r[0] == 503)
    assert headers["retry-after"] == "1" and json.loads(body)["error"] == "overloaded"
    assert "LIMIT=2" in json.loads(body)["detail"]
