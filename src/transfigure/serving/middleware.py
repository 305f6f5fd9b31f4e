"""An ASGI middleware that limits request bodies (BentoML itself has no limit).

It refuses a declared ``Content-Length`` over the limit before the application runs. A body
without a declared length (``Transfer-Encoding: chunked``) is read first, up to the limit, and
replayed to the application, so an oversize one is refused before the application runs too. As a
last guard the bytes the application receives are counted: past the limit its ``receive`` raises
:class:`~transfigure.serving.validation.BodyTooLarge` and, whatever the application answers then
(BentoML turns unknown exceptions into 500), the client gets
``413 {"error": "request body too large", ...}``. The unread rest of a refused body is drained (up
to ``drain_bytes``) before answering, so ordinary HTTP clients, which send the whole body before
reading the answer, see the 413 instead of a reset connection.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from transfigure.serving.validation import BodyTooLarge, body_too_large

Scope = dict[str, Any]
Message = dict[str, Any]


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
        body = json.dumps({"error": err.error, "detail": err.detail}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if close:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})


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
