"""The shipped RAG flows as YAML: flows/rag-index.yaml fills a store with the real
MiniLM, and flows/rag-answer.yaml answers from it on SmolLM2, served over HTTP
like any flow (``POST /v1/flows/rag-answer/run``). The store path is moved to a
temporary folder; everything else is the shipped file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from smmf_flow.flowfile.flow import Flow, loads_flow
from smmf_flow.server import FlowCatalog, create_app

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.anyio


def shipped(name: str, store: Path) -> Flow:
    """flows/``name`` with its store in ``store`` instead of .smmf/rag."""
    text = (ROOT / "flows" / name).read_text()
    assert "path: .smmf/rag," in text
    return loads_flow(
        text.replace("path: .smmf/rag,", f"path: {store},"), file=str(ROOT / "flows" / name)
    )


@pytest.fixture(scope="module")
async def indexed(real_registry: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("flows") / "rag"
    flow = shipped("rag-index.yaml", store)
    flow.check(real_registry)
    first = await flow.arun({}, registry=real_registry)  # the default input: examples/docs
    assert first.documents == 6 and first.embedded == first.total == first.chunks
    return store


async def test_indexing_twice_with_the_yaml_flow_adds_nothing(
    real_registry: Any, indexed: Path
) -> None:
    flow = shipped("rag-index.yaml", indexed)
    again = await flow.arun({"path": str(ROOT / "examples" / "docs")}, registry=real_registry)
    assert again.embedded == 0 and again.unchanged == again.chunks == again.total


async def test_the_server_runs_the_answer_flow(real_registry: Any, indexed: Path) -> None:
    flow = shipped("rag-answer.yaml", indexed)
    flow.check(real_registry)
    app = create_app(
        real_registry, flows=FlowCatalog({flow.name: flow}, real_registry), warmup=False
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1", timeout=600
    ) as client:
        described = (await client.get("/v1/flows/rag-answer")).json()
        assert described["inputs"]["question"]["required"] is True
        missing = await client.post("/v1/flows/rag-answer/run", json={"inputs": {}})
        assert missing.status_code == 422 and "question" in missing.text
        done = await client.post(
            "/v1/flows/rag-answer/run",
            json={"inputs": {"question": "Who designed the Varnholm lighthouse?"}},
        )
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["flow"] == "rag-answer"
    answer = body["output"]
    assert answer["text"].strip() and answer["model"] == "smollm2"
    # the shipped flow does not ask for the passages: cited ids and files only
    assert set(answer) == {"text", "citations", "sources", "passages", "model"}
    assert answer["passages"] == []
    assert answer["citations"] and len(answer["citations"]) <= 3
    docs = {p.name for p in (ROOT / "examples" / "docs").glob("*.md")}
    assert answer["sources"] and set(answer["sources"]) <= docs
