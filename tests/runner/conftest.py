"""Fixtures of the runner tests: the DAG shapes they are parametrized over, and a
check that a run leaves no task behind.

Each shape builder returns a ``Shape``: the DAG, an input, the output it must give and
the nodes a branch skips.
"""

import asyncio
import gc
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest

from smmf_flow import (
    DAG,
    BranchOperator,
    JoinOperator,
    MapOperator,
    ReduceStreamOperator,
    StreamifyOperator,
    TransformStreamOperator,
    UnstreamifyOperator,
)


@dataclass
class Shape:
    dag: DAG
    input: Any
    output: Any
    skipped: set[str] = field(default_factory=set)


def add(a: int, b: int) -> int:
    return a + b


def total(*xs: int) -> int:
    return sum(xs)


async def count_to(n: int) -> AsyncIterator[int]:
    for i in range(1, n + 1):
        await anyio.sleep(0)
        yield i


def chain() -> Shape:
    with DAG("chain") as dag:
        (
            MapOperator(lambda x: x + 1, name="inc", input_type=int, output_type=int)
            >> MapOperator(lambda x: x * 2, name="double", input_type=int, output_type=int)
            >> MapOperator(str, name="text", input_type=int, output_type=str)
        )
    return Shape(dag, 3, "8")


def diamond() -> Shape:
    with DAG("diamond") as dag:
        top = MapOperator(lambda x: x + 1, name="top")
        left = MapOperator(lambda x: x * 2, name="left")
        right = MapOperator(lambda x: x * 3, name="right")
        top >> [left, right] >> JoinOperator(add, name="bottom")
    return Shape(dag, 1, 10)


def wide() -> Shape:
    with DAG("wide") as dag:
        root = MapOperator(lambda x: x, name="root")
        join = JoinOperator(total, name="sum")
        for i in range(30):

            async def plus(x: int, i: int = i) -> int:
                await anyio.sleep(0)
                return x + i

            root >> MapOperator(plus, name=f"plus{i}") >> join
    return Shape(dag, 1, 30 + sum(range(30)))


def branch_join() -> Shape:
    with DAG("branch_join") as dag:
        route = BranchOperator({lambda x: x % 2 == 0: "half"}, default="triple", name="route")
        half = MapOperator(lambda x: x // 2, name="half")
        triple = MapOperator(lambda x: 3 * x + 1, name="triple")
        after = MapOperator(lambda x: x, name="after_triple")
        route >> [half, triple]
        triple >> after
        [half, after] >> JoinOperator(name="join")
    return Shape(dag, 10, 5, {"triple", "after_triple"})


def nested_streams() -> Shape:
    with DAG("nested_streams") as dag:
        (
            StreamifyOperator(count_to, name="count")
            >> TransformStreamOperator(lambda i: i + 1, name="inc")
            >> TransformStreamOperator(lambda i: i * 10, name="tens")
            >> UnstreamifyOperator(sum, name="sum")
        )
    return Shape(dag, 4, 10 * (2 + 3 + 4 + 5))


def stream_tee() -> Shape:
    with DAG("stream_tee") as dag:
        count = StreamifyOperator(count_to, name="count")
        squares = TransformStreamOperator(lambda i: i * i, name="squares")
        negs = TransformStreamOperator(lambda i: -i, name="negs")
        count >> [squares, negs, UnstreamifyOperator(name="raw")]
        squares >> ReduceStreamOperator(add, name="sum_sq")
        negs >> UnstreamifyOperator(name="list_neg")
        [dag.node("sum_sq"), dag.node("list_neg"), dag.node("raw")] >> JoinOperator(
            lambda s, n, r: (s, n, r), name="join"
        )
    return Shape(dag, 3, (14, [-1, -2, -3], [1, 2, 3]))


SHAPES: dict[str, Callable[[], Shape]] = {
    "chain": chain,
    "diamond": diamond,
    "wide": wide,
    "branch_join": branch_join,
    "nested_streams": nested_streams,
    "stream_tee": stream_tee,
}


@pytest.fixture(params=list(SHAPES))
def shape(request: pytest.FixtureRequest) -> Shape:
    return SHAPES[request.param]()


@asynccontextmanager
async def _no_stray_tasks() -> AsyncIterator[None]:
    before = asyncio.all_tasks()
    yield
    gc.collect(1)  # a young abandoned async generator gets a finalizer task now...
    await asyncio.sleep(0)  # ...which is created on the next loop iteration
    assert asyncio.all_tasks() == before, "a task or an unclosed generator outlived the run"


@pytest.fixture
def no_stray_tasks() -> Callable[[], AbstractAsyncContextManager[None]]:
    """``async with no_stray_tasks():`` fails if a task or a suspended async generator
    outlives the block."""
    return _no_stray_tasks
