"""``TextSplitterOperator``: chunks by characters or tokens, with overlap, exact
offsets and ids that stay the same when the same text is split again."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import pytest

from smmf_flow import DAG
from smmf_flow.errors import FlowError, InputError, NodeFailed
from smmf_flow.operators import Document, TextSplitterOperator, load_documents
from smmf_flow.operators.documents import Chunk
from smmf_flow.operators.splitter import split_chars, split_tokens

DOCS = Path(__file__).resolve().parents[2] / "examples" / "docs"
pytestmark = pytest.mark.anyio


def words(text: str) -> int:
    return len(text.split())


@pytest.fixture(scope="module")
def docs() -> list[Document]:
    return load_documents(DOCS)


def check_cover(doc: Document, chunks: list[Chunk]) -> None:
    """Every chunk is an exact slice, and together they cover every word."""
    covered = set()
    for i, chunk in enumerate(chunks):
        assert chunk.text == doc.text[chunk.start : chunk.end]
        assert chunk.text == chunk.text.strip() and chunk.text
        assert chunk.source == doc.source and chunk.index == i
        covered.update(range(chunk.start, chunk.end))
    for m in re.finditer(r"\S", doc.text):
        assert m.start() in covered, f"character {m.start()} of {doc.source} is in no chunk"


@pytest.mark.parametrize(("size", "overlap"), [(600, 80), (300, 0), (120, 40)])
def test_chars_are_exact_slices_within_size_that_cover_the_text(
    docs: list[Document], size: int, overlap: int
) -> None:
    for doc in docs:
        chunks = split_chars(doc, size, overlap)
        check_cover(doc, chunks)
        assert all(len(c.text) <= size for c in chunks)
        pairs = list(itertools.pairwise(chunks))
        if overlap:
            assert all(b.start < a.end for a, b in pairs)
        else:
            assert all(b.start >= a.end for a, b in pairs)


def test_chars_cut_at_sentence_ends_not_inside_words(docs: list[Document]) -> None:
    lighthouse = next(d for d in docs if d.source == "lighthouse.md")
    chunks = split_chars(lighthouse, 600, 80)
    assert len(chunks) >= 4
    assert all(c.text.endswith(".") for c in chunks)  # hard-wrapped text, cut at a sentence
    for chunk in chunks[1:]:  # overlapping starts fall on a word boundary
        assert lighthouse.text[chunk.start - 1].isspace()


def test_a_word_longer_than_the_window_is_cut_and_the_loop_ends() -> None:
    doc = Document("x" * 250, "long.txt")
    chunks = split_chars(doc, 100, 30)
    check_cover(doc, chunks)
    # no word boundary to overlap at: the windows follow each other
    assert [(c.start, c.end) for c in chunks] == [(0, 100), (100, 200), (200, 250)]


def test_tokens_pack_whole_words_with_token_overlap(docs: list[Document]) -> None:
    count = lambda w: 1 + len(w) // 6  # noqa: E731 - a stand-in tokenizer
    for doc in docs:
        chunks = split_tokens(doc, 50, 10, count)
        check_cover(doc, chunks)
        for chunk in chunks:
            assert sum(count(w) for w in chunk.text.split()) <= 50
        for a, b in itertools.pairwise(chunks):
            shared = doc.text[b.start : a.end].split()
            assert shared and sum(count(w) for w in shared) <= 10


def test_ids_are_stable_and_depend_on_the_document_key_offsets_and_text(
    docs: list[Document],
) -> None:
    doc = docs[0]
    assert doc.key == str((DOCS / doc.source).resolve())  # the canonical path
    first, again = split_chars(doc, 400, 50), split_chars(doc, 400, 50)
    assert [c.id for c in first] == [c.id for c in again]
    assert len({c.id for c in first}) == len(first)
    assert {c.key for c in first} == {doc.key} and {c.source for c in first} == {doc.source}
    # another file with the same short name (another folder) gets other ids
    moved = split_chars(Document(doc.text, doc.source, key="/elsewhere/" + doc.source), 400, 50)
    assert not {c.id for c in moved} & {c.id for c in first}
    # an edit near the end changes only the chunks that contain it
    edited = Document(doc.text[:-20] + "A changed ending.\n", doc.source, key=doc.key)
    after = split_chars(edited, 400, 50)
    assert [c.id for c in after[:-2]] == [c.id for c in first[:-2]]
    assert after[-1].id != first[-1].id


async def test_the_node_splits_by_minilm_tokens_within_the_models_window(
    real_registry: Any, docs: list[Document]
) -> None:
    with DAG("split") as dag:
        TextSplitterOperator(64, 16, unit="tokens", model="minilm", name="split")
    chunks = await dag.arun(docs, registry=real_registry)
    pool = real_registry.pool("minilm")
    assert {c.source for c in chunks} == {d.source for d in docs}
    assert all(pool.count_tokens(c.text) <= 64 for c in chunks)
    assert max(pool.count_tokens(c.text) for c in chunks) > 48  # windows are filled


def test_the_node_splits_a_plain_string_and_exports_its_params() -> None:
    with DAG("split") as dag:
        node = TextSplitterOperator(40, 10, name="split")
    chunks = dag.run("One sentence here. Another sentence there. A third one to finish.")
    assert [c.source for c in chunks] == ["input"] * len(chunks) and len(chunks) == 2
    assert node.params() == {"size": 40, "overlap": 10}
    assert node.model_refs() == []


@pytest.mark.parametrize(
    ("kwargs", "message", "param"),
    [
        (
            {"size": 100, "overlap": 100},
            r"parameter 'overlap': overlap \(100\) must be less than "
            r"size \(100\)",
            "overlap",
        ),
        (
            {"size": 0},
            "parameter 'size': input should be greater than or equal to 1, got 0",
            "size",
        ),
        (
            {"unit": "lines"},
            "parameter 'unit': input should be 'chars' or 'tokens', got 'lines'",
            "unit",
        ),
        (
            {"model": "minilm"},
            "parameter 'model': `model` only counts tokens; set unit: tokens",
            "model",
        ),
    ],
)
def test_bad_settings_are_refused_with_the_node_named(
    kwargs: dict[str, Any], message: str, param: str
) -> None:
    with pytest.raises(FlowError, match=r"^node 'cut': " + message) as caught:
        TextSplitterOperator(**kwargs, name="cut")
    assert caught.value.param == param


def test_a_wrong_input_is_an_input_error_of_the_node() -> None:
    with DAG("split") as dag:
        TextSplitterOperator(name="cut")
    with pytest.raises(NodeFailed) as info:
        dag.run(42)
    assert isinstance(info.value.__cause__, InputError)
    assert str(info.value) == (
        "node 'cut' failed: InputError: expected a Document, a list "
        "of Documents or a string, got int"
    )
