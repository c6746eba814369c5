"""Reading a stream that is expected to fail part-way, keeping what came before::

    got: list[int] = []
    with pytest.raises(NodeFailed):
        await drain(dag.astream(10), into=got)
    assert got == [0, 1]

so the ``pytest.raises`` block holds the one statement that should raise."""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable
from typing import TypeVar

T = TypeVar("T")


async def drain(stream: AsyncIterable[T], *, into: list[T]) -> None:
    """Append every item of ``stream`` to ``into`` until it ends or raises."""
    async for item in stream:
        into.append(item)


def drain_sync(stream: Iterable[T], *, into: list[T]) -> None:
    """``drain`` for a synchronous stream (an SDK's server-sent events)."""
    for item in stream:
        into.append(item)
