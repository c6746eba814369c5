"""Embedding micro-batching: concurrent embedding calls, from different runs or
HTTP requests, coalesce into one backend batch.

The first caller of a window becomes its *leader*: it waits until the batch is
full or ``max_wait_ms`` has passed, then runs the batch (shielded from its own
cancellation, since the other callers depend on it) and hands every caller its
own vectors. There is no background task to start or stop. If a batch fails,
its requests are retried one by one, so one caller's bad input fails only that
caller.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio

from smmf_flow.errors import BackendError

EmbedFn = Callable[[list[str]], Awaitable[list[list[float]]]]


class _Pending:
    __slots__ = ("texts", "done", "result", "error")

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.done = anyio.Event()
        self.result: list[list[float]] | None = None
        self.error: BaseException | None = None


class EmbeddingBatcher:
    """Coalesces ``embed`` calls into batches of at most ``max_batch`` texts."""

    def __init__(self, embed: EmbedFn, *, max_batch: int = 32, max_wait_ms: float = 2.0,
                 model: str = "") -> None:
        self._embed = embed
        self.max_batch = max(1, max_batch)
        self.max_wait = max(0.0, max_wait_ms) / 1000.0
        self.model = model
        self._queue: deque[_Pending] = deque()
        self._queued = 0
        self._full: anyio.Event | None = None
        self._leading = False
        #: batches sent to the backend and texts in them, for metrics and tests
        self.batches = 0
        self.texts = 0

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """The vectors of ``texts``, in order, batched with concurrent callers."""
        items = list(texts)
        bad = [i for i, t in enumerate(items) if not isinstance(t, str)]
        if bad:
            raise BackendError(f"embedding input {bad[0]} is {type(items[bad[0]]).__name__}, "
                               "not a string", model=self.model)
        if not items:
            return []
        pending = _Pending(items)
        self._queue.append(pending)
        self._queued += len(items)
        if self._queued >= self.max_batch and self._full is not None:
            self._full.set()
        if not self._leading:
            self._leading = True
            try:
                await self._lead()
            finally:
                self._leading = False
        await pending.done.wait()
        if pending.error is not None:
            raise pending.error
        return pending.result  # type: ignore[return-value]

    async def _lead(self) -> None:
        """Run batches until the queue is empty."""
        while self._queue:
            if self._queued < self.max_batch and self.max_wait > 0:
                self._full = anyio.Event()
                with anyio.move_on_after(self.max_wait, shield=True):
                    await self._full.wait()
                self._full = None
            batch = self._take()
            with anyio.CancelScope(shield=True):
                await self._run(batch)

    def _take(self) -> list[_Pending]:
        batch: list[_Pending] = []
        size = 0
        while self._queue and (not batch or size + len(self._queue[0].texts) <= self.max_batch):
            item = self._queue.popleft()
            batch.append(item)
            size += len(item.texts)
        self._queued -= size
        return batch

    async def _run(self, batch: list[_Pending]) -> None:
        texts = [t for item in batch for t in item.texts]
        try:
            vectors = await self._embed(texts)
        except Exception as error:
            if len(batch) == 1:
                _finish(batch[0], error=error)
                return
            for item in batch:  # find the culprit: each caller gets its own answer
                await self._run([item])
            return
        self.batches += 1
        self.texts += len(texts)
        start = 0
        for item in batch:
            end = start + len(item.texts)
            _finish(item, result=vectors[start:end])
            start = end


def _finish(item: _Pending, *, result: Any = None, error: BaseException | None = None) -> None:
    item.result, item.error = result, error
    item.done.set()
