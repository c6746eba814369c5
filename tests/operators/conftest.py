import pytest


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """Session-wide, so that the session's real models serve every test."""
    return "asyncio"


@pytest.fixture(autouse=True)
def _async_fixtures_for_sync_tests(anyio_backend: str) -> None:
    """Lets plain tests use async fixtures such as ``real_registry`` too."""


# --- RAG and agent fixtures (test_splitter/vectorstore/retriever/answer/agent) ------------

from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402


@pytest.fixture(scope="session")
async def docs_store(real_registry: Any,
                     tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], Any]:
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


class Script:
    """The ``test/scripted`` model's part: ``registry(*replies)`` makes a fresh
    registry whose model ``scripted`` (also the default LLM, and the one member
    of the fallback group ``scripted-group``) answers with ``replies`` in order
    (an exception is raised instead of answered); ``requests`` keeps what it was
    sent. A deterministic model whose replies drive an answer or agent loop."""

    provider = "test/scripted"

    def __init__(self, make_registry: Callable[[dict[str, Any]], Any]) -> None:
        self.make_registry = make_registry
        self.replies: list[Any] = []
        self.requests: list[Any] = []

    def registry(self, *replies: Any, also: tuple[str, ...] = ()) -> Any:
        """The registry; models named in ``also`` play the same script (a flow
        that names ``smollm2`` can then run on it)."""
        self.replies, self.requests = list(replies), []
        return self.make_registry({"models": {
            "default_llm": "scripted",
            "llms": [{"name": name, "provider": self.provider, "failure_threshold": 1000}
                     for name in ("scripted", *also)],
            "groups": [{"name": "scripted-group", "strategy": "fallback",
                        "members": ["scripted"]}]}})


@pytest.fixture
def scripted(make_registry: Callable[[dict[str, Any]], Any]) -> Script:
    """A ``Script`` whose provider is registered for this test."""
    from smmf_flow.models.backends import Backend, Capabilities, register_backend
    from smmf_flow.models.types import ChatRequest, ChatResult, Usage

    script = Script(make_registry)

    class Scripted(Backend):
        provider = Script.provider

        @property
        def capabilities(self) -> Capabilities:
            return Capabilities(chat=True, json_schema=True)

        async def load(self) -> None:
            pass

        async def chat(self, request: ChatRequest) -> ChatResult:
            script.requests.append(request)
            if not script.replies:
                raise AssertionError("the scripted model ran out of replies")
            reply = script.replies.pop(0)
            if isinstance(reply, Exception):
                raise reply
            return ChatResult(text=reply, usage=Usage(10, 5), model=self.config.name,
                              instance=self.instance_id)

    register_backend(Script.provider, Scripted)
    return script
