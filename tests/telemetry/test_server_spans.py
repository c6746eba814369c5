"""The server continues its caller's trace: a request's span is the child of the
``traceparent`` it came with (checked and bounded), the model calls and flow
runs it makes are its descendants, and the access log line names the trace."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from starlette.testclient import TestClient

from smmf_flow.models.registry import ModelRegistry
from smmf_flow.server import create_app
from smmf_flow.server.catalog import FlowCatalog

from .conftest import events, fake_config, parent_of, span_id, trace_id

TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE}-{PARENT}-01"
HI = {"model": "chat", "messages": [{"role": "user", "content": "hi there"}], "max_tokens": 4}
FLOW = """\
version: 1
name: ask
inputs:
  word: str
nodes:
  prompt: {type: prompt, template: "say {{ word }}"}
  answer: {type: llm, model: m}
edges:
  - prompt >> answer
"""


@pytest.fixture
def client(spans: InMemorySpanExporter, tmp_path: Path) -> Iterator[TestClient]:
    """The app made while telemetry is on (that is when it adds the middleware)."""
    (tmp_path / "ask.yaml").write_text(FLOW)
    registry = ModelRegistry.from_dict(fake_config())
    flows = FlowCatalog.from_dir(tmp_path, registry, strict=True)
    app = create_app(registry, flows=flows, warmup=False)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield client


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


def ignored(span: ReadableSpan) -> list[dict[str, object]]:
    return [a for n, a in events(span) if n == "smmf_flow.trace_context_ignored"]


def test_a_request_continues_the_callers_trace(
    client: TestClient, spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="smmf_flow.server.access"):
        reply = client.post(
            "/v1/chat/completions",
            json=HI,
            headers={"traceparent": TRACEPARENT, "tracestate": "congo=t61rcWkgMzE"},
        )
    assert reply.status_code == 200, reply.text
    assert reply.json()["model"] == "m"  # the fallback group's member that served
    (server,) = named(spans, "POST /v1/chat/completions")
    assert server.kind is SpanKind.SERVER
    assert f"{trace_id(server):032x}" == TRACE and parent_of(server) == int(PARENT, 16)
    assert server.parent is not None and server.parent.is_remote
    assert ignored(server) == []
    assert server.context is not None and server.context.trace_state.get("congo") == "t61rcWkgMzE"
    assert server.attributes is not None
    assert server.attributes["http.route"] == "/v1/chat/completions"
    assert server.attributes["http.response.status_code"] == 200
    # the group's fallback: both member calls under the request's span
    down, served = named(spans, "chat down")[0], named(spans, "chat m")[0]
    assert parent_of(down) == parent_of(served) == span_id(server)
    assert trace_id(served) == int(TRACE, 16)
    # no node records the group's decision here: the request's span has it
    (fallback,) = [a for n, a in events(server) if n == "smmf_flow.fallback"]
    assert fallback["model"] == "down" and fallback["action"] == "next"
    (line,) = [json.loads(r.getMessage()) for r in caplog.records]
    assert line["trace_id"] == TRACE and line["status"] == 200


def test_a_flow_run_is_a_child_of_the_request(
    client: TestClient, spans: InMemorySpanExporter
) -> None:
    reply = client.post(
        "/v1/flows/ask/run", json={"inputs": {"word": "yes"}}, headers={"traceparent": TRACEPARENT}
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["output"]["text"] == "m#0: say yes"
    (server,) = named(spans, "POST /v1/flows/{name}/run")
    (run,) = named(spans, "invoke_workflow ask")
    (node,) = named(spans, "node answer")
    (call,) = named(spans, "chat m")
    assert parent_of(server) == int(PARENT, 16)
    assert parent_of(run) == span_id(server)
    assert parent_of(node) == span_id(run) and parent_of(call) == span_id(node)
    assert {trace_id(s) for s in (server, run, node, call)} == {int(TRACE, 16)}


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"traceparent": f"00-{TRACE}-{PARENT}-01-extra"}, "malformed traceparent"),
        ({"traceparent": f"00-{'0' * 32}-{PARENT}-01"}, "malformed traceparent"),  # zero id
        ({"traceparent": f"ff-{TRACE}-{PARENT}-01"}, "malformed traceparent"),
        ({"traceparent": "00-" + "a" * 200}, "traceparent longer than 128 bytes or not ASCII"),
    ],
)
def test_a_bad_traceparent_starts_a_trace_of_its_own(
    client: TestClient, spans: InMemorySpanExporter, headers: dict[str, str], reason: str
) -> None:
    reply = client.post("/v1/chat/completions", json=HI, headers=headers)
    assert reply.status_code == 200, reply.text  # never refused for a trace header
    (server,) = named(spans, "POST /v1/chat/completions")
    assert server.parent is None and f"{trace_id(server):032x}" != TRACE
    assert ignored(server) == [{"reason": reason}]


def test_an_oversized_tracestate_is_dropped_and_baggage_never_read(
    client: TestClient, spans: InMemorySpanExporter
) -> None:
    headers = {
        "traceparent": TRACEPARENT,
        "tracestate": "k=" + "v" * 600,
        "baggage": "tenant=evil,user.id=root",
    }
    reply = client.post("/v1/chat/completions", json=HI, headers=headers)
    assert reply.status_code == 200, reply.text
    (server,) = named(spans, "POST /v1/chat/completions")
    assert parent_of(server) == int(PARENT, 16)  # the traceparent itself was fine
    assert server.context is not None and len(server.context.trace_state) == 0
    assert ignored(server) == [
        {"reason": "tracestate longer than 512 bytes or not ASCII (dropped)"}
    ]
    for span in spans.get_finished_spans():
        text = repr(dict(span.attributes or {})) + repr(events(span))
        assert "evil" not in text and "root" not in text


def test_a_refused_request_is_traced_and_logged_with_its_trace(
    client: TestClient, spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="smmf_flow.server.access"):
        reply = client.post(
            "/v1/chat/completions",
            json={**HI, "model": "nope"},
            headers={"traceparent": TRACEPARENT},
        )
    assert reply.status_code == 404
    (server,) = named(spans, "POST /v1/chat/completions")
    assert server.attributes is not None
    assert server.attributes["http.response.status_code"] == 404
    assert server.status.is_unset  # a 4xx is the caller's, not the server's failure
    (line,) = [json.loads(r.getMessage()) for r in caplog.records]
    assert line["trace_id"] == TRACE and line["status"] == 404
