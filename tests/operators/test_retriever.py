"""Indexing the shipped documents with the real MiniLM into Chroma, then
``RetrieverOperator``: the one document that holds an answer ranks first,
filters restrict, and indexing again never duplicates a chunk."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from smmf_flow import DAG
from smmf_flow.dag import Trace
from smmf_flow.errors import EdgeTypeError, FlowError, InputError, NodeFailed
from smmf_flow.operators import AnswerOperator, IndexerOperator, RetrieverOperator
from smmf_flow.operators.retriever import Retrieval

DOCS = Path(__file__).resolve().parents[2] / "examples" / "docs"
pytestmark = pytest.mark.anyio


def retriever(spec: dict[str, str], **kwargs: Any) -> DAG:
    with DAG("retrieve") as dag:
        RetrieverOperator(spec, model="minilm", name="retrieve", **kwargs)
    return dag


def indexer(spec: dict[str, str], **kwargs: Any) -> DAG:
    with DAG("index") as dag:
        IndexerOperator(spec, model="minilm", name="index", **kwargs)
    return dag


async def test_indexing_the_shipped_documents(docs_store: tuple[dict[str, str], Any]) -> None:
    _, report = docs_store
    assert report.documents == len(list(DOCS.glob("*.md"))) == 6
    assert report.chunks == report.embedded == report.total >= 24
    assert report.unchanged == report.removed == 0


# each question is answered in exactly one of the shipped documents
@pytest.mark.parametrize(
    ("question", "source"),
    [
        ("Who designed the Varnholm lighthouse, and when was it first lit?", "lighthouse.md"),
        ("How often should a bicycle chain be lubricated?", "bicycle_chain.md"),
        ("How many points of komi does White get under Japanese rules?", "go_game.md"),
        ("What is the grey liquid called hooch on a starter?", "sourdough.md"),
        ("What does the waggle dance tell other bees?", "honeybees.md"),
        ("Why are spring tides higher than neap tides?", "tides.md"),
    ],
)
async def test_the_document_with_the_answer_ranks_first(
    real_registry: Any, docs_store: tuple[dict[str, str], Any], question: str, source: str
) -> None:
    spec, _ = docs_store
    trace = Trace()
    result = await retriever(spec, k=4).arun(question, registry=real_registry, trace=trace)
    assert isinstance(result, Retrieval) and result.question == question
    assert len(result.hits) == 4
    assert result.hits[0].source == source
    assert [h.score for h in result.hits] == sorted((h.score for h in result.hits), reverse=True)
    assert -1.0 <= result.hits[-1].score < result.hits[0].score <= 1.0
    event = trace["retrieve"].events[-1]
    assert event["event"] == "retrieved" and event["model"] == "minilm"
    assert [h["id"] for h in event["hits"]] == result.ids


async def test_filters_from_the_node_and_from_the_input_combine(
    real_registry: Any, docs_store: tuple[dict[str, str], Any]
) -> None:
    spec, _ = docs_store
    question = "Who designed the Varnholm lighthouse?"
    only_tides = await retriever(spec, k=3, where={"source": "tides.md"}).arun(
        question, registry=real_registry
    )
    assert {h.source for h in only_tides.hits} == {"tides.md"}
    both = await retriever(
        spec, k=10, where={"file": {"$ne": "tides.md"}}, input_key="question"
    ).arun({"question": question, "where": {"index": 0}}, registry=real_registry)
    assert both.hits and all(h.metadata["index"] == 0 and h.source != "tides.md" for h in both.hits)
    assert len(both.hits) == 5  # the first chunk of each of the other five documents


async def test_min_score_drops_weak_hits(
    real_registry: Any, docs_store: tuple[dict[str, str], Any]
) -> None:
    spec, _ = docs_store
    result = await retriever(spec, k=8, min_score=0.35).arun(
        "What is komi in the game of Go?", registry=real_registry
    )
    assert result.hits and all(h.score >= 0.35 for h in result.hits)
    assert {h.source for h in result.hits} == {"go_game.md"}


async def test_indexing_again_embeds_and_adds_nothing(
    real_registry: Any, docs_store: tuple[dict[str, str], Any]
) -> None:
    spec, first = docs_store
    again = await indexer(spec).arun(str(DOCS), registry=real_registry)
    assert (again.chunks, again.embedded, again.unchanged) == (first.chunks, 0, first.chunks)
    assert again.total == first.total


async def test_a_changed_document_replaces_its_old_chunks(
    real_registry: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(DOCS / "tides.md", folder)
    shutil.copy(DOCS / "go_game.md", folder)
    spec = {"path": str(tmp_path / "store"), "collection": "changing"}
    first = await indexer(spec, size=300, overlap=0, input_key="path").arun(
        {"path": str(folder)}, registry=real_registry
    )
    text = (folder / "tides.md").read_text()
    (folder / "tides.md").write_text(text.replace("Tidal friction", "Friction of the tides"))
    second = await indexer(spec, size=300, overlap=0).arun(str(folder), registry=real_registry)
    assert second.embedded == second.removed >= 1
    assert second.total == first.total == second.chunks
    result = await retriever(spec, k=1).arun(
        "friction of the tides slows the earth", registry=real_registry
    )
    assert "Friction of the tides" in result.hits[0].text


@pytest.mark.parametrize(
    ("value", "key", "message"),
    [
        (
            {"query_text": "x"},
            "question",
            "the input has no 'question' (the node's input_key); it has query_text",
        ),
        (
            "a question",
            "question",
            "expected a mapping with 'question' (the node's input_key), got str",
        ),
        ({"question": 5}, "question", "the question must be a non-empty string, got 5"),
        ("   ", None, "the question must be a non-empty string"),
    ],
)
async def test_a_bad_question_is_an_input_error_of_the_node(
    real_registry: Any,
    docs_store: tuple[dict[str, str], Any],
    value: Any,
    key: str | None,
    message: str,
) -> None:
    spec, _ = docs_store
    with pytest.raises(NodeFailed) as info:
        await retriever(spec, input_key=key).arun(value, registry=real_registry)
    assert isinstance(info.value.__cause__, InputError)
    assert str(info.value).startswith(f"node 'retrieve' failed: InputError: {message}")


def test_input_key_makes_the_port_a_mapping_and_the_output_feeds_an_answer() -> None:
    assert RetrieverOperator(".smmf/rag").input_types == (str,)
    keyed = RetrieverOperator(".smmf/rag", input_key="question")
    assert keyed.input_types == (Mapping[str, Any],)
    with DAG("typed"):
        retrieve = RetrieverOperator(".smmf/rag", name="retrieve")
        retrieve >> AnswerOperator("m", name="answer")
        with pytest.raises(
            EdgeTypeError,
            match=r"'retrieve' outputs Retrieval but 'index' "
            r"input 1 expects",
        ):
            retrieve >> IndexerOperator(".smmf/rag", name="index")


def test_the_node_exports_its_store_and_settings() -> None:
    with DAG("r"):
        node = RetrieverOperator(
            {"path": ".smmf/rag", "collection": "docs"}, k=3, where={"source": "a.md"}, name="r"
        )
    assert node.params() == {
        "store": {"path": ".smmf/rag", "collection": "docs"},
        "k": 3,
        "where": {"source": "a.md"},
    }
    assert RetrieverOperator(**node.params()).params() == node.params()
    with pytest.raises(
        FlowError,
        match=r"^node 'bad': parameter 'k': input should be greater than or equal to 1, got 0",
    ) as caught:
        RetrieverOperator(".smmf/rag", k=0, name="bad")
    assert caught.value.param == "k"
