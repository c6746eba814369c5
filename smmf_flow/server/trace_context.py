"""Each HTTP request as an OpenTelemetry span that continues the caller's trace.

Added to the app only while telemetry is on (``create_app``), outermost, so it
costs nothing otherwise. The caller's W3C ``traceparent``/``tracestate`` are
taken (checked and bounded: ``telemetry/propagation.py``; ``baggage`` and every
other header are never read), and the request's span is their child, or the
root of a new trace when the caller sent none or one that was refused (then an
event on the span says why). The span is current while the request is handled,
so a flow run and the model calls it makes are its descendants; its trace id
goes into the access log line (``scope["state"]["trace_id"]``). It ends with
the response's last byte, named ``METHOD /route`` as HTTP conventions ask;
only a 5xx marks it failed. When the server shuts down, the spans still
buffered are exported before it reports its shutdown complete.
"""

from __future__ import annotations

import anyio
import anyio.to_thread
from opentelemetry import context, trace
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer, format_trace_id
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from smmf_flow import telemetry
from smmf_flow.telemetry.propagation import extract


class TraceContext:
    """ASGI middleware: a SERVER span per HTTP request (see the module docstring)."""

    def __init__(self, app: ASGIApp, tracer: Tracer) -> None:
        self.app, self.tracer = app, tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, _flush_before_shutdown_ends(send))
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        parent, ignored = extract(scope["headers"])
        method = scope["method"]
        span = self.tracer.start_span(
            method,
            context=parent or context.Context(),  # never the ambient context of the server
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": scope["path"]},
        )
        if ignored:
            span.add_event("smmf_flow.trace_context_ignored", {"reason": ignored})
        scope.setdefault("state", {})["trace_id"] = format_trace_id(
            span.get_span_context().trace_id
        )
        status = 500
        ended = False

        def end() -> None:
            nonlocal ended
            if ended:
                return
            ended = True
            route = getattr(scope.get("route"), "path", None)
            if route:
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
                span.set_attribute("error.type", str(status))
            span.end()

        async def send_traced(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                end()

        token = context.attach(trace.set_span_in_context(span))
        try:
            await self.app(scope, receive, send_traced)
        finally:
            context.detach(token)
            end()


def _flush_before_shutdown_ends(send: Send) -> Send:
    """``send`` that exports the buffered spans before the server reports its
    shutdown complete: uvicorn then ends the process by the signal it caught,
    and exit handlers (the SDK's own flush) never run."""

    async def flushing(message: Message) -> None:
        if message["type"] == "lifespan.shutdown.complete":
            await anyio.to_thread.run_sync(telemetry.flush)
        await send(message)

    return flushing


__all__ = ["TraceContext"]
