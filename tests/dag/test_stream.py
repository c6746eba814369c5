"""Stream operators: streamify, unstreamify, transform and reduce."""

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from smmf_flow import (
    DAG,
    EdgeTypeError,
    FlowError,
    MapOperator,
    NodeFailed,
    ReduceStreamOperator,
    StreamifyOperator,
    TransformStreamOperator,
    UnstreamifyOperator,
)


def letters(text: str) -> list[str]:
    return list(text)


async def words(text: str) -> AsyncIterator[str]:
    for word in text.split():
        await anyio.sleep(0)
        yield word


def run_chain(*ops: Any, value: Any) -> Any:
    with DAG("stream") as dag:
        first = ops[0]()
        for factory in ops[1:]:
            first = first >> factory()
    return dag.run(value)


# --- streamify ---------------------------------------------------------------------------


def test_streamify_a_function_returning_an_iterable() -> None:
    op = StreamifyOperator(letters)
    assert op.streams and op.input_types == (str,)
    assert run_chain(lambda: StreamifyOperator(letters), UnstreamifyOperator, value="abc") == [
        "a",
        "b",
        "c",
    ]


def test_streamify_an_async_generator() -> None:
    op = StreamifyOperator(words)
    assert op.output_type == AsyncIterator[str]
    assert run_chain(lambda: StreamifyOperator(words), UnstreamifyOperator, value="a b") == [
        "a",
        "b",
    ]


def test_streamify_without_a_function_streams_the_value_itself() -> None:
    assert run_chain(StreamifyOperator, UnstreamifyOperator, value=(1, 2)) == [1, 2]


class Countdown(StreamifyOperator):
    async def streamify(self, start: int) -> AsyncIterator[int]:
        for i in range(start, 0, -1):
            yield i


def test_streamify_override() -> None:
    op = Countdown()
    assert op.input_types == (int,) and op.output_type == AsyncIterator[int]
    assert run_chain(Countdown, UnstreamifyOperator, value=3) == [3, 2, 1]


# --- unstreamify -------------------------------------------------------------------------


def test_unstreamify_applies_its_function_to_the_chunks() -> None:
    def join_words(chunks: list[str]) -> str:
        return " ".join(chunks)

    op = UnstreamifyOperator(join_words)
    assert op.input_types == (AsyncIterator[Any],) and op.output_type is str
    assert run_chain(lambda: StreamifyOperator(words), lambda: op, value="x y") == "x y"


class Longest(UnstreamifyOperator):
    async def unstreamify(self, stream: AsyncIterator[str]) -> str:
        return max([chunk async for chunk in stream], key=len)


def test_unstreamify_override() -> None:
    assert Longest().output_type is str
    assert run_chain(lambda: StreamifyOperator(words), Longest, value="a bbb cc") == "bbb"


# --- transform ---------------------------------------------------------------------------


def test_transform_maps_each_chunk_sync_or_async() -> None:
    async def excited(word: str) -> str:
        return word + "!"

    op = TransformStreamOperator(str.upper)
    assert op.streams
    assert run_chain(
        lambda: StreamifyOperator(words),
        lambda: TransformStreamOperator(str.upper),
        lambda: TransformStreamOperator(excited),
        UnstreamifyOperator,
        value="a b",
    ) == ["A!", "B!"]


def test_transform_ports_come_from_the_chunk_function() -> None:
    def length(word: str) -> int:
        return len(word)

    op = TransformStreamOperator(length)
    assert op.input_types == (AsyncIterator[str],)
    assert op.output_type == AsyncIterator[int]


def test_transform_checks_chunk_types_at_the_edge() -> None:
    def length(word: str) -> int:
        return len(word)

    with DAG("typed"):
        lengths = TransformStreamOperator(length, name="lengths")
        again = TransformStreamOperator(length, name="again")
        with pytest.raises(
            EdgeTypeError,
            match=r"'lengths' outputs AsyncIterator\[int\] but "
            r"'again' input 1 expects "
            r"AsyncIterator\[str\]",
        ):
            lengths >> again


class Pairs(TransformStreamOperator):
    async def transform_stream(self, stream: AsyncIterator[str]) -> AsyncIterator[str]:
        previous = None
        async for chunk in stream:
            if previous is not None:
                yield previous + chunk
            previous = chunk


def test_transform_override() -> None:
    op = Pairs()
    assert op.input_types == (AsyncIterator[str],) and op.output_type == AsyncIterator[str]
    assert run_chain(
        lambda: StreamifyOperator(letters), Pairs, UnstreamifyOperator, value="abc"
    ) == ["ab", "bc"]


def test_transform_without_function_or_override_is_refused_when_made() -> None:
    with pytest.raises(
        FlowError,
        match=r"^node 'bare': TransformStreamOperator needs fn or a "
        r"transform_stream\(\) override$",
    ) as error:
        TransformStreamOperator(name="bare")
    assert error.value.param == "fn"


# --- reduce ------------------------------------------------------------------------------


def test_reduce_folds_from_the_first_chunk() -> None:
    def add(total: int, n: int) -> int:
        return total + n

    op = ReduceStreamOperator(add)
    assert op.input_types == (AsyncIterator[int],) and op.output_type is int
    assert run_chain(StreamifyOperator, lambda: ReduceStreamOperator(add), value=[1, 2, 3]) == 6


def test_reduce_with_an_initial_value_and_async_function() -> None:
    async def collect(acc: str, chunk: str) -> str:
        return acc + chunk

    assert (
        run_chain(
            lambda: StreamifyOperator(words),
            lambda: ReduceStreamOperator(collect, initial=">"),
            value="a b",
        )
        == ">ab"
    )


def test_reduce_of_an_empty_stream() -> None:
    assert run_chain(StreamifyOperator, lambda: ReduceStreamOperator(max, initial=0), value=[]) == 0
    with pytest.raises(
        NodeFailed,
        match=r"node 'fold' failed: InputError: the stream was "
        r"empty and no initial value was given; give the "
        r"reduce an initial value",
    ):
        run_chain(StreamifyOperator, lambda: ReduceStreamOperator(max, name="fold"), value=[])


def test_a_reduced_stream_feeds_value_nodes() -> None:
    def add(total: int, n: int) -> int:
        return total + n

    assert (
        run_chain(
            StreamifyOperator,
            lambda: ReduceStreamOperator(add),
            lambda: MapOperator(lambda x: x * 10),
            value=[1, 2],
        )
        == 30
    )


def test_a_stream_output_is_gathered_by_run() -> None:
    assert run_chain(
        lambda: StreamifyOperator(words), lambda: TransformStreamOperator(str.upper), value="a b"
    ) == ["A", "B"]


def test_a_stream_error_is_a_node_failure() -> None:
    def bad(word: str) -> str:
        raise FlowError("never")

    with pytest.raises(NodeFailed, match=r"node 'bad' failed: FlowError: never"):
        run_chain(
            lambda: StreamifyOperator(words),
            lambda: TransformStreamOperator(bad, name="bad"),
            UnstreamifyOperator,
            value="a",
        )
