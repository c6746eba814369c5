"""Running a DAG: run/arun/astream/call over every shape, outputs, and concurrency.

``shape`` (conftest.py) is each DAG shape in turn: chain, diamond, wide fan-out/fan-in,
branch + join, nested streams, and a stream fanned out through a tee."""

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from smmf_flow import (
    DAG,
    FlowError,
    InputError,
    JoinOperator,
    MapOperator,
    NodeFailed,
    NodeState,
    RetryPolicy,
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


# --- inline nodes: synchronous work runs in the task that made it ready -------------------


def _task_of_each(*names: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Sync map functions that note the task each runs in, by node name (the task
    itself, held so that no later task can reuse its id)."""
    seen: dict[str, Any] = {}

    def noting(name: str) -> Any:
        def fn(x: int) -> int:
            seen[name] = asyncio.current_task()
            return x

        return fn

    return seen, {name: noting(name) for name in names}


async def test_a_fan_out_of_synchronous_maps_runs_in_one_task() -> None:
    """No task per branch: a spawn costs more than such a node, which never lets
    another task run anyway."""
    names = [f"m{i}" for i in range(10)]
    seen, fns = _task_of_each("root", *names)
    with DAG("inline_fanout") as dag:
        root = MapOperator(fns["root"], name="root")
        root >> [MapOperator(fns[n], name=n) for n in names] >> JoinOperator(total_of)
    trace = Trace()
    assert await dag.arun(1, trace=trace) == 10
    assert len(set(seen.values())) == 1
    assert set(trace.states().values()) == {"succeeded"}
    order = sorted(names, key=lambda n: trace[n].started)
    assert order == names  # in edge order


def total_of(*xs: int) -> int:
    return sum(xs)


async def test_a_node_that_may_suspend_starts_before_its_inline_siblings() -> None:
    """An async sibling (a model call) is under way before synchronous siblings hold
    the loop, and it still overlaps with the others."""
    events: list[str] = []
    release = anyio.Event()

    async def call(x: int) -> str:
        events.append("call started")
        await release.wait()
        return "call"

    def sync_work(x: int) -> str:
        events.append("sync ran")
        release.set()
        return "sync"

    with DAG("mixed") as dag:
        root = MapOperator(lambda x: x, name="root")
        root >> [MapOperator(sync_work, name="sync"), MapOperator(call, name="call")]
        [dag.node("sync"), dag.node("call")] >> JoinOperator()
    with anyio.fail_after(2):
        assert await dag.arun(0) == ["sync", "call"]
    assert events == ["call started", "sync ran"]


async def test_a_blocking_retried_or_timed_map_gets_a_task_of_its_own() -> None:
    """Only plain synchronous work runs inline: a retry's backoff or a thread would
    hold up the siblings, so such nodes run beside them."""
    seen, fns = _task_of_each("root", "plain", "retried", "timed")
    with DAG("own_tasks") as dag:
        root = MapOperator(fns["root"], name="root")
        root >> [
            MapOperator(fns["plain"], name="plain"),
            MapOperator(fns["retried"], name="retried", retry=RetryPolicy(attempts=2)),
            MapOperator(fns["timed"], name="timed", timeout=5),
        ]
        [dag.node(n) for n in ("plain", "retried", "timed")] >> JoinOperator(total_of)
    assert await dag.arun(1) == 3
    assert seen["plain"] == seen["root"]
    assert len({seen["root"], seen["retried"], seen["timed"]}) == 3
    assert not MapOperator(lambda x: x, blocking=True).inline
    assert not MapOperator(_async_identity).inline
    assert MapOperator(lambda x: x).inline and JoinOperator().inline


async def _async_identity(x: int) -> int:
    return x


async def test_an_inline_failure_leaves_its_waiting_inline_siblings_pending() -> None:
    with DAG("inline_failure") as dag:
        root = MapOperator(lambda x: x, name="root")
        boom = MapOperator(lambda x: 1 / x, name="boom")
        after = [MapOperator(lambda x: x, name=f"after{i}") for i in range(3)]
        root >> [boom, *after] >> JoinOperator(name="join")
    trace = Trace()
    with pytest.raises(NodeFailed, match=r"node 'boom' failed") as failed:
        await dag.arun(0, trace=trace)
    assert isinstance(failed.value.__cause__, ZeroDivisionError)
    states = trace.states()
    assert states["boom"] == "failed"
    assert {states[f"after{i}"] for i in range(3)} == {"pending"}
    assert states["join"] == "pending"


async def test_an_input_error_is_given_the_flow_and_the_node_that_raised_it() -> None:
    def refuse(x: int) -> int:
        raise InputError(f"{x} is not allowed")

    with DAG("refusing") as dag:
        MapOperator(lambda x: x, name="first") >> MapOperator(refuse, name="check")
    with pytest.raises(NodeFailed) as failed:
        await dag.arun(7)
    assert str(failed.value) == "node 'check' failed: InputError: 7 is not allowed"
    cause = failed.value.__cause__
    assert isinstance(cause, InputError) and (cause.flow, cause.node) == ("refusing", "check")
    assert str(cause) == "flow 'refusing', node 'check': 7 is not allowed"


async def test_an_input_error_in_a_stream_is_given_its_node_too() -> None:
    def checked(chunk: str) -> str:
        if chunk == "!":
            raise InputError("no '!' here")
        return chunk

    with DAG("streams") as dag:
        StreamifyOperator(list, name="letters") >> TransformStreamOperator(checked, name="check")
    with pytest.raises(NodeFailed) as failed:
        [chunk async for chunk in dag.astream("a!")]
    cause = failed.value.__cause__
    assert (
        isinstance(cause, InputError) and str(cause) == "flow 'streams', node 'check': no '!' here"
    )
