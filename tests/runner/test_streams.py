"""Streams in a run: lazy end to end, fanned out through a tee, closed when abandoned."""

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from draining import drain

from smmf_flow import (
    DAG,
    FlowError,
    JoinOperator,
    NodeState,
    StreamifyOperator,
    Trace,
    TransformStreamOperator,
    UnstreamifyOperator,
)
from smmf_flow.runner.stream_tee import tee

pytestmark = pytest.mark.anyio


async def test_the_first_chunk_reaches_the_sink_before_the_source_finishes() -> None:
    """The source cannot produce chunk 2 until the consumer has chunk 1: a runner
    that drained the source first would deadlock (and time out)."""
    consumer_has_first = anyio.Event()
    events: list[str] = []

    async def source(n: int) -> AsyncIterator[int]:
        events.append("yield 1")
        yield 1
        await consumer_has_first.wait()
        for i in range(2, n + 1):
            events.append(f"yield {i}")
            yield i
        events.append("source done")

    with DAG("lazy") as dag:
        (
            StreamifyOperator(source, name="source")
            >> TransformStreamOperator(lambda i: i * 10, name="tens")
            >> TransformStreamOperator(lambda i: i + 1, name="plus")
        )
    with anyio.fail_after(2):
        async for chunk in dag.astream(3):
            events.append(f"got {chunk}")
            consumer_has_first.set()
    assert events == ["yield 1", "got 11", "yield 2", "got 21", "yield 3", "got 31", "source done"]


async def test_chunks_interleave_through_a_value_sink_inside_the_run() -> None:
    events: list[str] = []

    async def source(n: int) -> AsyncIterator[int]:
        for i in range(n):
            events.append(f"make {i}")
            yield i

    class Sink(UnstreamifyOperator):
        async def unstreamify(self, stream: AsyncIterator[int]) -> int:
            async for chunk in stream:
                events.append(f"sink {chunk}")
            return len(events)

    with DAG("sink") as dag:
        StreamifyOperator(source) >> TransformStreamOperator(lambda i: i) >> Sink()
    await dag.arun(2)
    assert events == ["make 0", "sink 0", "make 1", "sink 1"]


async def test_a_tee_feeds_every_branch_and_reads_the_source_once() -> None:
    made: list[int] = []

    async def source(n: int) -> AsyncIterator[int]:
        for i in range(n):
            made.append(i)
            yield i

    with DAG("tee") as dag:
        src = StreamifyOperator(source, name="src")
        up = TransformStreamOperator(lambda i: i + 100, name="up")
        down = TransformStreamOperator(lambda i: -i, name="down")
        src >> [up, down]
        up >> UnstreamifyOperator(name="ups")
        down >> UnstreamifyOperator(name="downs")
        [dag.node("ups"), dag.node("downs")] >> JoinOperator(name="both")
    assert await dag.arun(3) == [[100, 101, 102], [0, -1, -2]]
    assert made == [0, 1, 2]


async def test_tee_readers_go_at_their_own_pace() -> None:
    pulls: list[int] = []

    async def source() -> AsyncIterator[int]:
        for i in range(3):
            pulls.append(i)
            yield i

    first, second = tee(source(), 2)
    assert [x async for x in first] == [0, 1, 2]
    assert pulls == [0, 1, 2]
    assert [x async for x in second] == [0, 1, 2]
    assert pulls == [0, 1, 2]


async def test_tee_passes_an_error_to_every_reader() -> None:
    async def source() -> AsyncIterator[int]:
        yield 1
        raise KeyError("broken")

    readers = tee(source(), 2)
    for reader in readers:
        got: list[int] = []
        with pytest.raises(KeyError, match="broken"):
            await drain(reader, into=got)
        assert got == [1]


async def test_a_stream_node_stays_running_until_its_stream_ends() -> None:
    with DAG("s") as dag:
        StreamifyOperator(name="src") >> TransformStreamOperator(str.upper, name="up")
    trace = Trace()
    output = await dag.arun(["a", "b"], trace=trace)
    record = trace["up"]
    assert record.state is NodeState.RUNNING and record.ended is None
    assert [chunk async for chunk in output] == ["A", "B"]
    assert record.state is NodeState.SUCCEEDED and record.ended is not None
    assert record.chunks == 2
    assert record.output_repr == "<stream: 2 chunks>"
    assert trace["src"].state is NodeState.SUCCEEDED


async def test_astream_fills_a_trace_object() -> None:
    with DAG("s") as dag:
        StreamifyOperator(name="src") >> TransformStreamOperator(str.upper, name="up")
    trace = Trace()
    assert [c async for c in dag.astream("ab", trace=trace)] == ["A", "B"]
    assert trace.states() == {"src": "succeeded", "up": "succeeded"}


async def test_trace_takes_only_a_trace_to_fill() -> None:
    """One convention for run, arun and astream: ``trace=Trace()``, never ``trace=True``."""
    with DAG("s") as dag:
        StreamifyOperator(name="src")
    message = r"trace= takes a Trace to fill, got True: pass trace=Trace\(\) and read it"
    with pytest.raises(FlowError, match=message):
        async for _ in dag.astream("ab", trace=True):
            pass
    with pytest.raises(FlowError, match=message):
        await dag.arun("ab", trace=True)
    with pytest.raises(FlowError, match=message):
        await anyio.to_thread.run_sync(lambda: dag.run("ab", trace=True))


async def test_breaking_out_of_astream_closes_every_stream_of_the_run(no_stray_tasks: Any) -> None:
    closed: list[str] = []

    async def source(n: int) -> AsyncIterator[int]:
        try:
            for i in range(n):
                yield i
        finally:
            closed.append("source")

    class Doubler(TransformStreamOperator):
        async def transform_stream(self, stream: AsyncIterator[int]) -> AsyncIterator[int]:
            try:
                async for chunk in stream:
                    yield chunk * 2
            finally:
                closed.append(self.name)

    with DAG("early") as dag:
        StreamifyOperator(source, name="src") >> Doubler(name="d1") >> Doubler(name="d2")
    got: list[Any] = []
    async with no_stray_tasks():
        stream = dag.astream(100)
        async for chunk in stream:
            got.append(chunk)
            if len(got) == 2:
                break
        await stream.aclose()
    assert got == [0, 4]
    assert sorted(closed) == ["d1", "d2", "source"]
