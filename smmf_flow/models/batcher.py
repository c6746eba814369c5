"""Embedding micro-batching: concurrent embedding calls, from different runs or
HTTP requests, coalesce into one backend batch.

Callers queue up in arrival order. The caller at the head of the queue is the
*collector*: it waits until a batch is full or ``max_wait_ms`` has passed (and,
when ``max_concurrent`` batches are already running, until one of them ends, so
the batch keeps filling meanwhile), takes up to ``max_batch`` texts from the head
of the queue — its own among them —, hands the collector's role to the caller
now at the head, and sends the batch. Every caller gets its own vectors as soon
as its batch is back; nobody waits for batches that are not theirs, and there is
no background task to start or stop.

Sending a batch is shielded from its collector's cancellation, since the other
callers in it depend on it; a caller cancelled before its batch is taken just
leaves the queue (passing the collector's role on if it held it). If a batch
fails, its requests are retried one by one, so one caller's bad input fails only
that caller.

With ``count`` (a text's token count), a batch also counts the tokens of the
callers that ask (inside ``counting_tokens()``), in one worker-thread call beside
the backend's: a server owes every request its usage, and one thread hop per batch
costs far less than one per request. The request is a context variable so that it
passes through whatever wraps the batcher (a traced worker) untouched.

The queue is bounded like a pool's (``max_queue``, the model's own setting): it
counts *callers*, whatever the length of their lists, since a caller is what
waits. At most ``max_queue`` callers wait behind the one forming the next batch;
one more gets ``PoolBusy`` with a ``retry_after`` estimated from the batches
ahead of it and the time a batch has been taking.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from time import perf_counter

import anyio
import anyio.to_thread

from smmf_flow.errors import BackendError, PoolBusy
from smmf_flow.models.instance import EWMA_ALPHA

EmbedFn = Callable[[list[str]], Awaitable[list[list[float]]]]
CountFn = Callable[[str], int]

#: the count that ``counting_tokens()`` opened in this context, if any
_TOKENS: ContextVar[list[int] | None] = ContextVar("smmf_flow_embedding_tokens", default=None)


@contextmanager
def counting_tokens() -> Iterator[list[int]]:
    """Count the tokens of the embedding calls made inside: ``with counting_tokens()
    as tokens: ... tokens[0]`` (0 where a batcher has no ``count``)."""
    box = [0]
    reset = _TOKENS.set(box)
    try:
        yield box
    finally:
        _TOKENS.reset(reset)


class _Pending:
    """One caller's texts, and what came back for them."""

    __slots__ = ("counted", "done", "error", "result", "texts", "tokens", "wake")

    def __init__(self, texts: list[str], counted: bool) -> None:
        self.texts = texts
        self.counted = counted  # whether the caller wants its tokens counted
        self.wake = anyio.Event()  # set when done, or when made the collector
        self.done = False
        self.result: list[list[float]] | None = None
        self.tokens = 0  # counted with the batch when the batcher has a count
        self.error: BaseException | None = None


