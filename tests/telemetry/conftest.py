"""Telemetry tests: the real OpenTelemetry SDK, its spans kept in memory.

``spans`` switches smmf-flow's telemetry on for one test with a tracer provider
of its own (the global one is never touched) and gives the exporter; telemetry
is off again afterwards. ``registry`` is a fresh registry on the fake backend
(``tests/models/fakes.py``): these tests are about spans, not models; the test
on SmolLM2 carries the ``models`` mark.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from models.fakes import PROVIDER, FakeBackend
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from smmf_flow import telemetry
from smmf_flow.models.backends import register_backend
from smmf_flow.models.registry import ModelRegistry


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.enable(provider)
    try:
        yield exporter
    finally:
        telemetry.disable()
        provider.shutdown()


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fake_config() -> dict[str, Any]:
    """``m`` and ``m2`` on the fake backend, ``e`` embeds, ``down`` is an
    OpenAI-compatible model nobody serves, ``chat`` falls back from it to ``m``."""
    register_backend(PROVIDER, FakeBackend)
    return {
        "models": {
            "default_llm": "m",
            "llms": [
                {"name": "m", "provider": PROVIDER},
                {"name": "m2", "provider": PROVIDER},
                {
                    "name": "down",
                    "provider": "proxy/openai",
                    "api_base": f"http://127.0.0.1:{free_port()}/v1",
                    "api_key": "unused",
                    "timeout_s": 5,
                    "failure_threshold": 1000,
                },
            ],
            "embeddings": [{"name": "e", "provider": PROVIDER, "max_batch_wait_ms": 1}],
            "groups": [{"name": "chat", "strategy": "fallback", "members": ["down", "m"]}],
        }
    }


@pytest.fixture
def registry(make_registry: Callable[[dict[str, Any]], Any]) -> ModelRegistry:
    made: ModelRegistry = make_registry(fake_config())
    return made


def by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    """The finished spans by name (each name once in these tests)."""
    found: dict[str, ReadableSpan] = {}
    for span in exporter.get_finished_spans():
        assert span.name not in found, f"two spans named {span.name!r}"
        found[span.name] = span
    return found


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


def trace_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.trace_id


def events(span: ReadableSpan) -> list[tuple[str, dict[str, Any]]]:
    return [(e.name, dict(e.attributes or {})) for e in span.events]
