"""ASGI middlewares of the HTTP service: one error shape, request timeout and concurrency limit, body limit.

Added to the service in this order (outermost first):

* :class:`ErrorShapeMiddleware` - every 4xx/5xx answer is JSON ``{"error": ..., "detail": ...}``,
  also those BentoML and Starlette write themselves (unknown route, wrong method, validation of
  BentoML's own JSON endpoints, ``/readyz`` not ready, an unexpected exception);
* :class:`TrafficMiddleware` - the request timeout (504) and the concurrency limit (503), in place
  of BentoML's own (which sit outside any middleware a service adds, answer in their own shape
  and, for the limit, with 429); it also stamps each request's arrival time into the ASGI scope
  (:data:`ARRIVAL_KEY`), from which ``/translate`` derives its job's deadline;
* :class:`BodyLimitMiddleware` - the body limit (BentoML has none).

The body limit: a declared ``Content-Length`` over the limit is refused before the application
runs. A body without a declared length (``Transfer-Encoding: chunked``) is read first, up to the
limit, and replayed to the application, so an oversize one is refused before the application runs
too. As a last guard the bytes the application receives are counted: past the limit its
``receive`` raises :class:`~transfigure.serving.validation.BodyTooLarge` and, whatever the
application answers then (BentoML turns unknown exceptions into 500), the client gets
``413 {"error": "request body too large", ...}``. The unread rest of a refused body is drained (up
to ``drain_bytes``) before answering, so ordinary HTTP clients, which send the whole body before
reading the answer, see the 413 instead of a reset connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from http import HTTPStatus
from typing import Any

from pydantic import ValidationError

from transfigure.serving.validation import BodyTooLarge, ErrorBody, body_too_large

Scope = dict[str, Any]
Message = dict[str, Any]

logger = logging.getLogger("transfigure.serving")

#: ASGI scope key holding the request's arrival time (``time.time()``), set by :class:`TrafficMiddleware`
ARRIVAL_KEY = "transfigure.arrival"
#: paths of BentoML's probes and metrics: never refused for load (orchestrators must see them)
PROBE_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/metrics"})
#: the endpoints, named in 404/405 details
ENDPOINTS = "GET /studio/ (the web studio), POST /translate, POST /verify, POST /info, GET /healthz, /livez, /readyz, /metrics, /docs.json"


async def send_error(send: Any, status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> None:
    """Answer :class:`~transfigure.serving.validation.ErrorBody` with ``status`` (and extra ``headers``) on a raw ASGI ``send``."""
    body = ErrorBody(error=error, detail=detail).model_dump_json().encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def timeout_detail(timeout: float) -> str:
    return (
        f"the request did not finish within {timeout:g} s (TRANSFIGURE_TIMEOUT); its work was dropped: "
        "no image was delivered or recorded. Ask for a smaller output, or retry when the service is less busy"
    )


# -- one error shape -----------------------------------------------------------------------------------
def _is_shaped(doc: Any) -> bool:
    try:
        ErrorBody.model_validate(doc)
    except ValidationError:
        return False
    return True


def shape_error(status: int, body: bytes, method: str, path: str) -> tuple[str, str]:
    """``(error, detail)`` for an error answer written in another shape (BentoML's, Starlette's, plain text)."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        doc: Any = json.loads(text) if text else None
    except ValueError:
        doc = None
    try:
        phrase = HTTPStatus(status).phrase.lower()
    except ValueError:
        phrase = "error"
    error, detail = phrase, text
    if isinstance(doc, dict):
        message = doc.get("error")
        extra = doc.get("detail")
        if isinstance(extra, list) and all(isinstance(e, dict) and "msg" in e for e in extra):  # pydantic's errors
            extra = "; ".join(f"{e['msg']} (at {'.'.join(map(str, e.get('loc', ()))) or 'the body'})" for e in extra)
        elif isinstance(extra, (list, dict)):
            extra = json.dumps(extra)
        detail = ": ".join(str(x) for x in (message, extra) if x) or phrase
    elif isinstance(doc, str):
        detail = doc
    if status == 404:
        error, detail = "not found", f"no endpoint {method} {path}; the endpoints are {ENDPOINTS}"
    elif status == 405:
        error, detail = "method not allowed", f"{path} does not take {method}; the endpoints are {ENDPOINTS}"
    elif status == 503 and path == "/readyz":
        error = "not ready"
    elif status == 429:
        error, detail = "overloaded", f"{detail or phrase}; retry later"
    elif status >= 500 and "unexpected error" in detail.lower():
        error, detail = (
            "internal error",
            "an unexpected error occurred while answering; the server log has the traceback",
        )
    return error, detail or phrase


