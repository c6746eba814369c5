"""A tracer provider built from the standard ``OTEL_*`` environment, for the
``smmf-flow`` command (``--otel`` or the environment; library users pass their
own provider to ``telemetry.enable``).

``OTEL_TRACES_EXPORTER`` picks the exporters: ``otlp`` (the default; its
protocol from ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` / ``..._PROTOCOL``:
``http/protobuf``, or ``grpc`` where that exporter is installed), ``console``
(spans as JSON on stderr: stdout is the run's output) or ``none``. The OTLP
exporters read their endpoint, headers and timeout from the environment
themselves. The service is ``smmf-flow`` unless ``OTEL_SERVICE_NAME`` or
``OTEL_RESOURCE_ATTRIBUTES`` names it. Spans are exported in batches, and the
provider flushes them when the process exits.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING

from smmf_flow.errors import ConfigError, MissingDependency
from smmf_flow.telemetry.env import exporters

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

EXPORTERS = ("otlp", "console", "none")
PROTOCOLS = ("http/protobuf", "grpc")


def provider_from_env() -> TracerProvider:
    """An SDK ``TracerProvider`` exporting as the environment says."""
    try:
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise MissingDependency(
            "telemetry needs the OpenTelemetry SDK: pip install 'smmf-flow[otel]'"
        ) from None
    chosen = [_exporter(name) for name in exporters()]  # every name checked before use
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: "smmf-flow"}))
    provider = TracerProvider(resource=resource)
    for exporter in chosen:
        if exporter is not None:
            provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _exporter(name: str) -> SpanExporter | None:
    if name == "none":
        return None
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(out=sys.stderr)
    if name == "otlp":
        return _otlp()
    raise ConfigError(
        f"OTEL_TRACES_EXPORTER: unknown exporter '{name}'; smmf-flow exports traces "
        f"with {', '.join(EXPORTERS)}"
    )


def _otlp() -> SpanExporter:
    variable = next(
        (
            v
            for v in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
            if os.environ.get(v)
        ),
        None,
    )
    protocol = os.environ[variable].strip().lower() if variable else "http/protobuf"
    if protocol not in PROTOCOLS:
        raise ConfigError(
            f"{variable}: protocol '{protocol}' is not served; use {' or '.join(PROTOCOLS)}"
        )
    transport = "grpc" if protocol == "grpc" else "http"
    package = f"opentelemetry-exporter-otlp-proto-{transport}"
    try:
        module = importlib.import_module(
            f"opentelemetry.exporter.otlp.proto.{transport}.trace_exporter"
        )
    except ImportError:
        raise MissingDependency(
            f"OTLP over {protocol} needs {package}: pip install {package}"
        ) from None
    exporter: SpanExporter = module.OTLPSpanExporter()
    return exporter
