"""Access logs and request metrics: one line and one observation per request.

Each answered request becomes one JSON object on the ``smmf_flow.server.access``
logger::

    {"ts": 1767225600.123, "id": "3f9c...", "method": "POST",
     "path": "/v1/chat/completions", "route": "/v1/chat/completions",
     "status": 200, "ms": 41.7, "client": "127.0.0.1", "model": "chat"}

It holds no secret: never a header (the API key travels in ``Authorization``),
never the query string, never a body. ``model`` is the name the client asked
for, which handlers leave in ``request.state``; ``trace_id``, while telemetry is
on, the request's OpenTelemetry trace (the caller's, if it sent a ``traceparent``).
The JSON is only built when the logger is enabled for INFO, so a quiet server
pays a clock read and two metric updates per request; the record is made
directly (``_log``), without ``logger.info``'s search for its caller. Every response carries
``X-Request-Id`` (the client's own, if it sent one), so a client's report can be
matched with the log line.

A request ends (leaves ``in_flight``, is timed and logged) when its last byte is
sent, not when the app's clean-up after it has finished. One whose client went
away before an answer is logged with status 499 (see ``body_guard.py``).
"""

from __future__ import annotations

import logging
import os
import time
from itertools import count

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from smmf_flow.server.metrics import ServerMetrics

logger = logging.getLogger("smmf_flow.server.access")
_PREFIX = os.urandom(4).hex()
_ids = count(1)


class AccessLog:
    """Times every HTTP request, counts it, and logs it (see the module docstring)."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        status = 500
        header = (b"x-request-id", request_id)
        metrics = self.metrics
        ended = False

        def end() -> None:
            """Count and log the request once: when its last byte is sent, or when the
            app returns without sending it."""
            nonlocal ended
            if ended:
                return
            ended = True
            metrics.in_flight.dec()
            seconds = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            metrics.observe(template, scope["method"], status, seconds)
            if logger.isEnabledFor(logging.INFO):
                _log(_line(scope, request_id, template, status, seconds))

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                end()

        metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            end()


def _log(line: str) -> None:
    """Log ``line`` at INFO through the logger's handlers, as ``logger.info`` does, but
    without looking up the calling frame (``findCaller``), which the line never shows
    and which cost more than half of ``logger.info``'s time per request."""
    logger.handle(logger.makeRecord(logger.name, logging.INFO, __file__, 0, line, (), None))


def _request_id(scope: Scope) -> bytes:
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for name, value in headers:
        if name == b"x-request-id" and 0 < len(value) <= 128:
            return value
    return f"{_PREFIX}-{next(_ids)}".encode()


def _line(scope: Scope, request_id: bytes, route: str, status: int, seconds: float) -> str:
    client = scope.get("client")
    state = scope.get("state") or {}
    record = {
        "ts": round(time.time(), 3),
        "id": request_id.decode("latin-1"),
        "method": scope["method"],
        "path": scope["path"],
        "route": route,
        "status": status,
        "ms": round(seconds * 1000, 2),
        "client": client[0] if client else None,
    }
    if "model" in state:
        record["model"] = state["model"]
    if "trace_id" in state:  # telemetry on: the request's trace (``trace_context.py``)
        record["trace_id"] = state["trace_id"]
    return orjson.dumps(record).decode()


__all__ = ["AccessLog"]