class EmbeddingBatcher:
    """Coalesces ``embed`` calls into batches of at most ``max_batch`` texts, with
    at most ``max_concurrent`` batches at the backend at once."""

    def __init__(
        self,
        embed: EmbedFn,
        *,
        max_batch: int = 32,
        max_wait_ms: float = 2.0,
        max_concurrent: int = 1,
        max_queue: int | None = None,
        model: str = "",
        count: CountFn | None = None,
    ) -> None:
        self._embed = embed
        self._count = count
        self.max_batch = max(1, max_batch)
        self.max_wait = max(0.0, max_wait_ms) / 1000.0
        self.max_concurrent = max(1, max_concurrent)
        self.max_queue = max_queue  # None: unbounded
        self.model = model
        self._batch_s: float | None = None  # running average of a batch's duration
        self._queue: deque[_Pending] = deque()
        self._queued = 0  # texts in the queue
        self._collector: _Pending | None = None  # who forms the next batch
        self._full: anyio.Event | None = None  # set when the queue holds a full batch
        self._slots: anyio.Semaphore | None = None  # made on first use, in an event loop
        #: batches sent to the backend and texts in them, for metrics and tests
        self.batches = 0
        self.texts = 0

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """The vectors of ``texts``, in order, batched with concurrent callers (and
        their tokens added to the count of an enclosing ``counting_tokens()``)."""
        box = _TOKENS.get()
        vectors, tokens = await self._call(texts, counted=box is not None)
        if box is not None:
            box[0] += tokens
        return vectors

    async def _call(self, texts: Sequence[str], counted: bool) -> tuple[list[list[float]], int]:
        items = list(texts)
        bad = [i for i, t in enumerate(items) if not isinstance(t, str)]
        if bad:
            raise BackendError(
                f"embedding input {bad[0]} is {type(items[bad[0]]).__name__}, not a string",
                model=self.model,
            )
        if not items:
            return [], 0
        if self.max_queue is not None and len(self._queue) > self.max_queue:
            raise self._busy()
        pending = _Pending(items, counted)
        self._queue.append(pending)
        self._queued += len(items)
        if self._queued >= self.max_batch and self._full is not None:
            self._full.set()
        if self._collector is None:
            self._collector = pending
        try:
            if self._collector is not pending:
                await pending.wake.wait()
            if not pending.done:  # woken to collect: the batch it sends holds its texts
                await self._collect()
        except BaseException:
            self._leave(pending)
            raise
        if pending.error is not None:
            raise pending.error
        assert pending.result is not None  # a finished call has its vectors or its error
        return pending.result, pending.tokens

    async def _collect(self) -> None:
        """Form the next batch from the head of the queue and send it."""
        if self._queued < self.max_batch and self.max_wait > 0:
            self._full = anyio.Event()
            try:
                with anyio.move_on_after(self.max_wait):
                    await self._full.wait()
            finally:
                self._full = None
        if self._slots is None:
            self._slots = anyio.Semaphore(self.max_concurrent)
        async with self._slots:  # while every slot is busy, the batch keeps filling
            batch = self._take()
            self._pass_role()
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

    def _pass_role(self) -> None:
        """Make the caller now at the head of the queue the collector (or nobody)."""
        self._collector = self._queue[0] if self._queue else None
        if self._collector is not None:
            self._collector.wake.set()

    def _leave(self, pending: _Pending) -> None:
        """A caller gave up (cancelled) before its batch was taken."""
        if pending in self._queue:
            self._queue.remove(pending)
            self._queued -= len(pending.texts)
        if self._collector is pending:
            self._pass_role()

    def _busy(self) -> PoolBusy:
        """The error for a caller that finds the queue full."""
        ahead = math.ceil((self._queued + 1) / self.max_batch)
        seconds = self._batch_s if self._batch_s is not None else 1.0
        retry_after = round(max(0.05, seconds * ahead / self.max_concurrent), 3)
        return PoolBusy(
            f"embedding model '{self.model}' is busy: {len(self._queue)} callers are waiting "
            f"for a batch (max_queue = {self.max_queue}); retry later or raise max_queue",
            retry_after=retry_after,
            model=self.model,
        )

    async def _run(self, batch: list[_Pending]) -> None:
        texts = [t for item in batch for t in item.texts]
        started = perf_counter()
        try:
            if self._count is None or not any(item.counted for item in batch):
                vectors = await self._embed(texts)
            else:
                vectors = await self._embed_and_count(batch, texts)
        except Exception as error:
            if len(batch) == 1:
                _finish(batch[0], error=error)
                return
            for item in batch:  # find the culprit: each caller gets its own answer
                await self._run([item])
            return
        self.batches += 1
        self.texts += len(texts)
        seconds, average = perf_counter() - started, self._batch_s
        self._batch_s = seconds if average is None else average + EWMA_ALPHA * (seconds - average)
        start = 0
        for item in batch:
            end = start + len(item.texts)
            _finish(item, result=vectors[start:end])
            start = end

    async def _embed_and_count(self, batch: list[_Pending], texts: list[str]) -> list[list[float]]:
        """Embed ``texts`` while a worker thread counts each caller's tokens; an error
        of either is raised as it is (a task group would wrap it in a group)."""
        count = self._count
        assert count is not None
        errors: list[BaseException] = []
        vectors: list[list[float]] = []

        def count_batch() -> None:
            for item in batch:
                if item.counted:
                    item.tokens = sum(count(t) for t in item.texts)

        async def embed() -> None:
            nonlocal vectors
            try:
                vectors = await self._embed(texts)
            except Exception as error:
                errors.insert(0, error)  # the backend's error comes first

        async with anyio.create_task_group() as tg:
            tg.start_soon(embed)
            try:
                await anyio.to_thread.run_sync(count_batch)
            except Exception as error:
                errors.append(error)
        if errors:
            raise errors[0]
        return vectors


def _finish(
    item: _Pending, *, result: list[list[float]] | None = None, error: BaseException | None = None
) -> None:
    item.result, item.error, item.done = result, error, True
    item.wake.set()
