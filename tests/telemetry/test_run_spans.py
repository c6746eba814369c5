"""Runs, nodes and model calls as spans (real SDK, in-memory exporter), on the
fake backend: one span per node and per model call, parented run → node →
model call, with fallback and routing decisions as events of the node's span."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from smmf_flow import DAG, JoinOperator, MapOperator, NodeFailed
from smmf_flow.models.registry import ModelRegistry
from smmf_flow.operators import (
    EmbeddingOperator,
    FallbackOperator,
    LLMOperator,
    PromptOperator,
    RouterOperator,
)

from .conftest import by_name, events, parent_of, span_id, trace_id

pytestmark = pytest.mark.anyio


def answer_dag(llm: Any) -> DAG:
    with DAG("answer") as dag:
        (
            PromptOperator("say {{ word }}", max_tokens=8, name="prompt")
            >> llm
            >> MapOperator(lambda r: r.text, name="text")
        )
    return dag


async def test_run_node_and_model_call_spans_are_parented(
    spans: InMemorySpanExporter, registry: ModelRegistry
) -> None:
    dag = answer_dag(LLMOperator(model="m", name="llm", temperature=0.5))
    assert await dag.arun({"word": "hello"}, registry=registry) == "m#0: say hello"
    found = by_name(spans)
    assert set(found) == {
        "invoke_workflow answer",
        "node prompt",
        "node llm",
        "node text",
        "chat m",
    }
    run = found["invoke_workflow answer"]
    assert run.parent is None
    assert run.attributes is not None and run.attributes["gen_ai.workflow.name"] == "answer"
    for node in ("prompt", "llm", "text"):
        span = found[f"node {node}"]
        assert parent_of(span) == span_id(run) and trace_id(span) == trace_id(run)
        assert span.attributes is not None
        assert span.attributes["smmf_flow.node.state"] == "succeeded"
    assert dict(found["node llm"].attributes or {})["smmf_flow.node.kind"] == "llm"
    call = found["chat m"]
    assert parent_of(call) == span_id(found["node llm"])
    assert call.kind is SpanKind.INTERNAL
    assert dict(call.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "m",
        "gen_ai.provider.name": "test/fake",
        "gen_ai.request.temperature": 0.5,
        "gen_ai.request.top_p": 1.0,
        "gen_ai.request.stream": False,
        "gen_ai.request.max_tokens": 8,
        "gen_ai.response.model": "m",
        "smmf_flow.instance": "m#0",
        "gen_ai.usage.input_tokens": 3,
        "gen_ai.usage.output_tokens": 5,
        "gen_ai.response.finish_reasons": ("stop",),
    }
    assert ("smmf_flow.served", {"model": "m", "instance": "m#0"}) in events(call)
    # the node's own note is an event of its span too
    assert [name for name, _ in events(found["node llm"])] == ["smmf_flow.served"]


async def test_a_fallback_is_an_event_and_each_member_call_a_span(
    spans: InMemorySpanExporter, registry: ModelRegistry
) -> None:
    dag = answer_dag(FallbackOperator(["down", "m"], name="llm"))
    assert await dag.arun({"word": "hi"}, registry=registry) == "m#0: say hi"
    found = by_name(spans)
    node = found["node llm"]
    down, served = found["chat down"], found["chat m"]
    assert parent_of(down) == parent_of(served) == span_id(node)
    assert down.kind is SpanKind.CLIENT  # a model behind HTTP
    assert down.status.status_code is StatusCode.ERROR
    assert down.attributes is not None
    assert down.attributes["error.type"] == "BackendConnectionError"
    assert served.status.status_code is StatusCode.UNSET
    (fallback,) = [attrs for name, attrs in events(node) if name == "smmf_flow.fallback"]
    assert fallback["model"] == "down" and fallback["kind"] == "unavailable"
    assert fallback["action"] == "next" and "cannot connect" in fallback["message"]
    assert ("smmf_flow.fallback_served", {"model": "m"}) in events(node)


async def test_a_streamed_fallback_parents_its_calls_to_the_node(
    spans: InMemorySpanExporter, registry: ModelRegistry
) -> None:
    """A group's stream starts its model calls only when the stream is read (by
    the caller, after the run has returned): they still belong to the node."""
    with DAG("streamed") as dag:
        PromptOperator("say {{ word }} now", max_tokens=8) >> FallbackOperator(
            ["down", "m"], stream=True, name="llm"
        )
    chunks = [c async for c in dag.astream({"word": "hi"}, registry=registry)]
    assert "".join(c.text for c in chunks) == "say hi now"
    found = by_name(spans)
    node, run = found["node llm"], found["invoke_workflow streamed"]
    assert parent_of(node) == span_id(run)
    for call in (found["chat down"], found["chat m"]):
        assert parent_of(call) == span_id(node)
    served = found["chat m"]
    assert served.attributes is not None
    assert served.attributes["gen_ai.request.stream"] is True
    assert served.attributes["gen_ai.usage.output_tokens"] == 3
    assert served.attributes["gen_ai.response.time_to_first_chunk"] >= 0
    assert node.attributes is not None and node.attributes["smmf_flow.node.chunks"] == 3
    names = [name for name, _ in events(node)]
    assert names == ["smmf_flow.fallback", "smmf_flow.span"]
    # the run's span ends after its stream, not when the run handed the stream back
    assert run.end_time is not None and node.end_time is not None
    assert run.end_time >= node.end_time


async def test_a_routing_decision_is_an_event(
    spans: InMemorySpanExporter, registry: ModelRegistry
) -> None:
    router = RouterOperator(
        routes=[{"model": "m2", "when": {"keywords": ["code"]}}], default="m", name="llm"
    )
    dag = answer_dag(router)
    assert await dag.arun({"word": "code"}, registry=registry) == "m2#0: say code"
    found = by_name(spans)
    route = [a for n, a in events(found["node llm"]) if n == "smmf_flow.route"]
    assert route == [{"model": "m2", "rule": 0, "reason": route[0]["reason"]}]
    assert "code" in route[0]["reason"]
    assert parent_of(found["chat m2"]) == span_id(found["node llm"])


async def test_concurrent_nodes_own_their_model_calls(
    spans: InMemorySpanExporter, registry: ModelRegistry
) -> None:
    with DAG("both") as dag:
        prompt = PromptOperator("say {{ word }}", max_tokens=8, name="prompt")
        left, right = LLMOperator(model="m", name="left"), LLMOperator(model="m2", name="right")
        join = JoinOperator(lambda a, b: a.text + " | " + b.text, name="join")
        prompt >> [left, right]
        [left, right] >> join
    assert await dag.arun({"word": "x"}, registry=registry) == "m#0: say x | m2#0: say x"
    found = by_name(spans)
    assert parent_of(found["chat m"]) == span_id(found["node left"])
    assert parent_of(found["chat m2"]) == span_id(found["node right"])


async def test_embeddings_are_a_span(spans: InMemorySpanExporter, registry: ModelRegistry) -> None:
    with DAG("embed") as dag:
        EmbeddingOperator(model="e", name="embed")
    assert await dag.arun(["ab", "abc"], registry=registry) == [[2.0, 1.0], [3.0, 1.0]]
    found = by_name(spans)
    call = found["embeddings e"]
    assert parent_of(call) == span_id(found["node embed"])
    assert call.attributes is not None
    assert call.attributes["gen_ai.operation.name"] == "embeddings"
    assert call.attributes["gen_ai.embeddings.dimension.count"] == 2
    assert call.attributes["smmf_flow.inputs"] == 2


async def test_a_failed_node_fails_its_span_and_the_run(
    spans: InMemorySpanExporter, registry: ModelRegistry
) -> None:
    dag = answer_dag(LLMOperator(model="down", name="llm"))
    with pytest.raises(NodeFailed, match="node 'llm'"):
        await dag.arun({"word": "hi"}, registry=registry)
    found = by_name(spans)
    for name in ("chat down", "node llm", "invoke_workflow answer"):
        assert found[name].status.status_code is StatusCode.ERROR, name
    assert dict(found["node llm"].attributes or {})["smmf_flow.node.state"] == "failed"
    assert "node text" not in found  # never started


async def test_telemetry_off_makes_no_span(spans: InMemorySpanExporter, make_registry: Any) -> None:
    from smmf_flow import telemetry

    from .conftest import fake_config

    telemetry.disable()
    registry = make_registry(fake_config())
    dag = answer_dag(FallbackOperator(["down", "m"], name="llm"))
    assert await dag.arun({"word": "hi"}, registry=registry) == "m#0: say hi"
    assert spans.get_finished_spans() == ()
