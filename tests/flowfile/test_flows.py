"""Every flow in flows/ runs on the real bundled models (SmolLM2 on llama.cpp,
MiniLM on sentence-transformers), against the model config each flow names.
Answers are checked for shape, never for facts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from smmf_flow import Trace
from smmf_flow.flowfile.flow import Flow, load_flow, loads_flow

FLOWS = Path(__file__).resolve().parents[2] / "flows"
pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
async def registries() -> AsyncIterator[dict[str, Any]]:
    """One registry per model config, shared by this module's tests."""
    made: dict[str, Any] = {}
    yield made
    for registry in made.values():
        await registry.aclose()


def flow_and_registry(
    name: str, registries: dict[str, Any], flow: Flow | None = None
) -> tuple[Flow, Any]:
    from smmf_flow.models.registry import ModelRegistry

    flow = flow or load_flow(FLOWS / name)
    path = str(flow.models_path().resolve())
    if path not in registries:
        registries[path] = ModelRegistry.from_toml(path)
    flow.check(registries[path])
    return flow, registries[path]


async def test_chat_streams_an_answer(registries: dict[str, Any]) -> None:
    # the main job itself (128 tokens) runs in tests/cli; a shorter answer suffices here
    text = (FLOWS / "chat.yaml").read_text().replace("max_tokens: 128", "max_tokens: 24")
    assert "max_tokens: 24" in text
    flow, registry = flow_and_registry(
        "chat.yaml", registries, loads_flow(text, file=str(FLOWS / "chat.yaml"))
    )
    assert flow.spec.stream
    chunks = [c async for c in flow.astream({"question": "What is a river?"}, registry=registry)]
    assert len(chunks) > 3
    assert all(isinstance(c.text, str) for c in chunks)
    assert "".join(c.text for c in chunks).strip()


async def test_fallback_falls_through_the_unreachable_model(registries: dict[str, Any]) -> None:
    flow, registry = flow_and_registry("fallback.yaml", registries)
    trace = Trace()
    result = await flow.arun({"question": "Name a colour."}, registry=registry, trace=trace)
    assert result.model == "smollm2" and result.text.strip()
    events = trace["answer"].events
    assert events[0]["event"] == "fallback" and events[0]["model"] == "offline"
    assert events[0]["kind"] == "unavailable"
    assert {"event": "fallback_served", "model": "smollm2"} in events


@pytest.mark.parametrize(
    ("question", "model"),
    [
        ("What does this do? def f(x): return x * 2", "smollm2"),
        ("Name a colour.", "smollm2-small"),
    ],
)
async def test_router_picks_by_rule(registries: dict[str, Any], question: str, model: str) -> None:
    flow, registry = flow_and_registry("router.yaml", registries)
    trace = Trace()
    result = await flow.arun({"question": question}, registry=registry, trace=trace)
    route = next(e for e in trace["answer"].events if e["event"] == "route")
    assert route["model"] == model == result.model
    assert result.text.strip()


async def test_embed_similarity_ranks_paraphrases_higher(registries: dict[str, Any]) -> None:
    flow, registry = flow_and_registry("embed-similarity.yaml", registries)
    close = await flow.arun(
        {"a": "A cat sat on the mat.", "b": "A kitten rested on the rug."}, registry=registry
    )
    far = await flow.arun(
        {"a": "A cat sat on the mat.", "b": "Interest rates rose in March."}, registry=registry
    )
    assert -1.0 <= far < close <= 1.0


async def test_summarize_fans_out_and_joins(registries: dict[str, Any]) -> None:
    flow, registry = flow_and_registry("summarize.yaml", registries)
    values = yaml.safe_load((FLOWS / "summarize.input.yaml").read_text())
    trace = Trace()
    report = await flow.arun(values, registry=registry, trace=trace)
    assert report.startswith("# ") and "\n\nkeywords: " in report
    states = {name: rec.state.value for name, rec in trace.records.items()}
    assert states == dict.fromkeys(flow.spec.nodes, "succeeded")
    assert [p.name for p in flow.dag.upstream(flow.dag.node("report"))] == [
        "title",
        "summary",
        "keywords",
    ]
