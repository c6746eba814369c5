"""The registry's loop thread: where the adapters run a registry's async work.

A registry's pools, locks and embedding batchers work inside one event loop at a
time. LangChain and LlamaIndex call an adapter synchronously (from any thread,
even one whose event loop is running) and asynchronously (from the caller's
loop). So every adapter call on a registry runs on one event loop of its own, in
a daemon thread kept in ``registry.attachments``: a sync caller blocks on a
future (never on the loop it may be running, so it cannot deadlock), an async
caller awaits the future without taking a thread, and concurrent callers of
either kind meet in the same batcher, so they share embedding batches.

The loop stops when the registry closes (``attachments`` are dropped, and with
them this object) or is collected. Code on the loop itself (a flow run by
``as_runnable`` calling a chat model adapter) runs its calls directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, TypeVar

from smmf_flow.errors import UsageError

if TYPE_CHECKING:
    from smmf_flow.models.registry import ModelRegistry

T = TypeVar("T")

_making = threading.Lock()  # two threads asking at once get one loop


class RegistryLoop:
    """One event loop in a daemon thread, serving one registry's adapter calls."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=_serve, args=(self.loop,), name=f"smmf-flow adapters {source}", daemon=True
        )
        self.thread.start()
        weakref.finalize(self, _stop, self.loop)

    def _here(self) -> bool:
        return threading.get_ident() == self.thread.ident

    def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``await fn(*args)`` on the loop, from synchronous code in any other thread."""
        if self._here():
            raise UsageError(
                f"a synchronous adapter call on the event loop of model registry "
                f"{self.source} would wait for itself; use the async method (ainvoke, "
                "aembed_query, astream, ...) there"
            )
        return asyncio.run_coroutine_threadsafe(_await(fn, *args), self.loop).result()

    async def acall(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``await fn(*args)`` on the loop, from async code (in any loop). Cancelling
        the caller cancels the call."""
        if self._here():
            return await fn(*args)
        future = asyncio.run_coroutine_threadsafe(_await(fn, *args), self.loop)
        return await asyncio.wrap_future(future)

    def iterate(self, make: Callable[[], AsyncIterator[T]]) -> Generator[T, None, None]:
        """The items of the async iterator ``make()`` (made and read on the loop), for
        synchronous code; leaving early closes it."""
        stream = _Stepper(make)
        try:
            while True:
                more, item = self.call(stream.step)
                if not more:
                    return
                yield item
        finally:
            self.call(stream.aclose)

    async def aiterate(self, make: Callable[[], AsyncIterator[T]]) -> AsyncGenerator[T, None]:
        """The items of ``make()`` (made and read on the loop), for async code in any loop."""
        stream = _Stepper(make)
        try:
            while True:
                more, item = await self.acall(stream.step)
                if not more:
                    return
                yield item
        finally:
            await self.acall(stream.aclose)


class _Stepper:
    """An async iterator read one item per call, on the loop it was made in."""

    def __init__(self, make: Callable[[], AsyncIterator[Any]]) -> None:
        self._make = make
        self._it: AsyncIterator[Any] | None = None

    async def step(self) -> tuple[bool, Any]:
        if self._it is None:
            self._it = self._make()
        try:
            return True, await self._it.__anext__()
        except StopAsyncIteration:
            return False, None

    async def aclose(self) -> None:
        closer = getattr(self._it, "aclose", None)
        if closer is not None:
            await closer()


async def _await(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    return await fn(*args)


def _stop(loop: asyncio.AbstractEventLoop) -> None:
    with contextlib.suppress(RuntimeError):  # already closed
        loop.call_soon_threadsafe(loop.stop)


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        loop.close()


def registry_loop(registry: ModelRegistry) -> RegistryLoop:
    """The loop thread of ``registry``, started on first use."""
    with _making:
        found = registry.attachments.get(RegistryLoop)
        if not isinstance(found, RegistryLoop):
            found = registry.attachments[RegistryLoop] = RegistryLoop(registry.source)
        return found


__all__ = ["RegistryLoop", "registry_loop"]
