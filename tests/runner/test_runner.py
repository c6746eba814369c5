"""Running a DAG: run/arun/astream/call over every shape, outputs, and concurrency.

``shape`` (conftest.py) is each DAG shape in turn: chain, diamond, wide fan-out/fan-in,
branch + join, nested streams, and a stream fanned out through a tee."""

import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from smmf_flow import (
    DAG,
    FlowError,
    JoinOperator,
    MapOperator,
    NodeState,
    StreamifyOperator,
    Trace,
    TransformStreamOperator,
    UsageError,
)

pytestmark = pytest.mark.anyio


# --- every shape, every way of running it ------------------------------------------------


def test_run_from_sync_code(shape: Any) -> None:
    assert shape.dag.run(shape.input) == shape.output


async def test_a_synchronous_run_inside_a_running_loop_says_which_call_works() -> None:
    """``dag.run`` starts an event loop of its own: inside a running one it cannot, and
    says so instead of anyio's bare RuntimeError."""
    with DAG("inside") as dag:
        MapOperator(str.upper, name="up")
    with pytest.raises(
        UsageError,
        match=r"^DAG 'inside': cannot run synchronously \(dag\.run\) while asyncio runs in "
        r"this thread; use `await dag\.arun\(\.\.\.\)` or `dag\.astream\(\.\.\.\)`$",
    ):
        dag.run("x")
    assert await dag.arun("x") == "X"


async def test_arun(shape: Any) -> None:
    assert await shape.dag.arun(shape.input) == shape.output


async def test_astream_of_a_value_output_yields_it_once(shape: Any) -> None:
    assert [chunk async for chunk in shape.dag.astream(shape.input)] == [shape.output]


async def test_output_names_the_end_node(shape: Any) -> None:
    (leaf,) = shape.dag.leaves
    assert await shape.dag.arun(shape.input, output=leaf) == shape.output


async def test_every_node_succeeds_or_is_skipped(shape: Any) -> None:
    trace = Trace()
    assert await shape.dag.arun(shape.input, trace=trace) == shape.output
    assert set(trace.records) == {op.name for op in shape.dag.nodes}
    for record in trace:
        expected = NodeState.SKIPPED if record.name in shape.skipped else NodeState.SUCCEEDED
        assert record.state is expected, record.name


async def test_concurrent_runs_of_one_dag_are_independent(shape: Any) -> None:
    results: list[Any] = []

    async def one() -> None:
        results.append(await shape.dag.arun(shape.input))

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(one)
    assert results == [shape.output] * 5


# --- inputs and outputs -------------------------------------------------------------------


class Counted(MapOperator):
    """Counts its runs in a shared ``Counter``."""

    def __init__(self, counter: Counter[str], fn: Any, **options: Any) -> None:
        self.counter = counter
        super().__init__(fn, **options)

    async def execute(self, ctx: Any, *inputs: Any) -> Any:
        self.counter[self.name] += 1
        return await super().execute(ctx, *inputs)


@pytest.fixture
def counter() -> Counter[str]:
    return Counter()


@pytest.fixture
def forked(counter: Counter[str]) -> DAG:
    """a → b → c, and a → d; c and d join in e."""
    with DAG("forked") as dag:
        a = Counted(counter, lambda x: x + 1, name="a")
        b = Counted(counter, lambda x: x * 2, name="b")
        c = Counted(counter, lambda x: x - 3, name="c")
        d = Counted(counter, lambda x: -x, name="d")
        a >> b >> c
        a >> d
        [c, d] >> JoinOperator(name="e")
    return dag


async def test_output_on_a_middle_node_runs_only_its_ancestors(
    forked: DAG, counter: Counter[str]
) -> None:
    assert await forked.arun(1, output=forked.node("b")) == 4
    assert counter == Counter({"a": 1, "b": 1})


