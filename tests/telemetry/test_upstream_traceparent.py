"""A proxied upstream joins the trace: each request the ``proxy/openai`` backend
sends carries the W3C ``traceparent`` of its model call's span, streamed or not,
and none while telemetry is off. The upstream is a real HTTP server on loopback
that answers like an OpenAI-compatible one and writes down the headers it got."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from smmf_flow import DAG
from smmf_flow.models.registry import ModelRegistry
from smmf_flow.operators import LLMOperator, PromptOperator

from .conftest import by_name, parent_of, span_id, trace_id

pytestmark = pytest.mark.anyio


class Recording(BaseHTTPRequestHandler):
    """Answers chat completions (whole or streamed) and keeps each request's headers."""

    seen: ClassVar[list[dict[str, str]]] = []

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._send("application/json", b'{"object": "list", "data": []}')

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Recording.seen.append({k.lower(): v for k, v in self.headers.items()})
        usage = {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}
        if not body.get("stream"):
            message = {"role": "assistant", "content": "hello there"}
            reply = {"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
            self._send("application/json", json.dumps({**reply, "usage": usage}).encode())
            return
        events = [
            {"choices": [{"index": 0, "delta": {"content": "hello"}, "finish_reason": None}]},
            {"choices": [{"index": 0, "delta": {"content": " there"}, "finish_reason": "stop"}]},
            {"choices": [], "usage": usage},
        ]
        frames = [
            f"data: {json.dumps({'object': 'chat.completion.chunk', **e})}\n\n" for e in events
        ]
        self._send("text/event-stream", ("".join(frames) + "data: [DONE]\n\n").encode())

    def _send(self, kind: str, data: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def recorder() -> Iterator[str]:
    Recording.seen.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recording)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
async def proxied(recorder: str) -> Any:
    entry = {"name": "up", "provider": "proxy/openai", "api_base": recorder, "api_key": "k"}
    registry = ModelRegistry.from_dict({"models": {"llms": [entry]}})
    yield registry
    await registry.aclose()


def ask(stream: bool) -> DAG:
    with DAG("ask") as dag:
        PromptOperator("hi", name="prompt") >> LLMOperator(model="up", stream=stream, name="llm")
    return dag


@pytest.mark.parametrize("stream", [False, True])
async def test_the_upstream_gets_the_model_calls_traceparent(
    spans: InMemorySpanExporter, proxied: ModelRegistry, stream: bool
) -> None:
    if stream:
        text = "".join([c.text async for c in ask(True).astream(None, registry=proxied)])
    else:
        text = (await ask(False).arun(None, registry=proxied)).text
    assert text == "hello there"
    call = by_name(spans)["chat up"]
    assert call.kind is SpanKind.CLIENT
    assert parent_of(call) == span_id(by_name(spans)["node llm"])
    (headers,) = Recording.seen
    version, trace, parent, flags = headers["traceparent"].split("-")
    assert (version, trace, parent) == ("00", f"{trace_id(call):032x}", f"{span_id(call):016x}")
    assert int(flags, 16) & 1  # sampled
    assert call.attributes is not None
    assert call.attributes["gen_ai.usage.output_tokens"] == 2


async def test_no_traceparent_while_telemetry_is_off(proxied: ModelRegistry) -> None:
    assert (await ask(False).arun(None, registry=proxied)).text == "hello there"
    text = "".join([c.text async for c in ask(True).astream(None, registry=proxied)])
    assert text == "hello there"
    assert len(Recording.seen) == 2
    assert not any("traceparent" in h or "tracestate" in h for h in Recording.seen)
