from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from reliability.scripted import Script


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """Session-wide, so that the session's real models serve every test."""
    return "asyncio"


@pytest.fixture(autouse=True)
def _async_fixtures_for_sync_tests(anyio_backend: str) -> None:
    """Lets plain tests use async fixtures such as ``real_registry`` too."""


# --- RAG and agent fixtures (test_splitter/vectorstore/retriever/answer/agent) ------------


@pytest.fixture(scope="session")
async def docs_store(
    real_registry: Any, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, str], Any]:
    """The shipped documents indexed once per session with the real MiniLM into a
    Chroma store in a temporary folder: ``(store spec, the first IndexReport)``."""
    from smmf_flow import DAG
    from smmf_flow.operators import IndexerOperator

    spec = {"path": str(tmp_path_factory.mktemp("rag") / "store"), "collection": "docs"}
    with DAG("index") as dag:
        IndexerOperator(spec, model="minilm", name="index")
    docs = Path(__file__).resolve().parents[2] / "examples" / "docs"
    report = await dag.arun(str(docs), registry=real_registry)
    return spec, report


@pytest.fixture
def scripted(make_registry: Callable[[dict[str, Any]], Any]) -> Script:
    """A ``Script`` (tests/reliability/scripted.py) registered for this test."""
    return Script(make_registry)
