"""Stream plumbing for the runner: a traced stream wrapper and a tee.

``TracedStream`` wraps a stream node's output so the node's record stays
``running`` until the stream ends, a chunk that waits too long raises a timeout,
and a failure before the first chunk can restart the node (after a chunk has
been delivered, a restart would repeat text, so the error is raised instead).
``tee`` lets several downstream nodes read one stream, each at its own pace.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias

import anyio

from smmf_flow.dag.retry import RetryPolicy
from smmf_flow.dag.trace import NodeRecord, NodeState
from smmf_flow.errors import NodeFailed, NodeTimeout


class TracedStream:
    """An async iterator over a stream node's output that keeps its record true."""

    def __init__(
        self,
        source: AsyncIterator[Any],
        record: NodeRecord,
        *,
        timeout: float | None,
        restart: Callable[[], Awaitable[AsyncIterator[Any]]] | None,
        retry: RetryPolicy | None,
        on_end: Callable[[NodeRecord, BaseException | None], None],
    ) -> None:
        self._source = source
        self._record = record
        self._timeout = timeout
        self._restart = restart
        self._retry = retry
        self._on_end = on_end
        self._finished = False
        #: streams closed together with this one (the run sets it on its output stream)
        self.upstream: list[RunStream] = []
        record.chunks = 0

    def __aiter__(self) -> TracedStream:
        return self

    async def __anext__(self) -> Any:
        if self._finished:
            raise StopAsyncIteration
        while True:
            try:
                if self._timeout is None:
                    chunk = await self._source.__anext__()
                else:
                    with anyio.fail_after(self._timeout):
                        chunk = await self._source.__anext__()
            except StopAsyncIteration:
                self._finish(None)
                raise
            except TimeoutError:
                error = NodeTimeout(self._record.name, self._timeout or 0.0)
                if await self._try_restart(error):
                    continue
                raise self._fail(error) from None
            except NodeFailed as error:  # an upstream stream failed: it is the culprit
                self._finish(error)
                raise
            except Exception as error:
                if await self._try_restart(error):
                    continue
                raise self._fail(error) from error
            self._record.chunks = (self._record.chunks or 0) + 1
            return chunk

    async def _try_restart(self, error: BaseException) -> bool:
        """Restart the node if nothing was delivered yet and the policy allows it."""
        rec = self._record
        if self._restart is None or self._retry is None or rec.chunks:
            return False
        if not self._retry.should_retry(error, rec.attempts):
            return False
        await anyio.sleep(self._retry.next_delay(rec.attempts))
        rec.attempts += 1
        self._source = await self._restart()
        return True

    def _fail(self, error: BaseException) -> NodeFailed:
        failure = NodeFailed(self._record.name, error)
        failure.__cause__ = error
        self._finish(failure)
        return failure

    def _finish(self, error: BaseException | None) -> None:
        if self._finished:
            return
        self._finished = True
        rec = self._record
        rec.ended = time.perf_counter()
        rec.state = NodeState.FAILED if error else NodeState.SUCCEEDED
        rec.error = error
        self._on_end(rec, error)

    async def aclose(self) -> None:
        """Stop reading; the source and the streams it reads from are closed, so
        their resources (a model slot) are freed."""
        await self.close_source()
        if not self._finished:
            self._finish(None)
        for stream in self.upstream:
            await stream.aclose()

    async def close_source(self) -> None:
        """Close the node's own iterator and leave its record as it is."""
        closer = getattr(self._source, "aclose", None)
        if closer is not None:
            await closer()


#: a stream a run hands out and closes if it ends early: a node's traced output, or
#: one reader of a tee
RunStream: TypeAlias = TracedStream | AsyncGenerator[Any, None]


class _Tee:
    """Shared buffer behind ``tee``: whichever reader is ahead pulls the source."""

    def __init__(self, source: AsyncIterator[Any], n: int) -> None:
        self.source = source
        self.buffers: list[deque[Any]] = [deque() for _ in range(n)]
        self.lock = anyio.Lock()
        self.done = False
        self.error: BaseException | None = None

    async def _pull(self, k: int) -> None:
        async with self.lock:
            if self.buffers[k] or self.done:
                return
            try:
                item = await self.source.__anext__()
            except StopAsyncIteration:
                self.done = True
                return
            except Exception as exc:
                self.done, self.error = True, exc
                return
            for buffer in self.buffers:
                buffer.append(item)

    async def read(self, k: int) -> AsyncGenerator[Any, None]:
        buffer = self.buffers[k]
        while True:
            if buffer:
                yield buffer.popleft()
            elif self.done:
                if self.error is not None:
                    raise self.error
                return
            else:
                await self._pull(k)


def tee(source: AsyncIterator[Any], n: int) -> list[AsyncGenerator[Any, None]]:
    """``n`` independent iterators over one stream; the source is read once."""
    shared = _Tee(source, n)
    return [shared.read(k) for k in range(n)]
