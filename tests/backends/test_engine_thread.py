"""The engine thread: calls in order on one thread, streams in batches, cancellation."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import anyio
import pytest

from smmf_flow.errors import BackendError
from smmf_flow.models.backends.engine_thread import EngineThread

pytestmark = pytest.mark.anyio


@pytest.fixture
def engine() -> Iterator[EngineThread]:
    thread = EngineThread("test engine")
    yield thread
    thread.close(wait=5)


async def test_calls_run_on_one_thread_in_order(engine: EngineThread) -> None:
    seen: list[tuple[int, str]] = []

    def work(i: int) -> int:
        seen.append((i, threading.current_thread().name))
        return i * i

    results: dict[int, int] = {}

    async def call(i: int) -> None:
        results[i] = await engine.call(lambda stop: work(i))

    async with anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(call, i)
    assert results == {i: i * i for i in range(20)}
    assert {name for _, name in seen} == {"test engine"}
    assert threading.current_thread().name != "test engine"


async def test_errors_raise_in_the_caller(engine: EngineThread) -> None:
    def boom(stop: threading.Event) -> None:
        raise BackendError("engine broke")

    with pytest.raises(BackendError, match="engine broke"):
        await engine.call(boom)
    assert await engine.call(lambda stop: "still serving") == "still serving"


async def test_a_fast_producer_is_read_in_batches(engine: EngineThread) -> None:
    def produce(stop: threading.Event) -> Iterator[int]:
        yield from range(1000)

    batches = []
    async for batch in engine.stream(produce):
        batches.append(batch)
        await anyio.sleep(0.01)  # a slow consumer
    assert [i for b in batches for i in b] == list(range(1000))
    assert len(batches) < 1000


async def test_leaving_a_stream_sets_stop_and_closes_the_producer(engine: EngineThread) -> None:
    made: list[int] = []
    closed = threading.Event()

    def produce(stop: threading.Event) -> Iterator[int]:
        try:
            for i in range(10_000):
                if stop.is_set():
                    return
                made.append(i)
                time.sleep(0.001)
                yield i
        finally:
            closed.set()

    stream = engine.stream(produce)
    async for batch in stream:
        if batch[-1] >= 3:
            break
    await stream.aclose()  # type: ignore[attr-defined]
    await engine.call(lambda stop: None)  # runs after the producer's job ended
    assert closed.is_set()
    assert len(made) < 10_000


async def test_cancelled_callers_skip_unstarted_jobs(engine: EngineThread) -> None:
    gate = threading.Event()
    ran: list[str] = []

    def first(stop: threading.Event) -> None:
        gate.wait(5)
        ran.append("first")

    async with anyio.create_task_group() as tg:
        tg.start_soon(engine.call, first)
        await anyio.sleep(0.05)
        with anyio.move_on_after(0.05):
            await engine.call(lambda stop: ran.append("second"))
        gate.set()
    await engine.call(lambda stop: None)
    assert ran == ["first"]


async def test_a_closed_engine_refuses_work(engine: EngineThread) -> None:
    engine.close(wait=5)
    with pytest.raises(BackendError, match="closed"):
        await engine.call(lambda stop: 1)
