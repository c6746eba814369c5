"""One thread per blocking engine, and a cheap way back from it to the event loop.

llama.cpp, transformers and MLX block while they compute, are not safe to call
from two threads at once, and some (MLX) tie their state to the thread that made
it. So a backend owns one ``EngineThread``: every call of its engine runs there,
one at a time and in order, which serializes calls per instance without a lock
held across awaits, and keeps blocking work off the event loop.

Items travel back through a ``Relay``: the engine thread appends to a deque and
wakes the event loop only when the consumer is waiting, with a fire-and-forget
``call_soon_threadsafe`` (never a blocking round trip), so a streaming engine is
not slowed by its consumer and a slow consumer gets tokens in batches.

Cancelling the awaiting task sets the job's ``stop`` event; engines check it
between tokens, so a cancelled stream stops generating.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Generic, TypeVar

import anyio
from anyio.lowlevel import current_token

from smmf_flow.errors import BackendError

T = TypeVar("T")


def _loop_caller() -> Callable[[Callable[[], object]], object]:
    """A function that schedules a callback on the current event loop from any thread."""
    native: Any = current_token().native_token
    caller: Callable[[Callable[[], object]], object] = (
        native.call_soon_threadsafe  # an asyncio loop
        if hasattr(native, "call_soon_threadsafe")
        else native.run_sync_soon  # a trio token
    )
    return caller


class Relay(Generic[T]):
    """Items from one producer thread to one consumer task, in batches.

    Made in the consumer's task (it captures that event loop). The producer calls
    ``put`` and finally ``finish``; the consumer awaits ``next_batch()``.
    """

    def __init__(self) -> None:
        self.stop = threading.Event()
        self._items: deque[T] = deque()
        self._lock = threading.Lock()
        self._waiter: anyio.Event | None = None
        self._done = False
        self._error: BaseException | None = None
        self._call_soon = _loop_caller()

    def put(self, item: T) -> None:
        """Hand one item to the consumer (producer side; never blocks)."""
        with self._lock:
            self._items.append(item)
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            self._wake(waiter)

    def finish(self, error: BaseException | None = None) -> None:
        """Tell the consumer no more items come; ``error`` is raised there if given."""
        with self._lock:
            self._done, self._error = True, error
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            self._wake(waiter)

    def _wake(self, waiter: anyio.Event) -> None:
        try:
            self._call_soon(waiter.set)
        except RuntimeError:  # the event loop is gone: nobody will read what we make
            self.stop.set()

    async def next_batch(self) -> list[T] | None:
        """Whatever arrived since the last call (waiting for at least one item);
        ``None`` once the producer has finished and everything was taken."""
        while True:
            with self._lock:
                if self._items:
                    batch = list(self._items)
                    self._items.clear()
                    return batch
                if self._done:
                    if self._error is not None:
                        raise self._error
                    return None
                waiter = self._waiter = anyio.Event()
            await waiter.wait()


class _Job:
    __slots__ = ("relay", "work")

    def __init__(self, work: Callable[[Relay[Any]], None], relay: Relay[Any]) -> None:
        self.work, self.relay = work, relay


class EngineThread:
    """A daemon thread that runs one engine's jobs one at a time, in order."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._start_lock = threading.Lock()

    def _ensure_started(self) -> None:
        if self._closed:
            raise BackendError(f"{self.name}: the engine is closed; restart the instance")
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name=self.name, daemon=True)
                self._thread.start()

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                break
            if job.relay.stop.is_set():  # cancelled before it started
                job.relay.finish()
                continue
            try:
                job.work(job.relay)
            except BaseException as exc:  # handed to the awaiting task, raised there
                job.relay.finish(exc)
            else:
                job.relay.finish()
        closed = BackendError(f"{self.name}: the engine was closed before this call ran")
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return
            if job is not None:
                job.relay.finish(closed)

    def _submit(self, work: Callable[[Relay[T]], None]) -> Relay[T]:
        self._ensure_started()
        relay: Relay[T] = Relay()
        self._jobs.put(_Job(work, relay))
        return relay

    async def call(self, fn: Callable[[threading.Event], T]) -> T:
        """Run ``fn(stop)`` on the engine thread and return its result.

        If the awaiting task is cancelled, ``stop`` is set and the call is abandoned
        (the engine thread finishes it, or skips it if it has not started).
        """
        relay: Relay[T] = self._submit(lambda r: r.put(fn(r.stop)))
        try:
            batch = await relay.next_batch()
        finally:
            relay.stop.set()
        if not batch:
            raise BackendError(f"{self.name}: the call was skipped")
        return batch[0]

    async def stream(
        self,
        make: Callable[[threading.Event], Iterator[T]],
    ) -> AsyncIterator[list[T]]:
        """Iterate ``make(stop)`` on the engine thread; yield its items in batches.

        Leaving the loop early (break, error, cancellation) sets ``stop``, and the
        engine thread closes the iterator before taking the next job.
        """

        def work(relay: Relay[T]) -> None:
            items = make(relay.stop)
            try:
                for item in items:
                    relay.put(item)
                    if relay.stop.is_set():
                        break
            finally:
                close = getattr(items, "close", None)
                if close is not None:
                    close()

        relay = self._submit(work)
        try:
            while (batch := await relay.next_batch()) is not None:
                yield batch
        finally:
            relay.stop.set()

    def close(self, *, wait: float | None = None) -> None:
        """Stop the thread after the job in hand; later jobs fail with ``BackendError``."""
        self._closed = True
        self._jobs.put(None)
        thread = self._thread
        if wait is not None and thread is not None and thread is not threading.current_thread():
            thread.join(wait)


__all__ = ["EngineThread", "Relay"]
