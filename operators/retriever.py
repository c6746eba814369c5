"""``RetrieverOperator``: a question in, the most similar stored chunks out.

The question is embedded with the same model (by name) that indexed the store,
through its micro-batcher, so concurrent runs share embedding batches; the
store answers with the ``k`` nearest chunks, their cosine similarity and
metadata, optionally restricted by a metadata filter. The output keeps the
question beside the hits, so the next node (the answer operator) gets both
over one edge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from smmf_flow.dag.ports import Signature
from smmf_flow.errors import FlowError
from smmf_flow.operators.inputs import text
from smmf_flow.operators.rag_node import StoreOperator, embedding_fingerprint
from smmf_flow.operators.vectorstore import Hit

#: keys under which a mapping input may carry the question
QUESTION_KEYS = ("question", "query", "input")


@dataclass(frozen=True, slots=True)
class Retrieval:
    """The question and its hits, best first."""

    question: str
    hits: list[Hit] = field(default_factory=list)

    @property
    def ids(self) -> list[str]:
        return [h.id for h in self.hits]


class RetrieverOperator(StoreOperator):
    """Top-``k`` chunks of ``store`` for the input question.

    Input: the question as a string, or a mapping with ``question`` (or
    ``query``/``input``) and optionally ``where``, a metadata filter for this
    run, combined with the node's own ``where``. Hits scoring below
    ``min_score`` (cosine similarity) are dropped.
    """

    kind = "retriever"

    def __init__(self, store: Any, *, model: str | None = None, k: int = 4,
                 where: dict[str, Any] | None = None, min_score: float | None = None,
                 **options: Any) -> None:
        owner = f"retriever '{options.get('name') or ''}'"
        if not isinstance(k, int) or k < 1:
            raise FlowError(f"{owner}: k must be a positive whole number, got {k!r}")
        if where is not None and not isinstance(where, Mapping):
            raise FlowError(f"{owner}: where must be a mapping such as "
                            f"{{source: lighthouse.md}}, got {type(where).__name__}")
        self.k, self.where, self.min_score = k, dict(where) if where else None, min_score
        super().__init__(store, model=model, **options)

    def ports(self) -> Signature:
        return Signature((str | Mapping[str, Any],), False, Retrieval)

    def params(self) -> dict[str, Any]:
        out = {**super().params(), "k": self.k}
        if self.where:
            out["where"] = self.where
        if self.min_score is not None:
            out["min_score"] = self.min_score
        return out

    async def execute(self, ctx: Any, *inputs: Any) -> Retrieval:
        question, where = self._question(inputs[0])
        worker = self.worker(ctx)
        vector = (await worker.embed([question]))[0]
        store = await self.store()
        hits = await self.in_thread(store.query, vector, self.k, where=where, model=worker.name,
                                    fingerprint=await embedding_fingerprint(worker))
        if self.min_score is not None:
            hits = [h for h in hits if h.score >= self.min_score]
        self.noter(ctx)("retrieved", model=worker.name, k=self.k, where=where,
                        hits=[{"id": h.id, "source": h.source, "score": round(h.score, 4)}
                              for h in hits])
        return Retrieval(question, hits)

    def _question(self, value: Any) -> tuple[str, dict[str, Any] | None]:
        where = self.where
        extra = value.get("where") if isinstance(value, Mapping) else None
        if extra:
            where = {"$and": [where, dict(extra)]} if where else dict(extra)
        return text(value, QUESTION_KEYS, f"retriever '{self.name}'", "question"), where


__all__ = ["QUESTION_KEYS", "Retrieval", "RetrieverOperator"]
