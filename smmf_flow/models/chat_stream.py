"""A streamed chat answer that holds its pool slot exactly as long as it runs.

The slot is taken when the first chunk is asked for and given back when the
stream ends, fails, is closed (``aclose()`` or ``async with``), is cancelled, or
— as a last resort — is dropped without being closed. A class rather than an
async generator, so that giving the slot back never waits for the garbage
collector to finalize a generator some consumer abandoned.

With a ``chunk_timeout``, a backend that sends no chunk for that long (a server
that stalls without failing) fails the stream with ``BackendTimeout``, counted
like any other failure of the instance, so a model that keeps stalling trips its
breaker. The wait for a slot does not count against it. The limit costs a timer
per chunk (about 5 µs here), and nothing without one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from time import perf_counter
from types import TracebackType
from typing import Protocol

import anyio

from smmf_flow.errors import BackendTimeout
from smmf_flow.models.health import reraise
from smmf_flow.models.instance import Instance
from smmf_flow.models.types import ChatChunk, ChatRequest


class SlotPool(Protocol):
    """What a stream needs of its pool: a slot to hold, and to give back."""

    name: str

    async def acquire_slot(self, request: ChatRequest | None = None) -> Instance: ...

    def release_slot(
        self,
        instance: Instance,
        started: float,
        tokens: int,
        exc: BaseException | None,
        measured: bool = True,
    ) -> None: ...


class ChatStream:
    """``async for chunk in pool.stream_chat(request)``; chunks carry model and instance."""

    __slots__ = (
        "_chunk_timeout",
        "_chunks",
        "_done",
        "_instance",
        "_iterator",
        "_pool",
        "_request",
        "_started",
        "_tokens",
    )

    def __init__(
        self, pool: SlotPool, request: ChatRequest, chunk_timeout: float | None = None
    ) -> None:
        self._pool, self._request = pool, request
        self._chunk_timeout = chunk_timeout
        self._instance: Instance | None = None
        self._iterator: AsyncIterator[ChatChunk] | None = None
        self._done = False
        self._started = 0.0
        self._chunks = 0
        self._tokens = 0

    def __aiter__(self) -> ChatStream:
        return self

    async def __anext__(self) -> ChatChunk:
        iterator = self._iterator
        if iterator is None:
            if self._done:
                raise StopAsyncIteration
            iterator = await self._open()
        try:
            if self._chunk_timeout is None:
                chunk = await iterator.__anext__()
            else:
                chunk = await self._next_within(iterator, self._chunk_timeout)
        except StopAsyncIteration:
            self._end(None)
            raise
        except BaseException as exc:
            instance = self._instance
            self._end(exc)
            if isinstance(exc, Exception) and instance is not None:
                reraise(exc, self._pool.name, instance.id)
            raise
        instance = self._instance
        assert instance is not None  # _open took the slot before the first chunk
        chunk.model, chunk.instance = self._pool.name, instance.id
        self._chunks += 1
        if chunk.usage is not None:
            self._tokens = chunk.usage.completion_tokens
        return chunk

    async def aclose(self) -> None:
        """Stop early: close the backend's stream and give the slot back."""
        iterator = self._iterator
        if iterator is None:
            self._done = True
            return
        try:
            await _close(iterator)
        finally:
            self._end(None, measured=False)

    async def __aenter__(self) -> ChatStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __del__(self) -> None:
        if self._instance is not None:  # dropped while open: free the slot at least
            self._end(None, measured=False)

    async def _next_within(self, iterator: AsyncIterator[ChatChunk], timeout: float) -> ChatChunk:
        with anyio.move_on_after(timeout):
            return await iterator.__anext__()
        with anyio.CancelScope(shield=True):
            await _close(iterator)  # the backend's stream was cancelled mid-chunk
        raise BackendTimeout(
            f"model '{self._pool.name}' sent no chunk for {timeout:g}s", model=self._pool.name
        )

    async def _open(self) -> AsyncIterator[ChatChunk]:
        instance = await self._pool.acquire_slot(self._request)
        self._instance = instance
        self._started = perf_counter()
        try:
            self._iterator = instance.backend.stream_chat(self._request).__aiter__()
        except BaseException as exc:
            self._end(exc)
            raise
        return self._iterator

    def _end(self, exc: BaseException | None, measured: bool = True) -> None:
        """Give the slot back once, counting the call as done or failed."""
        instance = self._instance
        self._iterator = None
        self._done = True
        if instance is None:
            return
        self._instance = None
        tokens = self._tokens or self._chunks
        self._pool.release_slot(instance, self._started, tokens, exc, measured)


async def _close(iterator: AsyncIterator[ChatChunk]) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()
