"""AWEL's names and semantics on smmf-flow: ports from generic parameters, the
join after a branch, call/call_stream, visualize_dag, and misuse refused with
clear errors. The tutorial programs themselves run in ``test_programs.py``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from smmf_flow import (
    DAG,
    EMPTY_DATA,
    SKIP_DATA,
    BranchJoinOperator,
    BranchOperator,
    EdgeTypeError,
    FlowError,
    InputError,
    InputOperator,
    InputSource,
    JoinOperator,
    MapOperator,
    NodeFailed,
    NodeState,
    ReduceStreamOperator,
    SimpleCallDataInputSource,
    SimpleInputSource,
    StreamifyAbsOperator,
    Trace,
    UnstreamifyAbsOperator,
    UsageError,
    is_empty_data,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Double(MapOperator[int, int]):
    async def map(self, x):  # no hints: AWEL's form, the class declares the ports
        return x * 2


class Count(StreamifyAbsOperator[int, str]):
    async def streamify(self, n):  # no hints: the class declares the ports
        for i in range(n):
            yield str(i)


class Joined(UnstreamifyAbsOperator[str, str]):
    async def unstreamify(self, it: AsyncIterator[str]) -> str:
        return ",".join([s async for s in it])


def shout(text: str) -> str:
    return text.upper()


# --- generic parameters are port types -------------------------------------------


def test_generic_parameters_are_the_ports_where_hints_are_absent() -> None:
    with DAG("ports"):
        double, count, joined = Double(), Count(), Joined()
    assert (double.input_types, double.output_type) == ((int,), int)
    assert count.input_types == (int,)
    assert count.output_type == AsyncIterator[str]
    assert joined.input_types == (AsyncIterator[str],)
    count >> joined  # a stream of str feeds a stream of str


def test_a_declared_port_is_checked_at_the_edge() -> None:
    with DAG("bad_edge"):
        double = Double(task_name="double")
        loud = MapOperator(shout, task_name="loud")
        with pytest.raises(EdgeTypeError, match=r"'double' outputs int but 'loud' input 1"):
            double >> loud
        count = Count(task_name="count")
        with pytest.raises(EdgeTypeError, match=r"put an UnstreamifyOperator"):
            count >> MapOperator(shout, task_name="shout2")


def test_operators_take_type_parameters_as_awel_does() -> None:
    assert MapOperator[int, int] is not None
    assert ReduceStreamOperator[int, int] is not None
    assert JoinOperator[str] is not None
    assert InputOperator[str] is not None


# --- the join after a branch -------------------------------------------------------


def _branch_dag(**join_options: Any) -> tuple[DAG, list[tuple[Any, ...]], JoinOperator[Any]]:
    seen: list[tuple[Any, ...]] = []

    def combine(*values: Any) -> Any:
        seen.append(values)
        return next(v for v in values if not is_empty_data(v))

    with DAG("branch_join") as dag:
        start = InputOperator(input_source=SimpleCallDataInputSource())
        branch = BranchOperator({lambda x: x % 2 == 0: "even", lambda x: x % 2: "odd"})
        even = MapOperator(lambda x: x * 10, task_name="even")
        odd = MapOperator(lambda x: x * x, task_name="odd")
        join = JoinOperator(combine, **join_options)
        start >> branch >> [even, odd]
        [even, odd] >> join
    return dag, seen, join


async def test_smmf_run_gives_a_join_only_the_parents_that_ran() -> None:
    dag, seen, _join = _branch_dag()
    assert await dag.arun(3) == 9
    assert seen == [(9,)]


async def test_an_awel_call_gives_a_join_skip_data_for_a_skipped_parent() -> None:
    _dag, seen, join = _branch_dag()
    assert await join.call(call_data=3) == 9
    assert await join.call(call_data=4) == 40
    assert seen == [(SKIP_DATA, 9), (40, SKIP_DATA)]


async def test_the_can_skip_in_branch_keyword_gives_awel_semantics_to_dag_run() -> None:
    dag, seen, _join = _branch_dag(can_skip_in_branch=False)
    trace = Trace()
    assert await dag.arun(4, trace=trace) == 40
    assert seen == [(40, SKIP_DATA)]
    assert trace.records["odd"].state is NodeState.SKIPPED  # the trace still records it


async def test_a_child_no_branch_names_runs_in_a_call_and_is_skipped_by_dag_run() -> None:
    with DAG("unnamed") as dag:
        branch = BranchOperator({lambda x: x > 0: "positive"}, task_name="branch")
        positive = MapOperator(lambda x: "+", task_name="positive")
        other = MapOperator(lambda x: "other", task_name="other")
        join = JoinOperator(lambda *xs: [str(x) for x in xs], task_name="join")
        branch >> [positive, other]
        [positive, other] >> join
    assert await join.call(call_data=-1) == ["EmptyData(SKIP_DATA)", "other"]
    trace = Trace()
    assert await dag.arun(-1, trace=trace) is None  # nothing chosen: all skipped
    assert trace.records["join"].state is NodeState.SKIPPED
    assert await dag.arun(1) == ["+"]


async def test_branch_join_operator_returns_the_branch_that_ran() -> None:
    with DAG("branch_join_operator"):
        start = InputOperator(input_source=SimpleCallDataInputSource())
        branch = BranchOperator({lambda s: s.startswith("a"): "a", lambda s: True: "b"})
        a = MapOperator(lambda s: "A:" + s, task_name="a")
        b = MapOperator(lambda s: "B:" + s, task_name="b")
        join = BranchJoinOperator()
        start >> branch >> [a, b]
        [a, b] >> join
    assert await join.call(call_data="zeta") == "B:zeta"
    assert await join.call(call_data="alpha") == "A:alpha"


# --- calls ---------------------------------------------------------------------------


async def test_call_stream_streams_a_stream_and_wraps_a_value() -> None:
    with DAG("streams"):
        count = Count()
        joined = Joined()
        count >> joined
    assert [c async for c in await count.call_stream(call_data=3)] == ["0", "1", "2"]
    assert [c async for c in await joined.call_stream(call_data=3)] == ["0,1,2"]
    assert await joined.call(3) == "0,1,2"


async def test_independent_nodes_of_a_call_run_concurrently() -> None:
    """Each side waits for the other to start: only a concurrent run ends."""
    started = {"left": anyio.Event(), "right": anyio.Event()}

    def side(me: str, other: str) -> Any:
        async def run(x: int) -> int:
            started[me].set()
            await started[other].wait()
            return x

        return run

    with DAG("concurrent"):
        start = InputOperator(input_source=SimpleCallDataInputSource())
        left = MapOperator(side("left", "right"), task_name="left")
        right = MapOperator(side("right", "left"), task_name="right")
        both = JoinOperator(lambda a, b: a + b)
        start >> [left, right]
        [left, right] >> both
    with anyio.fail_after(10):
        assert await both.call(call_data=2) == 4


async def test_node_names_and_ids() -> None:
    with DAG("names"):
        a = MapOperator(lambda x: x, task_name="a", task_id="id-a")
        b = MapOperator(lambda x: x, name="b")
        b.set_upstream(a)
    assert (a.node_name, a.node_id, b.node_name, b.node_id) == ("a", "id-a", "b", "b")
    assert a.can_skip_in_branch() and b.can_skip_in_branch()
    assert await b.call(call_data=0) == 0  # 0 is data, not "no data"


async def test_input_sources() -> None:
    with DAG("call_source"):
        call = InputOperator(input_source=InputSource.from_callable())
    with DAG("fixed_source"):
        fixed = InputOperator(input_source=SimpleInputSource([1, 2]))
    assert await call.call(call_data={"k": 1}) == {"k": 1}
    assert await fixed.call() == [1, 2]
    assert await fixed.call(call_data="ignored") == [1, 2]
    assert fixed.output_type is list


async def test_an_iterator_source_streams_once_and_a_list_every_time() -> None:
    async def numbers() -> AsyncIterator[int]:
        for i in range(3):
            yield i

    with DAG("once"):
        once = InputOperator(input_source=SimpleInputSource(numbers()), task_name="once")
    with DAG("every_time"):
        every = InputOperator(input_source=SimpleInputSource([1, 2], streaming=True))
    assert [i async for i in await once.call_stream()] == [0, 1, 2]
    with pytest.raises(NodeFailed, match=r"'once'") as failed:
        await once.call_stream()
    assert "its iterator was read by an earlier run" in str(failed.value.__cause__)
    for _ in range(2):
        assert [i async for i in await every.call_stream()] == [1, 2]


def test_blocking_call_stream_gives_the_chunks() -> None:
    with DAG("blocking_stream"):
        count = Count()
    assert list(count._blocking_call_stream(call_data=2)) == ["0", "1"]


def test_empty_data_markers() -> None:
    assert not EMPTY_DATA and not SKIP_DATA
    assert str(SKIP_DATA) == "EmptyData(SKIP_DATA)"
    assert is_empty_data(EMPTY_DATA) and is_empty_data(SKIP_DATA)
    assert not is_empty_data(None) and not is_empty_data(0)


def test_visualize_dag_writes_its_sources_without_graphviz(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with DAG("vis") as dag:
        MapOperator(lambda x: x, task_name="a") >> [
            MapOperator(lambda x: x, task_name="b"),
            MapOperator(lambda x: x, task_name="c"),
        ]
    path = Path(dag.visualize_dag(view=False, directory=tmp_path))
    assert path == tmp_path / "dag-vis-vis.gv"
    assert '"a" -> "b";' in path.read_text() and '"a" -> "c";' in path.read_text()
    assert "a --> c;" in path.with_suffix(".md").read_text()
    assert capsys.readouterr().out.splitlines() == [
        "<MapOperator 'a'>",
        " -> <MapOperator 'b'>",
        " -> <MapOperator 'c'>",
    ]


# --- misuse, refused with what and where ---------------------------------------------


async def test_call_on_a_node_of_no_dag() -> None:
    with pytest.raises(FlowError, match=r"cannot call\(\) node 'loose' .*belongs to no DAG"):
        await MapOperator(lambda x: x, task_name="loose").call(call_data=1)


async def test_call_without_call_data_names_the_root_that_reads_it() -> None:
    with DAG("no_data"):
        root = MapOperator(lambda x: x, task_name="root")
        end = MapOperator(lambda x: x, task_name="end")
        root >> end
    with pytest.raises(InputError, match=r"call\(\) on node 'end' was given no call_data, "):
        await end.call()
    with DAG("no_data_input"):
        source = InputOperator(input_source=SimpleCallDataInputSource(), task_name="source")
    with pytest.raises(InputError, match=r"root node 'source' reads it"):
        await source.call()


async def test_call_data_of_the_wrong_shape_fails_naming_the_node() -> None:
    with DAG("shape"):
        start = InputOperator(input_source=SimpleCallDataInputSource())
        pick = MapOperator(lambda x: x["t1"], task_name="pick")
        start >> pick
    with pytest.raises(NodeFailed, match=r"'pick'") as failed:
        await pick.call(call_data=5)
    assert isinstance(failed.value.__cause__, TypeError)


async def test_dag_context_arguments_are_refused() -> None:
    with DAG("ctx"):
        node = MapOperator(lambda x: x, task_name="node")
    with pytest.raises(UsageError, match=r"takes call_data only here"):
        await node.call(1, dag_ctx=object())


async def test_blocking_call_inside_an_event_loop_is_refused() -> None:
    with DAG("blocking"):
        node = MapOperator(lambda x: x, task_name="node")
    with pytest.raises(UsageError, match=r"node 'node': cannot call it synchronously"):
        node._blocking_call(call_data=1)


def test_constructor_misuse() -> None:
    with pytest.raises(FlowError, match=r"name='a' and task_name='b' name one node twice"):
        MapOperator(lambda x: x, name="a", task_name="b")
    with pytest.raises(FlowError, match=r"takes source= or input_source="):
        InputOperator(InputSource.from_data(1), input_source=InputSource.from_data(2))
    with pytest.raises(FlowError, match=r"BranchOperator needs branches"):
        BranchOperator(task_name="b")
    with pytest.raises(FlowError, match=r"each branch must be \(predicate, node\)"):
        BranchOperator({lambda x: True: lambda x: "dynamic"}, task_name="b")
    with pytest.raises(FlowError, match=r"ReduceStreamOperator needs reduce_function"):
        ReduceStreamOperator(task_name="r")

    class NoStreamify(StreamifyAbsOperator[int, int]):
        pass

    with pytest.raises(FlowError, match=r"NoStreamify subclasses StreamifyAbsOperator but"):
        NoStreamify()


async def test_a_branches_override_that_returns_no_mapping_fails_the_run() -> None:
    class Bad(BranchOperator[int, int]):
        async def branches(self) -> Any:
            return {"not callable": "x"}

    with DAG("bad_branches"):
        start = InputOperator(input_source=SimpleCallDataInputSource())
        bad = Bad(task_name="bad")
        x = MapOperator(lambda v: v, task_name="x")
        start >> bad >> x
    with pytest.raises(NodeFailed, match=r"'bad'") as failed:
        await x.call(call_data=1)
    assert "each branch must be (predicate, node)" in str(failed.value.__cause__)