class ErrorShapeMiddleware:
    """Rewrite every 4xx/5xx answer that is not ``{"error": str, "detail": str}`` into that shape.

    Only error answers are held back (they are small); all others stream through untouched. An
    exception that escapes the application before it answered becomes ``500 {"error": "internal
    error", ...}`` (logged with its traceback).
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held: dict[str, Any] = {"start": None, "chunks": [], "started": False}

        async def shaping_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                held["started"] = True
                if message["status"] >= 400:
                    held["start"] = message
                    return
            elif message["type"] == "http.response.body" and held["start"] is not None:
                held["chunks"].append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                start, held["start"] = held["start"], None
                await self._send_shaped(scope, send, start, b"".join(held["chunks"]))
                return
            await send(message)

        try:
            await self.app(scope, receive, shaping_send)
        except Exception:
            if held["started"]:
                raise
            logger.exception("unexpected error answering %s %s", scope.get("method"), scope.get("path"))
            await send_error(
                send, 500, "internal error", "an unexpected error occurred; the server log has the traceback"
            )

    @staticmethod
    async def _send_shaped(scope: Scope, send: Any, start: Message, body: bytes) -> None:
        status = int(start["status"])
        try:
            doc = json.loads(body) if body else None
        except ValueError:
            doc = None
        if _is_shaped(doc):
            new_body = body
        else:
            error, detail = shape_error(status, body, scope.get("method", ""), scope.get("path", ""))
            new_body = ErrorBody(error=error, detail=detail).model_dump_json().encode()
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() not in (b"content-length", b"content-type")]
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(new_body)).encode())]
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": new_body, "more_body": False})


# -- timeout and concurrency -----------------------------------------------------------------------------
class TrafficMiddleware:
    """Request timeout (504) and concurrency limit (503 + ``Retry-After``), answered ``{"error", "detail"}``.

    ``timeout``: seconds from arrival until a request that has not started its answer is cancelled
    and answered 504 (the model workers drop its job at its deadline, a little earlier, so nothing
    is recorded for it). ``max_concurrency``: requests in flight in this worker before new ones
    are refused with 503 (None: no limit); BentoML's probes and metrics are never refused.
    """

    def __init__(self, app: Any, timeout: float, max_concurrency: int | None = None, limit_name: str = "") -> None:
        self.app = app
        self.timeout = float(timeout)
        self.max_concurrency = max_concurrency
        self.limit_name = limit_name or f"max_concurrency={max_concurrency}"
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope[ARRIVAL_KEY] = time.time()
        probe = scope.get("path") in PROBE_PATHS
        if not probe and self.max_concurrency is not None and self.in_flight >= self.max_concurrency:
            await send_error(
                send,
                503,
                "overloaded",
                f"{self.in_flight} requests are in flight in this worker, its limit ({self.limit_name}); retry later",
                {"Retry-After": "1"},
            )
            return
        if not probe:
            self.in_flight += 1
        try:
            await self._run_with_timeout(scope, receive, send)
        finally:
            if not probe:
                self.in_flight -= 1

    async def _run_with_timeout(self, scope: Scope, receive: Any, send: Any) -> None:
        state = {"started": False, "timed_out": False}

        async def timed_send(message: Message) -> None:
            if state["timed_out"]:
                return  # the cancelled application's last words
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        task = asyncio.ensure_future(self.app(scope, receive, timed_send))
        try:
            done, _ = await asyncio.wait({task}, timeout=self.timeout)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if task in done:
            task.result()
            return
        if state["started"]:  # answering already (a slow client): let it finish
            await task
            return
        state["timed_out"] = True
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        logger.warning("%s %s timed out after %g s", scope.get("method"), scope.get("path"), self.timeout)
        await send_error(send, 504, "timeout", timeout_detail(self.timeout))


# -- body limit ----------------------------------------------------------------------------------------


class BodyLimitMiddleware:
    """Answer 413 for request bodies over ``max_body_bytes`` (declared or streamed)."""

    def __init__(
        self, app: Any, max_body_bytes: int, drain_bytes: int | None = None, drain_seconds: float = 10.0
    ) -> None:
        self.app = app
        self.max_body_bytes = int(max_body_bytes)
        self.drain_bytes = int(drain_bytes if drain_bytes is not None else 4 * self.max_body_bytes)
        self.drain_seconds = drain_seconds

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            complete = declared <= self.drain_bytes and await self._drain(receive)
            await self._send_413(send, close=not complete)
            return
        if declared is None and _is_chunked(scope):
            buffered, ended = await self._buffer(receive)
            if buffered is None:
                await self._send_413(send, close=not (ended or await self._drain(receive)))
                return
            receive = _replay(buffered, receive)

        state = {"received": 0, "exceeded": False, "ended": False, "answered": False}

        async def limited_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                state["ended"] = not message.get("more_body", False)
                if state["received"] > self.max_body_bytes:
                    state["exceeded"] = True
                    raise BodyTooLarge(self.max_body_bytes, state["received"])
            return message

        async def answer_413() -> None:
            state["answered"] = True
            await self._send_413(send, close=not (state["ended"] or await self._drain(receive)))

        async def guarded_send(message: Message) -> None:
            if not state["exceeded"]:
                await send(message)
            elif message["type"] == "http.response.start" and not state["answered"]:
                await answer_413()
            # else: the application's own answer to the aborted read is dropped

        try:
            await self.app(scope, limited_receive, guarded_send)
        except BodyTooLarge:
            if not state["answered"]:
                await answer_413()

    async def _buffer(self, receive: Any) -> tuple[list[Message] | None, bool]:
        """The messages of a whole body of unknown length (None once it passes the limit), and
        whether the body was read to its end."""
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return messages, False
            size += len(message.get("body", b""))
            ended = not message.get("more_body", False)
            if size > self.max_body_bytes:
                return None, ended
            if ended:
                return messages, True

    async def _drain(self, receive: Any) -> bool:
        """Read and discard the rest of the body; True when it was read to its end."""
        drained = 0

        async def _loop() -> bool:
            nonlocal drained
            while drained <= self.drain_bytes:
                message = await receive()
                if message["type"] != "http.request":
                    return False
                drained += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return True
            return False

        try:
            return await asyncio.wait_for(_loop(), timeout=self.drain_seconds)
        except (TimeoutError, OSError, RuntimeError):
            return False

    async def _send_413(self, send: Any, *, close: bool) -> None:
        err = body_too_large(self.max_body_bytes)
        await send_error(send, 413, err.error, err.detail, {"Connection": "close"} if close else None)


def _replay(messages: list[Message], receive: Any) -> Any:
    """A ``receive`` that returns ``messages`` first, then defers to the real one."""
    pending = list(messages)

    async def replay_receive() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay_receive


def _is_chunked(scope: Scope) -> bool:
    return any(name == b"transfer-encoding" and b"chunked" in value.lower() for name, value in scope.get("headers", []))


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
