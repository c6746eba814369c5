"""One registry, many synchronous runs: each ``dag.run`` is an event loop of its own
(``anyio.run``), so whatever the first run made (pools and their locks and queues,
engine threads, the embedding batcher's semaphore, workers) is used again in a loop
that did not make it. Real SmolLM2 and MiniLM."""

from __future__ import annotations

from typing import Any

import pytest

from smmf_flow import DAG, JoinOperator, MapOperator
from smmf_flow.models import ModelRegistry
from smmf_flow.operators import EmbeddingOperator, LLMOperator, PromptOperator

pytestmark = pytest.mark.models


def busy_flow() -> DAG:
    """Two generations on one single-slot pool (the second waits in its queue) and two
    embedding nodes whose calls the micro-batcher coalesces, all at once."""
    with DAG("busy") as dag:
        topic = MapOperator(lambda t: {"topic": t}, name="topic")
        texts = MapOperator(lambda t: [t, t.upper()], name="texts")
        prompts = [
            PromptOperator("Name one {{ topic }}.", max_tokens=6, name=f"ask{i}") for i in (1, 2)
        ]
        answers = [LLMOperator("smollm2", max_tokens=6, name=f"gen{i}") for i in (1, 2)]
        vectors = [EmbeddingOperator("minilm", name=f"vec{i}") for i in (1, 2)]
        report = JoinOperator(lambda a, b, v, w: (a.text, b.text, len(v[0]), len(w)), name="report")
        topic >> prompts
        for prompt, answer in zip(prompts, answers, strict=True):
            prompt >> answer
        texts >> vectors
        [*answers, *vectors] >> report
    return dag


def check(result: Any) -> None:
    first, second, dimension, count = result
    assert first.strip() and second.strip()
    assert (dimension, count) == (384, 2)


def test_one_registry_serves_synchronous_runs_in_turn(
    llama_entry: Any, minilm_entry: dict[str, Any]
) -> None:
    dag = busy_flow()
    config = {
        "models": {
            "llms": [llama_entry("smollm2")],
            "embeddings": [{**minilm_entry, "max_batch_wait_ms": 20}],
        }
    }
    with ModelRegistry.from_dict(config) as models:
        for topic in ("fruit", "colour", "river"):
            check(dag.run(topic, registry=models))
        pools = [models.pool("smollm2"), models.pool("minilm")]
        assert [p.status for p in pools] == ["ready", "ready"]
        calls = {i.id: (i.done, i.failed) for p in pools for i in p.instances}
        assert calls == {"smollm2#0": (6, 0), "minilm#0": (calls["minilm#0"][0], 0)}
        assert 3 <= calls["minilm#0"][0] <= 6  # coalesced: at most one batch per call
    assert [p.status for p in pools] == ["closed", "closed"]


def test_the_default_registry_in_a_with_block(monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's form: ``with ModelRegistry.default() as models`` around two runs."""
    monkeypatch.delenv("SMMF_MODELS", raising=False)
    dag = busy_flow()
    with ModelRegistry.default() as models:
        check(dag.run("tree", registry=models))
        check(dag.run("bird", registry=models))
        pool = models.pool("smollm2")
    assert pool.status == "closed"
