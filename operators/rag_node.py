"""``StoreOperator``: what the indexer and the retriever share.

Both embed text with one embedding model (by name, through the registry and
its micro-batcher) and talk to one vector store. The store is described by data
(``store: {path: ..., collection: ...}``) so a flow file can name it, is checked
when the node is made, and is opened on first use; its blocking calls run off
the event loop so a long upsert does not stall other nodes of the run.

Both tell the store which weights made their vectors: ``embedding_fingerprint``
asks the embedding model's backend (a digest of its weight files, computed once
and then cached), and the store refuses vectors from other weights.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import anyio

from smmf_flow.operators.base import ModelOperator
from smmf_flow.operators.vectorstore import StoreSpec, VectorStore, check_spec, open_store
from smmf_flow.scheduler.resolve import Purpose

T = TypeVar("T")


async def embedding_fingerprint(worker: Any) -> str:
    """The fingerprint of the weights behind an embedding worker (its pool's
    backends share one config, so the first one answers for all)."""
    backend = worker.pool.instances[0].backend
    fingerprint: str = await anyio.to_thread.run_sync(backend.fingerprint)
    return fingerprint


class StoreOperator(ModelOperator):
    """An operator with an embedding ``model`` and a vector ``store``."""

    def __init__(self, store: StoreSpec | VectorStore | dict[str, Any] | str, *,
                 model: str | None = None, **options: Any) -> None:
        owner = f"{self.kind} '{options.get('name') or ''}'"
        if isinstance(store, VectorStore):
            self._store: VectorStore | None = store
            self.store_spec = check_spec(store.spec(), owner)
        else:
            self._store = None
            self.store_spec = check_spec(store, owner)
        self.model = model
        self._lock = threading.Lock()
        super().__init__(**options)

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {"store": self.store_spec.model_dump()}
        if self.model:
            out["model"] = self.model
        return out

    def model_refs(self) -> list[tuple[str | None, Purpose]]:
        return [(self.model, "embedding")]

    def build_worker(self, scheduler: Any) -> Any:
        return scheduler.embedding_worker(self.model)

    async def store(self) -> VectorStore:
        """The store, opened on first use (once, even under concurrent runs)."""
        if self._store is None:
            await anyio.to_thread.run_sync(self._open)
        assert self._store is not None
        return self._store

    def _open(self) -> None:
        with self._lock:
            if self._store is None:
                self._store = open_store(self.store_spec)

    async def in_thread(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking store call off the event loop."""
        return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))


__all__ = ["StoreOperator", "embedding_fingerprint"]