@pytest.mark.parametrize("by", ["name", "operator"])
async def test_output_picks_the_node_to_return(forked: DAG, counter: Counter[str], by: str) -> None:
    target = "d" if by == "name" else forked.node("d")
    assert await forked.arun(5, output=target) == -6
    assert counter == Counter({"a": 1, "d": 1})
    assert await forked.arun(5) == [9, -6]


def test_an_unknown_output_node() -> None:
    with DAG("d") as dag:
        MapOperator(lambda x: x, name="a") >> MapOperator(lambda x: x, name="b")
    with pytest.raises(FlowError, match=r"DAG 'd' has no node 'nope' to return \(nodes: a, b\)"):
        dag.run(1, output="nope")


def test_several_leaves_need_output() -> None:
    with DAG("d") as dag:
        MapOperator(lambda x: x, name="a") >> [
            MapOperator(lambda x: x + 1, name="b"),
            MapOperator(lambda x: x + 2, name="c"),
        ]
    with pytest.raises(
        FlowError,
        match=r"DAG 'd' has 2 end nodes \(b, c\); join them into "
        r"one, or pass output=<node> to choose which result "
        r"to return",
    ):
        dag.run(1)
    assert dag.run(1, output="c") == 3


def test_every_root_gets_the_input() -> None:
    with DAG("roots") as dag:
        [
            MapOperator(lambda x: x + 1, name="a"),
            MapOperator(lambda x: x * 10, name="b"),
        ] >> JoinOperator(name="j")
    assert dag.run(2) == [3, 20]


def test_the_input_defaults_to_none() -> None:
    with DAG("none") as dag:
        MapOperator(lambda x: x, name="a")
    assert dag.run() is None


def test_a_changed_dag_runs_its_new_shape() -> None:
    with DAG("grow") as dag:
        a = MapOperator(lambda x: x + 1, name="a")
    assert dag.run(1) == 2
    a >> MapOperator(lambda x: x * 100, name="b", dag=dag)
    assert dag.run(1) == 200


async def count_up(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i


async def test_arun_of_a_stream_output_returns_the_lazy_stream() -> None:
    with DAG("s") as dag:
        StreamifyOperator(count_up, name="src") >> TransformStreamOperator(
            lambda i: i * 2, name="dbl"
        )
    out = await dag.arun(3)
    assert isinstance(out, AsyncIterator)
    assert [chunk async for chunk in out] == [0, 2, 4]
    assert [chunk async for chunk in dag.astream(2)] == [0, 2]


def test_run_gathers_a_stream_output_into_a_list() -> None:
    with DAG("s") as dag:
        StreamifyOperator(count_up, name="src") >> TransformStreamOperator(
            lambda i: i * 2, name="dbl"
        )
    assert dag.run(3) == [0, 2, 4]


# --- concurrency --------------------------------------------------------------------------


async def test_twenty_branches_of_50ms_run_concurrently() -> None:
    with DAG("fanout") as dag:
        root = MapOperator(lambda x: x, name="root")
        join = JoinOperator(name="join")
        for i in range(20):

            async def wait(x: int, i: int = i) -> int:
                await anyio.sleep(0.05)
                return x + i

            root >> MapOperator(wait, name=f"wait{i}") >> join
    started = time.perf_counter()
    out = await dag.arun(0)
    elapsed = time.perf_counter() - started
    assert out == list(range(20))
    assert elapsed < 0.5, f"20 x 50 ms took {elapsed:.3f}s: branches did not overlap"


async def test_independent_nodes_overlap() -> None:
    """Two siblings each wait for the other: only a concurrent runner finishes."""
    a_started, b_started = anyio.Event(), anyio.Event()

    async def a(x: int) -> str:
        a_started.set()
        await b_started.wait()
        return "a"

    async def b(x: int) -> str:
        b_started.set()
        await a_started.wait()
        return "b"

    with DAG("overlap") as dag:
        (
            MapOperator(lambda x: x, name="root")
            >> [MapOperator(a, name="a"), MapOperator(b, name="b")]
            >> JoinOperator()
        )
    with anyio.fail_after(2):
        assert await dag.arun(0) == ["a", "b"]
