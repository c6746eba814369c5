"""``StoreOperator``: what the indexer and the retriever share.

Both embed text with one embedding model (by name, through the registry and
its micro-batcher) and talk to one vector store. The store is described by data
(``store: {path: ..., collection: ...}``) so a flow file can name it, is checked
when the node is made, and is opened on first use; its blocking calls run off
the event loop so a long upsert does not stall other nodes of the run.

Both tell the store which weights made their vectors: the embedding worker's
``fingerprint()`` (a digest of the model's weight files, computed once and then
cached), and the store refuses vectors from other weights.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import anyio

from smmf_flow.operators.base import EmbeddingModelOperator
from smmf_flow.operators.input_keys import KEYED, reads
from smmf_flow.operators.params import OperatorParams, configure
from smmf_flow.operators.vectorstore import StoreSpec, VectorStore, open_store

T = TypeVar("T")


class StoreParams(OperatorParams):
    """What the indexer and the retriever share: the vector ``store``, the
    embedding ``model`` (none: the registry's ``default_embedding``), and the
    ``input_key`` under which a mapping input holds what they read."""

    store: StoreSpec
    model: str | None = None
    input_key: str | None = None


class StoreOperator(EmbeddingModelOperator):
    """An operator with an embedding ``model`` and a vector ``store`` (a spec, or
    a ``VectorStore`` object from Python)."""

    params_model: ClassVar[type[StoreParams]] = StoreParams
    config: StoreParams

    def __init__(
        self, store: StoreSpec | VectorStore | dict[str, Any] | str, **params: Any
    ) -> None:
        self._store: VectorStore | None = store if isinstance(store, VectorStore) else None
        spec = store.spec() if isinstance(store, VectorStore) else store
        self.config, options = configure(self.params_model, self.kind, {"store": spec, **params})
        self.store_spec, self.model = self.config.store, self.config.model
        self.input_key = self.config.input_key
        if self.input_key:
            options.setdefault("input_type", KEYED)
        self._lock = threading.Lock()
        super().__init__(**options)

    def reads_inputs(self) -> dict[str, str]:
        """The flow input a first node reads (checked before a flow runs)."""
        return reads(self.input_key)

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


__all__ = ["StoreOperator", "StoreParams"]
