"""``BodyGuard``: read each request's body under a size limit, and cancel the
request the moment its client goes away.

A plain ASGI middleware, innermost (it runs after the key check), that

- **refuses an oversized body before parsing it**: a ``Content-Length`` over
  ``max_body_bytes`` is a 413 at once, without reading a byte (a client that
  sent ``Expect: 100-continue`` never uploads it); a body without a length
  (chunked) is a 413 as soon as what arrived passes the limit;
- **replays the body to the app** through a wrapped ``receive``, so the
  handlers read it as usual;
- **watches the real ``receive`` for ``http.disconnect``** while the app runs
  and cancels the app when it comes. A non-streaming request queued for a model
  slot or generating is cancelled like a stream: the pool drops its queue place
  or frees its slot at once (``models/pool.py``), so clients that send a
  request and vanish cannot lock a model. The wrapped ``receive`` then reports
  the disconnect to anything else listening. A watched request says so in its
  scope (``WATCHED``), so a stream (``EventStream``) does not start a second
  watcher of its own.

A request cancelled this way is logged and counted with status 499 (nginx's
"client closed request"): nobody receives it, and it is not a server error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from smmf_flow.server.errors import ApiError, error_response
from smmf_flow.server.limits import ServerLimits

#: status recorded (never delivered) for a request whose client went away
CLIENT_CLOSED = 499
#: scope key, true while a client's disconnect cancels the request
WATCHED = "smmf.disconnect_watched"


class _TooLarge(Exception):
    pass


class BodyGuard:
    """See the module docstring."""

    def __init__(self, app: ASGIApp, limits: ServerLimits) -> None:
        self.app, self.limit = app, limits.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        try:
            if declared is not None and declared > self.limit:
                raise _TooLarge
            body = await self._read(receive)
        except _TooLarge:
            await self._too_large(scope, receive, send)
            return
        if body is None:
            return  # the client left while sending; there is nobody to answer
        await self._run(scope, receive, send, body)

    async def _read(self, receive: Receive) -> bytes | None:
        """The whole body, or None if the client disconnected first."""
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                raise _TooLarge
            parts.append(chunk)
            if not message.get("more_body", False):
                return b"".join(parts)

    async def _run(self, scope: Scope, receive: Receive, send: Send, body: bytes) -> None:
        gone: anyio.Event | None = None  # made only if something waits for the disconnect
        disconnected = started = complete = False
        pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

        async def replay() -> Message:
            nonlocal gone
            if pending:
                return pending.pop()
            if not disconnected:
                gone = gone or anyio.Event()
                await gone.wait()
            return {"type": "http.disconnect"}

        async def tracked_send(message: Message) -> None:
            nonlocal started, complete
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                complete = True  # set before sending: the server may report the end at once
            await send(message)

        async def watch(cancel: anyio.CancelScope) -> None:
            nonlocal disconnected
            while (await receive())["type"] != "http.disconnect":
                pass
            disconnected = True
            if gone is not None:
                gone.set()
            if not complete:  # after a complete response "disconnect" just means done
                cancel.cancel()

        with anyio.CancelScope() as cancel:
            stop_watching = _beside(watch, cancel)
            if stop_watching is not None:
                scope[WATCHED] = True
            try:
                await self.app(scope, replay, tracked_send)
            finally:
                if stop_watching is not None:
                    stop_watching()
        if disconnected and not started:
            # recorded by the access log; the server drops it (its client is gone)
            await send({"type": "http.response.start", "status": CLIENT_CLOSED, "headers": []})

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = ApiError(
            413,
            f"the request body is larger than this server takes (max_body_bytes = {self.limit})",
            code="body_too_large",
        )
        await error_response(error)(scope, receive, send)


def _beside(
    watch: Callable[[anyio.CancelScope], Coroutine[Any, Any, None]], cancel: anyio.CancelScope
) -> Callable[[], object] | None:
    """Start ``watch(cancel)`` as a task of its own; return what stops it (None when
    nothing was started).

    A plain asyncio task rather than an anyio task group: this runs for every
    request, and a task group costs about 60 us where a task costs 5. The request
    itself runs in ``cancel``, so the watcher can only ever cancel its own request.
    On another event loop than asyncio (uvicorn's) requests are not watched;
    streams still are (``EventStream``)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not asyncio
        return None
    return loop.create_task(watch(cancel)).cancel


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


__all__ = ["CLIENT_CLOSED", "WATCHED", "BodyGuard"]
