"""W3C trace context in and out: ``traceparent`` and ``tracestate`` only.

Incoming headers come from HTTP callers, who are untrusted: only these two
headers are read (never ``baggage``, which would let a caller put attributes on
our spans), each bounded in size, ASCII, and parsed by the W3C propagator,
which refuses a malformed ``traceparent``. A header refused is ignored, as the
W3C spec asks (the request starts a trace of its own), and the reason is given
back so the server span can say why.
"""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

#: ``00-<32 hex>-<16 hex>-<2 hex>`` is 55 characters; later versions may add fields
MAX_TRACEPARENT = 128
#: the W3C spec asks to pass on at least 512 characters; we keep no more
MAX_TRACESTATE = 512

_W3C = TraceContextTextMapPropagator()


def extract(headers: Iterable[tuple[bytes, bytes]]) -> tuple[Context | None, str | None]:
    """The caller's trace context from ASGI ``headers``, or (None, why it was
    ignored); (None, None) when the caller sent none."""
    parents = [v for k, v in headers if k == b"traceparent"]
    if not parents:
        return None, None
    if len(parents) > 1:
        return None, "more than one traceparent header"
    parent = parents[0]
    if len(parent) > MAX_TRACEPARENT or not parent.isascii():
        return None, f"traceparent longer than {MAX_TRACEPARENT} bytes or not ASCII"
    carrier = {"traceparent": parent.decode("ascii")}
    states = [v for k, v in headers if k == b"tracestate"]
    state = b",".join(states)
    dropped = None
    if state and (len(state) > MAX_TRACESTATE or not state.isascii()):
        dropped = f"tracestate longer than {MAX_TRACESTATE} bytes or not ASCII (dropped)"
    elif state:
        carrier["tracestate"] = state.decode("ascii")
    context = _W3C.extract(carrier)
    if not trace.get_current_span(context).get_span_context().is_valid:
        return None, "malformed traceparent"
    return context, dropped


def inject() -> dict[str, str]:
    """``traceparent`` (and ``tracestate``) of the current span, as headers."""
    headers: dict[str, str] = {}
    _W3C.inject(headers)
    return headers
