"""``ChromaStore``: Chroma's embedded ``PersistentClient`` on disk behind the
``VectorStore`` interface. Vectors here are small hand-made ones (no model
involved); the store must never embed anything itself, upserts by id, and its
contents survive the process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from smmf_flow.errors import FlowError, InputError, RunError
from smmf_flow.operators import RetrieverOperator
from smmf_flow.operators.documents import Chunk, Document, make_chunk, source_key
from smmf_flow.operators.vectorstore import StoreSpec, check_spec, open_store
from smmf_flow.operators.vectorstore.chroma import ChromaStore

TEXTS = {
    "north.md": "The lighthouse stands on the northern spur.",
    "bees.md": "Worker bees build comb from wax.",
    "tides.md": "Spring tides follow the new and full moon.",
}
VECTORS = {"north.md": [1.0, 0.0, 0.0], "bees.md": [0.0, 1.0, 0.0], "tides.md": [0.0, 0.0, 1.0]}
HAND = "hand:1"  # the fingerprint of the "model" that made these vectors by hand


def chunks_and_vectors() -> tuple[list[Chunk], list[list[float]]]:
    chunks = [
        make_chunk(Document(text, source, {"lang": "en"}), 0, len(text), 0)
        for source, text in TEXTS.items()
    ]
    return chunks, [VECTORS[c.source] for c in chunks]


@pytest.fixture
def store(tmp_path: Path) -> ChromaStore:
    made = ChromaStore(tmp_path / "store", "unit")
    chunks, vectors = chunks_and_vectors()
    made.upsert(chunks, vectors, model="hand", fingerprint=HAND)
    return made


def test_query_ranks_by_cosine_and_returns_text_and_metadata(store: ChromaStore) -> None:
    hits = store.query([0.9, 0.1, 0.0], 3, model="hand", fingerprint=HAND)
    assert [h.source for h in hits] == ["north.md", "bees.md", "tides.md"]
    assert hits[0].score == pytest.approx(0.9 / (0.81 + 0.01) ** 0.5, abs=1e-4)
    assert hits[0].text == TEXTS["north.md"]
    assert hits[0].metadata == {
        "lang": "en",
        "source": "north.md",
        "source_key": source_key("north.md"),
        "start": 0,
        "end": len(TEXTS["north.md"]),
        "index": 0,
    }


def test_metadata_filters_restrict_the_candidates(store: ChromaStore) -> None:
    hits = store.query(
        [1.0, 0.0, 0.0],
        3,
        where={"source": {"$in": ["bees.md", "tides.md"]}},
        model="hand",
        fingerprint=HAND,
    )
    assert {h.source for h in hits} == {"bees.md", "tides.md"}
    with pytest.raises(InputError, match="bad metadata filter"):
        store.query(
            [1.0, 0.0, 0.0], 3, where={"source": {"$near": 1}}, model="hand", fingerprint=HAND
        )


def test_upserting_the_same_chunks_again_adds_nothing(store: ChromaStore) -> None:
    chunks, vectors = chunks_and_vectors()
    store.upsert(chunks, vectors, model="hand", fingerprint=HAND)
    assert store.count() == 3
    assert store.existing([c.id for c in chunks] + ["unknown"]) == {c.id for c in chunks}


def test_stale_chunks_of_a_source_are_deleted(store: ChromaStore) -> None:
    chunks, _ = chunks_and_vectors()
    keep = [c.id for c in chunks if c.source == "bees.md"]
    assert store.delete_stale(source_key("bees.md"), keep) == 0
    assert store.delete_stale(source_key("tides.md"), []) == 1
    assert store.count() == 2


def test_vectors_of_another_model_are_refused(store: ChromaStore) -> None:
    with pytest.raises(
        RunError,
        match=r"holds 3-dimensional vectors from model 'hand', but "
        r"this node uses 'other' \(3 dimensions\)",
    ):
        store.query([1.0, 0.0, 0.0], 1, model="other", fingerprint=HAND)
    with pytest.raises(RunError, match="uses 'hand' \\(4 dimensions\\)"):
        store.query([1.0, 0.0, 0.0, 0.0], 1, model="hand", fingerprint=HAND)


def test_chroma_never_embeds_by_itself(store: ChromaStore) -> None:
    import chromadb
    from chromadb.config import Settings

    from smmf_flow.operators.vectorstore.chroma import external_embeddings

    client = chromadb.PersistentClient(
        path=str(store.path), settings=Settings(anonymized_telemetry=False)
    )
    collection = client.get_collection("unit", embedding_function=external_embeddings())
    assert collection.configuration_json["embedding_function"]["name"] == "smmf-flow-external"
    with pytest.raises(RunError, match="smmf-flow passes every vector explicitly"):
        collection.add(ids=["x"], documents=["text without a vector"])
    with pytest.raises(RunError, match="smmf-flow passes every vector explicitly"):
        collection.query(query_texts=["a query without a vector"])


def test_a_missing_collection_says_to_index_first(tmp_path: Path) -> None:
    empty = ChromaStore(tmp_path / "empty", "docs")
    assert empty.count() == 0 and empty.existing(["a"]) == set()
    with pytest.raises(RunError, match="does not exist yet; run the indexer"):
        empty.query([1.0], 1, model="hand", fingerprint=HAND)


def test_the_store_survives_the_process(store: ChromaStore) -> None:
    """A new Python process opens the folder and finds the chunks, ranked the same."""
    program = (
        "import json, sys\n"
        "from smmf_flow.operators.vectorstore import StoreSpec, open_store\n"
        "store = open_store(StoreSpec(path=sys.argv[1], collection='unit'))\n"
        "hits = store.query([0.0, 0.2, 1.0], 2, model='hand', fingerprint='hand:1')\n"
        "print(json.dumps({'count': store.count(), 'hits': [h.source for h in hits]}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program, str(store.path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "count": 3,
        "hits": ["tides.md", "bees.md"],
    }


def test_specs_are_checked_with_the_field_named(tmp_path: Path) -> None:
    assert check_spec("some/folder") == StoreSpec(path="some/folder")
    with pytest.raises(
        FlowError,
        match="^unknown parameter 'colection'; did you mean "
        r"'collection'\? \(store parameters: type, path, "
        r"collection\)",
    ):
        check_spec({"path": "x", "colection": "docs"})
    with pytest.raises(
        FlowError,
        match=r"^node 'r': unknown field 'colection' in store; did "
        r"you mean 'collection'\?",
    ) as caught:
        RetrieverOperator({"path": "x", "colection": "docs"}, name="r")
    assert caught.value.param == "store.colection"
    with pytest.raises(
        FlowError,
        match="^node 'r': parameter 'store.type': unknown store type "
        r"'faiss' \(known: chroma\)",
    ):
        RetrieverOperator({"type": "faiss", "path": "x"}, name="r")
    with pytest.raises(RunError, match="collection names are 3-512 characters"):
        open_store(StoreSpec(path=str(tmp_path), collection="x")).upsert(
            *chunks_and_vectors(), model="hand", fingerprint=HAND
        )
