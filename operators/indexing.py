"""``IndexerOperator``: documents → chunks → vectors → a persistent vector store.

One node does the whole indexing pipeline, because each step needs the one
before it and nothing else: load the files (or take ``Document``s, or chunks
an upstream splitter already cut), split them, embed the chunks through the
embedding model's micro-batcher, and upsert them by chunk id.

Indexing is idempotent. Chunk ids hash the document's canonical key (its
resolved path), offsets and text, so a chunk already in the store is neither
embedded again nor duplicated; and when a whole document is indexed, its chunks
that are no longer produced (the text changed) are deleted, keyed by the same
canonical key, so the store always holds exactly the current passages and a
file never prunes another that shares its short name.

Paths in the input are read as the run's ``FileAccess`` allows (``ctx.files``:
inside a root for an HTTP run; ``documents.py``). The write phase (upsert,
prune, count) holds the store's cross-process write lock, so a CLI run and a
server indexing into one store take turns. Embedding happens before, unlocked;
inside the lock the run checks again which of its chunks are still stored (a
writer that ran meanwhile may have pruned some) and embeds those too, so after
its write phase the store holds exactly this run's chunks of each document.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
from pydantic import Field

from smmf_flow.dag import FileAccess, RunContext
from smmf_flow.operators.documents import Chunk, Document, as_documents
from smmf_flow.operators.input_keys import pick
from smmf_flow.operators.splitter import ChunkingParams, split_chars, split_tokens
from smmf_flow.operators.store_operator import StoreOperator, StoreParams
from smmf_flow.operators.vectorstore import VectorStore

#: what the indexer reads: paths, documents, or chunks an upstream splitter cut
Documents = str | list[str] | Document | list[Document] | list[Chunk]


@dataclass(frozen=True, slots=True)
class IndexReport:
    """What one indexing run did."""

    documents: int
    chunks: int
    embedded: int  # new chunks embedded and stored
    unchanged: int  # chunks the store already held
    removed: int  # stale chunks of changed documents
    total: int  # chunks in the store afterwards
    seconds: float


class IndexerParams(StoreParams, ChunkingParams):
    """``indexer``: the store and model, chunking (as the splitter), the files a
    folder contributes (``pattern``) and the texts per embedding call
    (``embed_batch``)."""

    size: int = Field(default=600, ge=1)
    overlap: int = Field(default=80, ge=0)
    pattern: str | None = None
    embed_batch: int = Field(default=64, ge=1)


class IndexerOperator(StoreOperator):
    """Index documents into ``store`` with the embedding ``model``.

    Input: a file or folder path (or a list of them), ``Document``s, or a list of
    ``Chunk``s; with ``input_key`` a mapping holding one of those under that key.
    ``size``/``overlap``/``unit`` split as ``TextSplitterOperator`` does;
    ``pattern`` picks files in a folder (default ``*.md``, ``*.txt``, ``*.rst``);
    ``embed_batch`` is how many texts each embedding call carries (the calls run
    concurrently and the micro-batcher packs them into model batches).
    """

    kind = "indexer"
    params_model = IndexerParams
    config: IndexerParams
    #: embedding calls one indexing run keeps open at once
    IN_FLIGHT = 8

    def __init__(self, store: Any, **params: Any) -> None:
        super().__init__(store, **params)
        self.size, self.overlap, self.unit = self.config.size, self.config.overlap, self.config.unit
        self.pattern, self.embed_batch = self.config.pattern, self.config.embed_batch

    async def execute(self, ctx: RunContext, documents: Documents) -> IndexReport:
        began = time.perf_counter()
        note = self.noter(ctx)
        value = pick(documents, self.input_key)
        whole = not (isinstance(value, list) and value and isinstance(value[0], Chunk))
        if whole:
            docs = await self.in_thread(self._documents, value, ctx.files)
            chunks = await self._split(ctx, docs)
        else:
            docs, chunks = [], list(value)
        chunks = list({c.id: c for c in chunks}.values())
        store = await self.store()
        held = await self.in_thread(store.existing, [c.id for c in chunks])
        new = [c for c in chunks if c.id not in held]
        vectors = await self.embed(ctx, [c.text for c in new])
        worker = self.worker(ctx)
        model, fingerprint = worker.name, await worker.fingerprint()
        async with _writing(store):
            lost = await self._lost(store, [c for c in chunks if c.id in held])
            if lost:
                new, vectors = new + lost, vectors + await self.embed(ctx, [c.text for c in lost])
            await self.in_thread(store.upsert, new, vectors, model=model, fingerprint=fingerprint)
            removed = await self.in_thread(self._prune, store, chunks) if whole else 0
            total = await self.in_thread(store.count)
        report = IndexReport(
            len(docs),
            len(chunks),
            len(new),
            len(chunks) - len(new),
            removed,
            total,
            time.perf_counter() - began,
        )
        note(
            "indexed",
            model=model,
            documents=report.documents,
            chunks=report.chunks,
            embedded=report.embedded,
            unchanged=report.unchanged,
            removed=removed,
            total=total,
        )
        return report

    async def _lost(self, store: VectorStore, held: list[Chunk]) -> list[Chunk]:
        """Which of the ``held`` chunks (stored when the run looked) are gone now:
        another writer, between that look and this run's write phase, pruned them."""
        still = await self.in_thread(store.existing, [c.id for c in held])
        return [c for c in held if c.id not in still]

    def _documents(self, value: Any, files: FileAccess) -> list[Document]:
        return as_documents(value, self.pattern, files)

    async def _split(self, ctx: RunContext, docs: list[Document]) -> list[Chunk]:
        count: Callable[[str], int] | None = None
        if self.unit == "tokens":
            pool = self.worker(ctx).pool
            await pool.start()
            count = pool.count_tokens
        out: list[Chunk] = []
        for doc in docs:
            out += (
                split_tokens(doc, self.size, self.overlap, count)
                if count
                else split_chars(doc, self.size, self.overlap)
            )
        return out

    async def embed(self, ctx: RunContext, texts: list[str]) -> list[list[float]]:
        """Vectors of ``texts``: slices of ``embed_batch`` sent concurrently, so the
        micro-batcher fills each model batch; at most ``IN_FLIGHT`` at a time, and never
        more than the model's queue holds, so a large folder cannot fill it by itself."""
        worker = self.worker(ctx)
        slices = [texts[i : i + self.embed_batch] for i in range(0, len(texts), self.embed_batch)]
        results: list[list[list[float]]] = [[] for _ in slices]
        queue = getattr(getattr(worker, "batcher", None), "max_queue", None)
        limit = anyio.CapacityLimiter(
            self.IN_FLIGHT if queue is None else max(1, min(self.IN_FLIGHT, queue + 1))
        )

        async def one(i: int) -> None:
            async with limit:
                results[i] = await worker.embed(slices[i])

        async with anyio.create_task_group() as group:
            for i in range(len(slices)):
                group.start_soon(one, i)
        return [v for part in results for v in part]

    @staticmethod
    def _prune(store: VectorStore, chunks: list[Chunk]) -> int:
        by_document: dict[str, list[str]] = {}
        for chunk in chunks:
            by_document.setdefault(chunk.source_key, []).append(chunk.id)
        return sum(store.delete_stale(key, ids) for key, ids in by_document.items())


@asynccontextmanager
async def _writing(store: VectorStore) -> AsyncIterator[None]:
    """Hold ``store``'s cross-process write lock, if it has one."""
    lock = store.write_lock()
    if lock is None:
        yield
        return
    async with lock.held_async():
        yield


__all__ = ["IndexReport", "IndexerOperator", "IndexerParams"]
