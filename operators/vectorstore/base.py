"""The vector-store interface: what RAG operators need from a store, and no more.

A store keeps chunks with their vectors and metadata under stable ids and
answers nearest-neighbour queries. It never embeds anything itself: smmf-flow
computes every vector through the model registry, so the store cannot
disagree with the flow about which model made them. To guard against that
mix-up across runs, a store remembers the embedding model and dimension of
its collection and refuses vectors from another.

Methods are synchronous (embedded stores do blocking disk I/O); operators call
them off the event loop.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from smmf_flow.operators.documents import Chunk, Scalar


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

    @abstractmethod
    def upsert(self, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]], *,
               model: str) -> None:
        """Insert or replace ``chunks`` (by id) with their ``vectors``, made by ``model``."""

    @abstractmethod
    def existing(self, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` the store already holds."""

    @abstractmethod
    def delete_stale(self, source: str, keep: Sequence[str]) -> int:
        """Remove chunks of ``source`` whose ids are not in ``keep`` (a document that
        changed leaves no stale passages behind); return how many went."""

    @abstractmethod
    def query(self, vector: Sequence[float], k: int, *, where: Where | None = None,
              model: str) -> list[Hit]:
        """The ``k`` chunks nearest to ``vector`` (made by ``model``), best first."""

    @abstractmethod
    def count(self) -> int:
        """How many chunks the store holds."""

    @abstractmethod
    def spec(self) -> dict[str, Any]:
        """Parameters that reopen this store (for flow-file export)."""

    def close(self) -> None:
        """Release the store's resources; safe to call twice."""


__all__ = ["Hit", "VectorStore", "Where"]
