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

from pydantic import Field

from smmf_flow.dag import RunContext
from smmf_flow.operators.input_keys import text
from smmf_flow.operators.store_operator import StoreOperator, StoreParams
from smmf_flow.operators.vectorstore import Hit


@dataclass(frozen=True, slots=True)
class Retrieval:
    """The question and its hits, best first."""

    question: str
    hits: list[Hit] = field(default_factory=list)

    @property
    def ids(self) -> list[str]:
        return [h.id for h in self.hits]


class RetrieverParams(StoreParams):
    """``retriever``: the store and model, how many hits (``k``), a metadata
    filter (``where``) and the lowest cosine similarity kept (``min_score``)."""

    k: int = Field(default=4, ge=1)
    where: dict[str, Any] | None = None
    min_score: float | None = None


class RetrieverOperator(StoreOperator):
    """Top-``k`` chunks of ``store`` for the input question.

    Input: the question as a string; with ``input_key`` a mapping holding it
    under that key, and optionally ``where``, a metadata filter for this run,
    combined with the node's own ``where``. Hits scoring below ``min_score``
    (cosine similarity) are dropped.
    """

    kind = "retriever"
    params_model = RetrieverParams
    config: RetrieverParams

    def __init__(self, store: Any, **params: Any) -> None:
        super().__init__(store, **params)
        self.k, self.where, self.min_score = self.config.k, self.config.where, self.config.min_score

    async def execute(self, ctx: RunContext, question: str) -> Retrieval:
        asked, where = self._question(question)
        worker = self.worker(ctx)
        vector = (await worker.embed([asked]))[0]
        store = await self.store()
        hits = await self.in_thread(
            store.query,
            vector,
            self.k,
            where=where,
            model=worker.name,
            fingerprint=await worker.fingerprint(),
        )
        if self.min_score is not None:
            hits = [h for h in hits if h.score >= self.min_score]
        self.noter(ctx)(
            "retrieved",
            model=worker.name,
            k=self.k,
            where=where,
            hits=[{"id": h.id, "source": h.source, "score": round(h.score, 4)} for h in hits],
        )
        return Retrieval(asked, hits)

    def _question(self, value: Any) -> tuple[str, dict[str, Any] | None]:
        where = self.where
        extra = value.get("where") if self.input_key and isinstance(value, Mapping) else None
        if extra:
            where = {"$and": [where, dict(extra)]} if where else dict(extra)
        return text(value, self.input_key, "question"), where


__all__ = ["Retrieval", "RetrieverOperator", "RetrieverParams"]
