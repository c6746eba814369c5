"""Hostile input to the RAG operators: paths that lead out of the folder a run may
read, files that are not documents, and answers that would publish every passage.

On main, ``POST /v1/flows/rag-index/run`` with ``{"inputs": {"path": "/etc/passwd"}}``
indexed the file and ``rag-answer`` then returned its text. Now every path from a
run's input goes through the run's ``FileAccess`` (inside the flow's folder for an
HTTP run) before it is opened, a folder's files are checked one by one, and a
served answer carries the passages only when its flow asks (``passages: true``).
Indexing runs on the real MiniLM, answering on the real SmolLM2.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from smmf_flow import DAG, FileAccess
from smmf_flow.errors import InputError, NodeFailed
from smmf_flow.flowfile.flow import Flow, loads_flow
from smmf_flow.operators import IndexerOperator
from smmf_flow.operators.vectorstore.chroma import ChromaStore
from smmf_flow.server import FlowCatalog, create_app

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]
SECRET = "The vault code is 4711-SECRET."


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """``tmp/served`` (the folder runs may read) beside ``tmp/outside``::

    served/docs/a.md, served/docs/sub/b.md        documents
    served/leaky/ok.md, served/leaky/link.md      link.md → ../../outside/secret.md
    served/aliased/ok.md, served/aliased/alias.md alias.md → ../docs/a.md (inside)
    served/pipe, served/piped/ok.md, piped/x.md   FIFOs
    outside/secret.md
    """
    served, outside = tmp_path / "served", tmp_path / "outside"
    for folder in ("docs/sub", "leaky", "aliased", "piped"):
        (served / folder).mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.md").write_text(SECRET)
    (served / "docs" / "a.md").write_text("Apples grow on trees in orchards.")
    (served / "docs" / "sub" / "b.md").write_text("Bees make honey from nectar.")
    for folder in ("leaky", "aliased", "piped"):
        (served / folder / "ok.md").write_text(f"An ordinary document in {folder}.")
    (served / "leaky" / "link.md").symlink_to(outside / "secret.md")
    (served / "aliased" / "alias.md").symlink_to(served / "docs" / "a.md")
    os.mkfifo(served / "pipe")
    os.mkfifo(served / "piped" / "x.md")
    return tmp_path


@pytest.fixture
def minilm(make_registry: Callable[[dict[str, Any]], Any], minilm_entry: dict[str, Any]) -> Any:
    return make_registry({"models": {"embeddings": [minilm_entry]}})


async def index(path: Any, registry: Any, store: Path, files: FileAccess | None) -> Any:
    with DAG("index") as dag:
        IndexerOperator(
            {"path": str(store), "collection": "docs"},
            model="minilm",
            name="index",
            input_key="path",
        )
    return await dag.arun({"path": path}, registry=registry, files=files)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (
            "../outside/secret.md",
            "path '../outside/secret.md' is outside the folder this flow "
            "may read; give a path inside it",
        ),
        ("docs/../../outside/secret.md", "is outside the folder this flow may read"),
        ("{tmp}/outside/secret.md", "is outside the folder this flow may read"),
        ("/etc/passwd", "path '/etc/passwd' is outside the folder this flow may read"),
        ("/proc/self/environ", "path '/proc/self/environ' is outside the folder"),
        ("/dev/zero", "path '/dev/zero' is outside the folder"),
        ("pipe", "path 'pipe' is not a regular file or folder"),
        ("leaky/link.md", "path 'leaky/link.md' is outside the folder this flow may read"),
        ("leaky", "path 'leaky/link.md' is outside the folder this flow may read"),
        ("nowhere.md", "path 'nowhere.md' does not exist in the folder this flow may read"),
        ("docs\x00.md", "contains a NUL byte"),
    ],
)
async def test_a_path_that_leads_out_is_refused_before_anything_is_read(
    minilm: Any, tree: Path, path: str, message: str
) -> None:
    given = path.replace("{tmp}", str(tree))
    store = tree / "store"
    with pytest.raises(NodeFailed) as info:
        await index(given, minilm, store, FileAccess.inside(tree / "served"))
    cause = info.value.__cause__
    assert isinstance(cause, InputError), cause
    assert message in str(cause)
    shown = str(cause).replace(given, "<given>")
    assert str(tree) not in shown and "served" not in shown  # no server folder named
    assert ChromaStore(store, "docs").count() == 0  # nothing was written


async def test_inside_the_folder_documents_and_inner_links_are_read(
    minilm: Any, tree: Path
) -> None:
    served, store = FileAccess.inside(tree / "served"), tree / "store"
    report = await index("docs", minilm, store, served)
    assert (report.documents, report.total) == (2, 2)
    # a link that stays inside the folder is fine: it is the same document as docs/a.md
    aliased = await index("aliased", minilm, store, served)
    assert aliased.documents == 2 and aliased.embedded == 1  # ok.md; alias.md is a.md
    # FIFOs found in a folder are not documents: skipped without being opened
    piped = await index(["piped", "docs/sub/b.md"], minilm, store, served)
    assert piped.documents == 2


async def test_without_a_root_special_files_are_still_refused_at_once(
    minilm: Any, tree: Path
) -> None:
    """The CLI's unrestricted access reads any file, but never blocks on a FIFO or
    reads a device as a document."""
    for path in (tree / "served" / "pipe", Path("/dev/zero")):
        with pytest.raises(NodeFailed) as info:
            await index(str(path), minilm, tree / "store", None)
        assert isinstance(info.value.__cause__, InputError)
        assert f"'{path}' is neither a file nor a folder" in str(info.value.__cause__)


def served_flow(name: str, folder: Path, store: Path, *, passages: bool = False) -> Flow:
    """flows/``name`` as if it lived in ``folder`` (the folder its HTTP runs may read),
    with its store in ``store``."""
    text = (ROOT / "flows" / name).read_text().replace("path: .smmf/rag,", f"path: {store},")
    if passages:
        text = text.replace("    max_tokens: 160\n", "    max_tokens: 160\n    passages: true\n")
        text = text.replace("name: rag-answer\n", "name: rag-answer-cited\n")
        assert "passages: true" in text and "rag-answer-cited" in text
    return loads_flow(text, file=str(folder / name))


@pytest.mark.models
async def test_the_server_indexes_only_its_folder_and_answers_without_passages(
    make_registry: Callable[[dict[str, Any]], Any],
    tree: Path,
    llama_entry: Callable[..., dict[str, Any]],
    minilm_entry: dict[str, Any],
) -> None:
    registry = make_registry(
        {"models": {"llms": [llama_entry("smollm2")], "embeddings": [minilm_entry]}}
    )
    served, store = tree / "served", tree / "store"
    flows = {
        "rag-index": served_flow("rag-index.yaml", served, store),
        "rag-answer": served_flow("rag-answer.yaml", served, store),
        "rag-answer-cited": served_flow("rag-answer.yaml", served, store, passages=True),
    }
    app = create_app(registry, flows=FlowCatalog(flows, registry), warmup=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1", timeout=600
    ) as client:

        async def post(flow: str, **inputs: Any) -> httpx.Response:
            return await client.post(f"/v1/flows/{flow}/run", json={"inputs": inputs})

        for hostile in ("/etc/passwd", "../outside/secret.md", "leaky", "/proc/self/environ"):
            refused = await post("rag-index", path=hostile)
            assert refused.status_code == 422, refused.text
            assert "outside the folder this flow may read" in refused.text
            assert str(tree) not in refused.text and "root:" not in refused.text
        assert ChromaStore(store, "docs").count() == 0

        indexed = await post("rag-index", path="docs")
        assert indexed.status_code == 200, indexed.text
        assert indexed.json()["output"]["total"] == 2

        question = "What do bees make?"
        plain = (await post("rag-answer", question=question)).json()["output"]
        cited = (await post("rag-answer-cited", question=question)).json()["output"]
    assert plain["passages"] == [] and plain["citations"] and plain["text"].strip()
    assert set(plain["sources"]) <= {"a.md", "sub/b.md"}
    texts = {p["text"] for p in cited["passages"]}
    assert texts == {"Apples grow on trees in orchards.", "Bees make honey from nectar."}
    assert all(str(tree) not in str(p["metadata"]) for p in cited["passages"])
