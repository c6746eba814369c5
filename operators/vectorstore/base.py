"""The vector-store interface: what RAG operators need from a store, and no more.

A store keeps chunks with their vectors and metadata under stable ids and
answers nearest-neighbour queries. It never embeds anything itself: smmf-flow
computes every vector through the model registry, so the store cannot
disagree with the flow about which model made them. To guard against that
mix-up across runs, a store remembers the embedding model of its collection,
by name, dimension and *fingerprint* (a digest of the weights, from
``Backend.fingerprint``: new weights under the same name are another model),
and refuses vectors from another.

Chunks are pruned by ``source_key`` (a digest of the document's canonical
path, ``documents.py``), never by the short display ``source``, which two
files may share. A store in a folder gives a ``WriteLock`` (``lock.py``) that an
indexing run holds for its write phase, so writers in several processes take
turns.

Methods are synchronous (embedded stores do blocking disk I/O); operators call
them off the event loop.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from smmf_flow.operators.documents import Chunk, Scalar
from smmf_flow.operators.vectorstore.lock import WriteLock


@dataclass(frozen=True, slots=True)
class Hit:
    """One retrieved chunk: ``score`` is the cosine similarity to the query (higher
    is closer; 1.0 is identical)."""

    id: str
    text: str
    score: float
    metadata: dict[str, Scalar] = field(default_factory=dict)

    @property
    def source(self) -> str:
        return str(self.metadata.get("source", ""))


#: a metadata filter: ``{"source": "a.md"}``, or Chroma-style operators such as
#: ``{"source": {"$in": ["a.md", "b.md"]}}`` and ``{"$and": [...]}``
Where = Mapping[str, Any]


class VectorStore(ABC):
    """Chunks with vectors, upserted by id, queried by vector."""

    #: the name under which ``open_store`` knows this kind of store
    type: str = ""

    def __init__(self, path: str, collection: str) -> None:  # noqa: B027 - the contract
        """``open_store`` makes every store as ``cls(path, collection)``: where it
        keeps its data, and which collection there."""

    @abstractmethod
    def upsert(
        self,
        chunks: Sequence[Chunk],
        vectors: Sequence[Sequence[float]],
        *,
        model: str,
        fingerprint: str,
    ) -> None:
        """Insert or replace ``chunks`` (by id) with their ``vectors``, made by ``model``
        whose weights have ``fingerprint``."""

    @abstractmethod
    def existing(self, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` the store already holds."""

    @abstractmethod
    def delete_stale(self, source_key: str, keep: Sequence[str]) -> int:
        """Remove chunks of the document ``source_key`` (``Chunk.source_key``) whose ids
        are not in ``keep`` (a document that changed leaves no stale passages behind);
        return how many went."""

    @abstractmethod
    def query(
        self,
        vector: Sequence[float],
        k: int,
        *,
        where: Where | None = None,
        model: str,
        fingerprint: str,
    ) -> list[Hit]:
        """The ``k`` chunks nearest to ``vector`` (made by ``model`` with weights
        ``fingerprint``), best first."""

    @abstractmethod
    def count(self) -> int:
        """How many chunks the store holds."""

    @abstractmethod
    def spec(self) -> dict[str, Any]:
        """Parameters that reopen this store (for flow-file export)."""

    def write_lock(self) -> WriteLock | None:
        """The lock writers hold across processes (None: the store needs none)."""
        return None

    def close(self) -> None:  # noqa: B027 - optional: a store with nothing to release
        """Release the store's resources; safe to call twice."""


__all__ = ["Hit", "VectorStore", "Where"]
