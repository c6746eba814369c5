"""A failing node: ``NodeFailed`` names it, and the rest of the run is cancelled cleanly.

"Cleanly" means: sibling work is cancelled (its ``finally`` runs, it never completes),
no task outlives the run (``no_stray_tasks``, conftest.py), and no async generator is
left suspended for the loop to close later in a task of its own. pyproject.toml turns
RuntimeWarnings and unraisable exceptions into errors, so an un-awaited coroutine fails
these tests too.
"""

import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import anyio
import pytest
from draining import drain

from smmf_flow import (
    DAG,
    JoinOperator,
    MapOperator,
    NodeFailed,
    StreamifyOperator,
    Trace,
    TransformStreamOperator,
    UnstreamifyOperator,
)

pytestmark = pytest.mark.anyio
NoStrayTasks = Callable[[], AbstractAsyncContextManager[None]]


def explode(x: Any) -> Any:
    return 1 / 0


async def test_a_failure_names_the_node_and_chains_the_cause(no_stray_tasks: NoStrayTasks) -> None:
    with DAG("fail") as dag:
        MapOperator(lambda x: x, name="ok") >> MapOperator(explode, name="boom")
    async with no_stray_tasks():
        with pytest.raises(
            NodeFailed,
            match=r"^node 'boom' failed: ZeroDivisionError: "
            r"division by zero$",
        ) as info:
            await dag.arun(1)
    assert info.value.node == "boom"
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_a_failure_raises_from_sync_run_too() -> None:
    with DAG("fail") as dag:
        MapOperator(explode, name="boom")
    with pytest.raises(NodeFailed, match=r"node 'boom' failed"):
        dag.run(1)


class Slow(MapOperator):
    """Waits far longer than any test, noting how it ended."""

    def __init__(self, log: list[str], **options: Any) -> None:
        self.log = log
        super().__init__(**options)

    async def map(self, x: Any) -> Any:
        self.log.append("started")
        try:
            await anyio.sleep(10)
            self.log.append("completed")
        except anyio.get_cancelled_exc_class():
            self.log.append("cancelled")
            raise
        finally:
            self.log.append("finally")
        return x


async def test_a_slow_sibling_is_cancelled(no_stray_tasks: NoStrayTasks) -> None:
    log: list[str] = []
    with DAG("siblings") as dag:
        root = MapOperator(lambda x: x, name="root")

        async def late_boom(x: Any) -> Any:
            await anyio.sleep(0.01)
            raise KeyError("late")

        root >> [Slow(log, name="slow"), MapOperator(late_boom, name="boom")] >> JoinOperator()
    started = time.perf_counter()
    trace = Trace()
    async with no_stray_tasks():
        with pytest.raises(NodeFailed, match=r"node 'boom' failed: KeyError: 'late'"):
            await dag.arun(0, trace=trace)
    assert time.perf_counter() - started < 1
    assert log == ["started", "cancelled", "finally"]
    assert trace["boom"].state == "failed"
    assert trace["join_1"].state == "pending"


async def test_nothing_downstream_of_a_failure_runs(no_stray_tasks: NoStrayTasks) -> None:
    ran: list[str] = []
    with DAG("chain") as dag:
        (
            MapOperator(explode, name="boom")
            >> MapOperator(lambda x: ran.append("after") or x, name="after")
        )
    trace = Trace()
    async with no_stray_tasks():
        with pytest.raises(NodeFailed):
            await dag.arun(1, trace=trace)
    assert ran == []
    assert trace.states() == {"boom": "failed", "after": "pending"}


async def test_two_failures_at_once_raise_one_node_failed(no_stray_tasks: NoStrayTasks) -> None:
    with DAG("twice") as dag:
        root = MapOperator(lambda x: x, name="root")
        (
            root
            >> [MapOperator(explode, name="a"), MapOperator(explode, name="b")]
            >> JoinOperator(name="j")
        )
    async with no_stray_tasks():
        with pytest.raises(NodeFailed, match=r"node '[ab]' failed: ZeroDivisionError"):
            await dag.arun(1)


async def test_a_cancelled_caller_cancels_the_run(no_stray_tasks: NoStrayTasks) -> None:
    log: list[str] = []
    with DAG("outer") as dag:
        MapOperator(lambda x: x, name="root") >> Slow(log, name="slow")
    async with no_stray_tasks():
        with anyio.move_on_after(0.05) as scope:
            await dag.arun(1)
    assert scope.cancelled_caught
    assert log == ["started", "cancelled", "finally"]


def source_with_cleanup(log: list[str]) -> Any:
    async def source(n: int) -> AsyncIterator[int]:
        try:
            for i in range(n):
                yield i
                await anyio.sleep(0)
        finally:
            log.append("source closed")

    return source


def fail_at(bad: int) -> Any:
    def check(i: int) -> int:
        if i == bad:
            raise ValueError(f"bad chunk {i}")
        return i

    return check


async def test_a_stream_failure_closes_the_source(no_stray_tasks: NoStrayTasks) -> None:
    log: list[str] = []
    with DAG("stream") as dag:
        (
            StreamifyOperator(source_with_cleanup(log), name="src")
            >> TransformStreamOperator(fail_at(2), name="check")
            >> UnstreamifyOperator(name="collect")
        )
    async with no_stray_tasks():
        with pytest.raises(NodeFailed, match=r"node 'check' failed: ValueError: bad chunk 2"):
            await dag.arun(10)
    assert log == ["source closed"]


async def test_a_failure_in_one_tee_branch_cancels_and_closes_the_others(
    no_stray_tasks: NoStrayTasks,
) -> None:
    log: list[str] = []

    class Guarded(UnstreamifyOperator):
        async def unstreamify(self, stream: AsyncIterator[int]) -> list[int]:
            try:
                return [chunk async for chunk in stream]
            finally:
                log.append(f"{self.name} done")

    with DAG("tee") as dag:
        src = StreamifyOperator(source_with_cleanup(log), name="src")
        fine = TransformStreamOperator(lambda i: i, name="fine")
        check = TransformStreamOperator(fail_at(3), name="check")
        src >> [fine, check]
        fine >> Guarded(name="fine_sink")
        check >> Guarded(name="check_sink")
        [dag.node("fine_sink"), dag.node("check_sink")] >> JoinOperator(name="join")
    async with no_stray_tasks():
        with pytest.raises(
            NodeFailed,
            match=r"node 'check' failed: ValueError: bad chunk "
            r"3",
        ) as info:
            await dag.arun(100)
    assert isinstance(info.value.__cause__, ValueError)
    assert sorted(log) == ["check_sink done", "fine_sink done", "source closed"]


async def test_a_failure_while_streaming_out_closes_the_source(
    no_stray_tasks: NoStrayTasks,
) -> None:
    log: list[str] = []
    with DAG("out") as dag:
        (
            StreamifyOperator(source_with_cleanup(log), name="src")
            >> TransformStreamOperator(fail_at(2), name="check")
        )
    got: list[int] = []
    async with no_stray_tasks():
        with pytest.raises(NodeFailed, match=r"node 'check' failed"):
            await drain(dag.astream(10), into=got)
    assert got == [0, 1]
    assert log == ["source closed"]


def test_a_blocking_node_failure_is_a_node_failure() -> None:
    def sync_boom(x: int) -> int:
        raise OSError("disk")

    with DAG("thread") as dag:
        MapOperator(sync_boom, blocking=True, name="io")
    with pytest.raises(NodeFailed, match=r"node 'io' failed: OSError: disk"):
        dag.run(1)
