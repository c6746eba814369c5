"""``InputOperator`` and its ``InputSource``s."""

from collections.abc import AsyncIterator
from typing import Any

import pytest

from smmf_flow import (
    DAG,
    EdgeTypeError,
    InputOperator,
    InputSource,
    MapOperator,
    UnstreamifyOperator,
)


def square(x: int) -> int:
    return x * x


def run_source(source: InputSource | None, value: Any = None, *, collect: bool = False) -> Any:
    with DAG("input") as dag:
        entry = InputOperator(source, name="entry")
        if collect:
            entry >> UnstreamifyOperator(name="collect")
    return dag.run(value)


def test_without_a_source_the_run_input_passes_through() -> None:
    assert run_source(None, {"q": 1}) == {"q": 1}


def test_from_data_ignores_the_run_input() -> None:
    assert run_source(InputSource.from_data([1, 2]), "ignored") == [1, 2]


def test_from_data_declares_the_type_of_its_data() -> None:
    with DAG("typed"):
        entry = InputOperator(InputSource.from_data("text"), name="entry")
        sq = MapOperator(square, name="square")
    assert entry.output_type is str
    with pytest.raises(
        EdgeTypeError,
        match=r"'entry' outputs str but 'square' input 1 "
        r"expects int",
    ):
        entry >> sq


def test_from_iterable_is_a_stream() -> None:
    source = InputSource.from_iterable([1, 2, 3])
    assert run_source(source, collect=True) == [1, 2, 3]
    with DAG("d"):
        entry = InputOperator(source)
    assert entry.streams


def test_from_iterable_takes_an_async_iterable() -> None:
    async def numbers() -> AsyncIterator[int]:
        for i in range(3):
            yield i

    assert run_source(InputSource.from_iterable(numbers()), collect=True) == [0, 1, 2]


def test_a_stream_source_cannot_feed_a_value_node() -> None:
    with DAG("d"):
        entry = InputOperator(InputSource.from_iterable([1]), name="entry")
        sq = MapOperator(square, name="square")
    with pytest.raises(EdgeTypeError, match=r"a stream cannot feed a node that takes a value"):
        entry >> sq


def test_from_callable_gets_the_run_input() -> None:
    assert run_source(InputSource.from_callable(lambda q: q * 2), 21) == 42


def test_from_callable_without_arguments() -> None:
    assert run_source(InputSource.from_callable(lambda: "fixed"), "ignored") == "fixed"


def test_from_callable_async_with_and_without_input() -> None:
    async def fetch(q: int) -> str:
        return f"doc {q}"

    async def now() -> int:
        return 7

    assert run_source(InputSource.from_callable(fetch), 3) == "doc 3"
    assert run_source(InputSource.from_callable(now)) == 7


def test_from_callable_declares_its_return_type() -> None:
    async def fetch(q: int) -> str:
        return ""

    with DAG("d"):
        entry = InputOperator(InputSource.from_callable(fetch), name="entry")
        sq = MapOperator(square, name="square")
    assert entry.output_type is str
    with pytest.raises(EdgeTypeError, match=r"'entry' outputs str but 'square'"):
        entry >> sq


def test_an_input_operator_feeds_its_children() -> None:
    with DAG("d") as dag:
        InputOperator(name="entry") >> MapOperator(square, name="square")
    assert dag.run(4) == 16
