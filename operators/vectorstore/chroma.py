"""``ChromaStore``: Chroma (DB-GPT's default store) embedded, persisted on disk.

The collection is a ``chromadb.PersistentClient`` collection in a folder: it
survives the process, and reopening the folder finds every chunk again.

Chroma can embed documents itself with a default model that it downloads on
first use. smmf-flow never lets it: every collection is opened with
``ExternalEmbeddings``, an embedding function that refuses to run, and every
call passes vectors explicitly. A code path that forgot its vectors fails at
once with a message, instead of reaching for the network.

The collection's metadata records the embedding model, its fingerprint and the
dimension of its vectors (``smmf:model``, ``smmf:fingerprint``,
``smmf:dimension``); vectors from another model, or from other weights under
the same name, are refused with a message saying how to re-index. A collection
made before fingerprints were recorded is refused too, with the same advice:
its weights cannot be checked, and its chunk ids (from short source names) are
not the ones indexing makes now, so re-indexing into it would keep every chunk
twice.

Writers take the store's ``WriteLock`` (a lock file in the folder) for an
indexing run's write phase, and opening the folder takes a lock of its own
(Chroma's first open creates its database, which two processes must not do at
once).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from smmf_flow.errors import InputError, MissingDependency, RunError
from smmf_flow.operators.documents import Chunk
from smmf_flow.operators.vectorstore.base import Hit, VectorStore, Where
from smmf_flow.operators.vectorstore.lock import OPEN_LOCK_NAME, WriteLock

_MODEL_KEY, _DIM_KEY, _PRINT_KEY = "smmf:model", "smmf:dimension", "smmf:fingerprint"


def _chroma() -> Any:
    try:
        import chromadb
    except ImportError:
        raise MissingDependency(
            "the Chroma vector store needs chromadb: pip install 'smmf-flow[rag]'"
        ) from None
    return chromadb


def external_embeddings() -> Any:
    """An embedding function for Chroma that refuses to embed (see the module doc)."""
    from chromadb.api.types import Documents, EmbeddingFunction

    class ExternalEmbeddings(EmbeddingFunction[Documents]):
        """smmf-flow supplies every vector; Chroma must not compute any."""

        def __init__(self) -> None:
            pass

        def __call__(self, input: Any) -> Any:
            raise RunError(
                "Chroma was asked to embed text itself; smmf-flow passes every "
                "vector explicitly (embed with an EmbeddingOperator and pass "
                "`embeddings=` / `query_embeddings=`)"
            )

        @staticmethod
        def name() -> str:
            return "smmf-flow-external"

        def get_config(self) -> dict[str, Any]:
            return {}

        @staticmethod
        def build_from_config(config: dict[str, Any]) -> ExternalEmbeddings:
            return ExternalEmbeddings()

    return ExternalEmbeddings()


class ChromaStore(VectorStore):
    """A Chroma collection named ``collection`` in the folder ``path``; a writer
    waits at most ``lock_timeout`` seconds for another to finish."""

    type = "chroma"

    def __init__(
        self, path: str | Path, collection: str = "smmf", *, lock_timeout: float = 600.0
    ) -> None:
        self.path = Path(path)
        self.collection_name = collection
        self.lock_timeout = lock_timeout
        chromadb = _chroma()
        from chromadb.config import Settings

        if self.path.exists() and not self.path.is_dir():
            raise RunError(
                f"chroma store: '{self.path}' exists and is not a folder; "
                "give the store a folder path"
            )
        try:
            # two processes creating one folder's database at once collide ("table
            # collections already exists"): opening takes a lock of its own
            opening = WriteLock(
                self.path,
                timeout=lock_timeout,
                name=OPEN_LOCK_NAME,
                what=f"chroma store '{self.path}'",
                busy="being opened by another process",
            )
            with opening.held():
                self._client = chromadb.PersistentClient(
                    path=str(self.path), settings=Settings(anonymized_telemetry=False)
                )
        except RunError:
            raise
        except Exception as exc:
            raise RunError(
                f"chroma store: cannot open '{self.path}': {type(exc).__name__}: {exc}"
            ) from exc
        self._collection: Any = None

    # --- the collection ------------------------------------------------------------------

    def _open(self, *, create_for: tuple[str, int, str] | None = None) -> Any:
        """The collection; created (recording model, dimension and fingerprint) when
        ``create_for`` is given, else an error telling the user to index first."""
        if self._collection is not None:
            return self._collection
        from chromadb.errors import InvalidArgumentError, NotFoundError

        where = f"chroma store '{self.path}' collection '{self.collection_name}'"
        try:
            if create_for is None:
                self._collection = self._client.get_collection(
                    self.collection_name, embedding_function=external_embeddings()
                )
            else:
                model, dim, fingerprint = create_for
                self._collection = self._client.get_or_create_collection(
                    self.collection_name,
                    embedding_function=external_embeddings(),
                    metadata={
                        "hnsw:space": "cosine",
                        _MODEL_KEY: model,
                        _DIM_KEY: dim,
                        _PRINT_KEY: fingerprint,
                    },
                )
        except NotFoundError:
            raise RunError(
                f"{where} does not exist yet; run the indexer on your documents "
                "first (flows/rag-index.yaml or examples/rag_index.py)"
            ) from None
        except (InvalidArgumentError, ValueError) as exc:
            raise RunError(
                f"{where}: {exc}; collection names are 3-512 characters of "
                "letters, digits, '.', '_' or '-'"
            ) from None
        return self._collection

    def _check_model(self, collection: Any, model: str, dim: int, fingerprint: str) -> None:
        meta = collection.metadata or {}
        have_model, have_dim = meta.get(_MODEL_KEY), meta.get(_DIM_KEY)
        have_print = meta.get(_PRINT_KEY)
        where = f"chroma store '{self.path}' collection '{self.collection_name}'"
        reindex = (
            f"re-index: delete the folder '{self.path}' (or index into another "
            "collection) and run the indexer again"
        )
        if (have_model is not None and have_model != model) or (
            have_dim is not None and have_dim != dim
        ):
            raise RunError(
                f"{where} holds {have_dim}-dimensional vectors from model '{have_model}', "
                f"but this node uses '{model}' ({dim} dimensions); use the same embedding "
                "model, or index into another collection"
            )
        if have_model is not None and have_print is None:
            raise RunError(
                f"{where} was indexed by an earlier smmf-flow that did not record which "
                f"weights model '{have_model}' had, so its vectors cannot be checked; "
                f"{reindex}"
            )
        if have_print is not None and have_print != fingerprint:
            raise RunError(
                f"{where} holds vectors from model '{have_model}' with weights "
                f"{have_print}, but '{model}' now has weights {fingerprint}: the model "
                f"changed under the same name, and old and new vectors do not compare; "
                f"{reindex}"
            )

    # --- VectorStore ------------------------------------------------------------------------

    def upsert(
        self,
        chunks: Sequence[Chunk],
        vectors: Sequence[Sequence[float]],
        *,
        model: str,
        fingerprint: str,
    ) -> None:
        if len(chunks) != len(vectors):
            raise RunError(f"chroma store: {len(chunks)} chunks but {len(vectors)} vectors")
        if not chunks:
            return
        collection = self._open(create_for=(model, len(vectors[0]), fingerprint))
        self._check_model(collection, model, len(vectors[0]), fingerprint)
        step = max(1, self._client.get_max_batch_size())
        for at in range(0, len(chunks), step):
            part = chunks[at : at + step]
            collection.upsert(
                ids=[c.id for c in part],
                embeddings=[list(map(float, v)) for v in vectors[at : at + step]],
                documents=[c.text for c in part],
                metadatas=[_metadata(c) for c in part],
            )

    def existing(self, ids: Sequence[str]) -> set[str]:
        if not ids or not self._exists():
            return set()
        got = self._open().get(ids=list(ids), include=[])
        return set(got["ids"])

    def delete_stale(self, source_key: str, keep: Sequence[str]) -> int:
        if not self._exists():
            return 0
        collection = self._open()
        held = collection.get(where={"source_key": source_key}, include=[])["ids"]
        stale = sorted(set(held) - set(keep))
        if stale:
            collection.delete(ids=stale)
        return len(stale)

    def query(
        self,
        vector: Sequence[float],
        k: int,
        *,
        where: Where | None = None,
        model: str,
        fingerprint: str,
    ) -> list[Hit]:
        collection = self._open()
        self._check_model(collection, model, len(vector), fingerprint)
        total = collection.count()
        if total == 0:
            return []
        try:
            found = collection.query(
                query_embeddings=[list(map(float, vector))],
                n_results=min(k, total),
                where=dict(where) if where else None,
                include=["documents", "metadatas", "distances"],
            )
        except ValueError as exc:
            raise InputError(
                f"chroma store: bad metadata filter {dict(where or {})!r}: {exc}"
            ) from None
        return [
            Hit(id_, text or "", 1.0 - float(dist), dict(meta or {}))
            for id_, text, meta, dist in zip(
                found["ids"][0],
                found["documents"][0],
                found["metadatas"][0],
                found["distances"][0],
                strict=True,
            )
        ]

    def count(self) -> int:
        return self._open().count() if self._exists() else 0

    def spec(self) -> dict[str, Any]:
        return {"type": self.type, "path": str(self.path), "collection": self.collection_name}

    def write_lock(self) -> WriteLock:
        return WriteLock(self.path, timeout=self.lock_timeout, what=f"chroma store '{self.path}'")

    def close(self) -> None:
        self._collection = None

    def _exists(self) -> bool:
        if self._collection is not None:
            return True
        return self.collection_name in {c.name for c in self._client.list_collections()}


def _metadata(chunk: Chunk) -> dict[str, Any]:
    meta = chunk.store_metadata()
    for key, value in meta.items():
        if not isinstance(value, (str, int, float, bool)):
            raise InputError(
                f"chunk of '{chunk.source}': metadata '{key}' is a "
                f"{type(value).__name__}; a vector store keeps only strings, "
                "numbers and booleans"
            )
    return meta


__all__ = ["ChromaStore", "external_embeddings"]
