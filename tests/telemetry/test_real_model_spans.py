"""The spans of a run on the bundled SmolLM2 (llama.cpp): a fallback from a model
nobody serves to SmolLM2, streamed, with the usage SmolLM2 reports."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from smmf_flow import DAG
from smmf_flow.operators import FallbackOperator, PromptOperator

from .conftest import by_name, events, free_port, parent_of, span_id

pytestmark = [pytest.mark.anyio, pytest.mark.models]


async def test_a_streamed_fallback_to_smollm2(
    spans: InMemorySpanExporter,
    make_registry: Callable[[dict[str, Any]], Any],
    llama_entry: Callable[..., dict[str, Any]],
) -> None:
    down = {
        "name": "down",
        "provider": "proxy/openai",
        "api_base": f"http://127.0.0.1:{free_port()}/v1",
        "api_key": "unused",
    }
    registry = make_registry({"models": {"llms": [down, llama_entry("smollm2")]}})
    with DAG("ask") as dag:
        PromptOperator("Name a colour.", max_tokens=12, name="prompt") >> FallbackOperator(
            ["down", "smollm2"], stream=True, name="answer"
        )
    text = "".join([chunk.text async for chunk in dag.astream(None, registry=registry)])
    assert text.strip()
    found = by_name(spans)
    node, call = found["node answer"], found["chat smollm2"]
    assert parent_of(node) == span_id(found["invoke_workflow ask"])
    assert parent_of(call) == parent_of(found["chat down"]) == span_id(node)
    assert found["chat down"].status.status_code is StatusCode.ERROR
    attributes = dict(call.attributes or {})
    assert attributes["gen_ai.provider.name"] == "llama.cpp"
    assert attributes["gen_ai.request.max_tokens"] == 12
    assert attributes["gen_ai.response.model"] == "smollm2"
    assert attributes["smmf_flow.instance"] == "smollm2#0"
    assert attributes["gen_ai.usage.input_tokens"] > 5  # the chat template's tokens too
    assert 0 < attributes["gen_ai.usage.output_tokens"] <= 12
    assert attributes["gen_ai.response.finish_reasons"][0] in ("stop", "length")
    assert events(node)[0][0] == "smmf_flow.fallback"
