"""OpenTelemetry for smmf-flow: off unless switched on, and free while off.

Runs, nodes and model calls become spans (GenAI semantic conventions) once
telemetry is enabled: in code with ``enable(tracer_provider)``, or for the
``smmf-flow`` command by ``--otel`` or the standard ``OTEL_*`` environment
(``configure``). The spans themselves are made where the work happens: the run
and node spans by a run hook (``runner/run_spans.py``), the model-call spans by
the scheduler's traced workers (``scheduler/traced_workers.py``), the server
span and the incoming W3C trace context by ``server/trace_context.py``; the
proxy backend sends ``traceparent`` upstream (``outgoing_headers``).

While nothing is enabled this module is all that is loaded: ``opentelemetry``
is never imported, and the code paths ask ``active()`` (a global read) once per
run, worker or request, and never per chunk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer, TracerProvider

#: the instrumentation scope's name, as exporters show it
SCOPE = "smmf_flow"


@dataclass(frozen=True, slots=True)
class Tracing:
    """Telemetry switched on: the tracer every span of smmf-flow comes from."""

    tracer: Tracer
    provider: TracerProvider


_active: Tracing | None = None


def active() -> Tracing | None:
    """The switched-on telemetry, or None (the default: nothing is traced)."""
    return _active


def enable(tracer_provider: TracerProvider | None = None) -> Tracing:
    """Trace runs, nodes and model calls through ``tracer_provider`` (None: the
    global one of ``opentelemetry.trace``). Takes effect for runs started, and
    registries' workers made, from now on."""
    global _active
    from opentelemetry import trace

    provider = tracer_provider or trace.get_tracer_provider()
    _active = Tracing(provider.get_tracer(SCOPE, _version()), provider)
    return _active


def disable() -> None:
    """Stop tracing (spans already started still end and are exported)."""
    global _active
    _active = None


def configure(flag: bool = False) -> Tracing | None:
    """Switch telemetry on when ``flag`` is set or the ``OTEL_*`` environment asks
    for an exporter (``telemetry/setup.py``), unless ``OTEL_SDK_DISABLED=true``;
    otherwise change nothing and import nothing. Raises ``ConfigError`` for an
    exporter or protocol it cannot serve."""
    from smmf_flow.telemetry.env import disabled, wanted

    if disabled() or not (flag or wanted()):
        return None
    from smmf_flow.telemetry.setup import provider_from_env

    return enable(provider_from_env())


def flush(timeout_s: float = 10.0) -> None:
    """Export the spans still buffered (the SDK provider's ``force_flush``): for a
    process about to end by a signal, where exit handlers do not run."""
    tracing = _active
    force_flush = getattr(tracing.provider, "force_flush", None) if tracing else None
    if force_flush is not None:
        force_flush(int(timeout_s * 1000))


def _version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("smmf-flow")
    except PackageNotFoundError:
        return None


def outgoing_headers() -> dict[str, str] | None:
    """The W3C trace context of the current span, for a request to an upstream
    (``traceparent``, and ``tracestate`` if any); None while telemetry is off."""
    if _active is None:
        return None
    from smmf_flow.telemetry.propagation import inject

    return inject()


__all__ = ["Tracing", "active", "configure", "disable", "enable", "flush", "outgoing_headers"]
