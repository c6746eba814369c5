"""Whether the standard ``OTEL_*`` environment asks for traces, read without
importing OpenTelemetry (the answer is usually no, and must cost nothing).

Traces are wanted when ``OTEL_TRACES_EXPORTER`` names an exporter other than
``none``, or an OTLP endpoint is set (``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), unless ``OTEL_SDK_DISABLED=true``.
"""

from __future__ import annotations

import os

ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def disabled() -> bool:
    """``OTEL_SDK_DISABLED=true``: the standard way to turn every SDK off."""
    return os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def exporters() -> list[str]:
    """The exporters ``OTEL_TRACES_EXPORTER`` names (default: ``otlp``)."""
    names = os.environ.get("OTEL_TRACES_EXPORTER", "otlp")
    return [n.strip().lower() for n in names.split(",") if n.strip()] or ["otlp"]


def wanted() -> bool:
    """Whether the environment alone switches traces on."""
    if disabled():
        return False
    if "OTEL_TRACES_EXPORTER" in os.environ:
        return exporters() != ["none"]
    return any(os.environ.get(name) for name in ENDPOINTS)
