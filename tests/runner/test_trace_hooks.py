"""The per-run trace (``Trace``, ``NodeRecord``) and ``RunHook``s."""

from typing import Any

import anyio
import pytest

from smmf_flow import (
    DAG,
    BranchOperator,
    JoinOperator,
    MapOperator,
    NodeFailed,
    NodeRecord,
    NodeState,
    RunContext,
    RunHook,
    StreamifyOperator,
    Trace,
    TransformStreamOperator,
    UnstreamifyOperator,
)
from smmf_flow.dag.trace import short_repr

pytestmark = pytest.mark.anyio


@pytest.fixture
def chain() -> DAG:
    with DAG("chain") as dag:
        (
            MapOperator(lambda x: x + 1, name="a")
            >> MapOperator(lambda x: x * 2, name="b")
            >> MapOperator(lambda x: f"={x}", name="c")
        )
    return dag


class Recorder(RunHook):
    """Writes down every call, with the state the record had at that moment."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def on_run_start(self, ctx: RunContext) -> None:
        self.calls.append(("run start",))

    def on_node_start(self, record: NodeRecord, ctx: RunContext) -> None:
        self.calls.append(("start", record.name, record.state.value))

    def on_node_end(self, record: NodeRecord, ctx: RunContext) -> None:
        self.calls.append(("end", record.name, record.state.value))

    def on_run_end(self, ctx: RunContext, error: BaseException | None) -> None:
        self.calls.append(("run end", type(error).__name__ if error else None))


# --- the trace ----------------------------------------------------------------------------


async def test_a_trace_is_filled_and_the_output_is_unchanged(chain: DAG) -> None:
    trace = Trace()
    assert await chain.arun(1, trace=trace) == "=4" == await chain.arun(1)
    assert list(trace.records) == ["a", "b", "c"]
    assert trace.states() == {"a": "succeeded", "b": "succeeded", "c": "succeeded"}


def test_sync_run_fills_a_trace_too(chain: DAG) -> None:
    trace = Trace()
    assert chain.run(1, trace=trace) == "=4" and len(trace) == 3


async def test_records_time_input_output_and_attempts(chain: DAG) -> None:
    trace = Trace()
    await chain.arun(1, trace=trace)
    a, b, c = trace["a"], trace["b"], trace["c"]
    for record in (a, b, c):
        assert record.started is not None and record.ended is not None
        assert record.duration is not None and record.duration >= 0
        assert record.attempts == 1 and record.error is None
    assert a.ended <= b.started and b.ended <= c.started  # a chain runs in order
    assert (a.input, a.output, b.input, b.output, c.output) == (1, 2, 2, 4, "=4")
    assert c.input_repr == "4" and c.output_repr == "'=4'"


async def test_every_state() -> None:
    """pending, running, succeeded, failed, skipped and cancelled in one run."""
    release = anyio.Event()

    async def held(x: Any) -> Any:
        await release.wait()
        return x

    with DAG("states") as dag:
        route = BranchOperator({lambda x: True: "taken"}, name="route")
        taken = MapOperator(lambda x: x, name="taken")
        skipped = MapOperator(lambda x: x, name="skipped")
        route >> [taken, skipped]
        [taken, skipped] >> JoinOperator(name="join")
        stream = StreamifyOperator(name="stream")
        dag.node("join") >> MapOperator(lambda x: [x, x], name="pair") >> stream
        slow = MapOperator(held, name="slow")
        boom = MapOperator(lambda x: 1 / 0, name="boom")
        stream >> UnstreamifyOperator(name="collect") >> [slow, boom]
        [slow, boom] >> JoinOperator(name="end") >> MapOperator(lambda x: x, name="never")
    trace = Trace()
    seen: dict[str, str] = {}

    class Spy(RunHook):
        def on_node_start(self, record: NodeRecord, ctx: RunContext) -> None:
            seen[record.name] = record.state.value

    with pytest.raises(NodeFailed, match=r"node 'boom' failed"):
        await dag.arun(1, trace=trace, hooks=[Spy()])
    assert seen["slow"] == "running"
    states = trace.states()
    assert states["route"] == states["taken"] == states["join"] == "succeeded"
    assert states["stream"] == states["collect"] == "succeeded"
    assert states["skipped"] == "skipped"
    assert states["boom"] == "failed"
    assert states["slow"] == "cancelled"  # it was running when 'boom' failed
    assert trace["slow"].ended is not None
    assert states["end"] == states["never"] == "pending"
    # every state shows at the end of the run but 'running', seen by the hook above
    assert set(NodeState) - {NodeState.RUNNING} == {NodeState(s) for s in states.values()}


async def test_a_failed_record_keeps_the_error() -> None:
    with DAG("fail") as dag:
        MapOperator(lambda x: 1 / 0, name="boom")
    trace = Trace()
    with pytest.raises(NodeFailed):
        await dag.arun(1, trace=trace)
    record = trace["boom"]
    assert isinstance(record.error, ZeroDivisionError)
    assert record.ended is not None
    assert record.as_dict()["error"] == "ZeroDivisionError: division by zero"


async def test_stream_records_show_streams_and_chunk_counts() -> None:
    with DAG("streams") as dag:
        (
            StreamifyOperator(name="split")
            >> TransformStreamOperator(str.upper, name="up")
            >> UnstreamifyOperator("".join, name="join")
        )
    trace = Trace()
    await dag.arun("abc", trace=trace)
    assert trace["split"].output_repr == "<stream: 3 chunks>"
    assert trace["up"].input_repr == "<stream>"
    assert trace["up"].chunks == 3
    assert trace["join"].output_repr == "'ABC'"


def test_reprs_are_short() -> None:
    assert len(short_repr("x" * 1000)) < 80
    assert len(short_repr(list(range(1000)))) < 80
    record = NodeRecord("n", input="y" * 500, output={"k": "v" * 500})
    assert "..." in record.input_repr and len(record.output_repr) < 100


def test_as_dicts_for_tools(chain: DAG) -> None:
    trace = Trace()
    chain.run(1, trace=trace)
    rows = trace.as_dicts()
    assert [row["node"] for row in rows] == ["a", "b", "c"]
    assert set(rows[0]) == {
        "node",
        "state",
        "started",
        "ended",
        "duration",
        "attempts",
        "input",
        "output",
        "error",
        "events",
    }
    assert rows[2]["output"] == "'=4'" and rows[2]["state"] == "succeeded"


# --- hooks --------------------------------------------------------------------------------


async def test_hooks_see_each_node_start_and_end_in_order(chain: DAG) -> None:
    first, second = Recorder(), Recorder()
    assert await chain.arun(1, hooks=[first, second]) == "=4"
    assert (
        first.calls
        == second.calls
        == [
            ("run start",),
            ("start", "a", "running"),
            ("end", "a", "succeeded"),
            ("start", "b", "running"),
            ("end", "b", "succeeded"),
            ("start", "c", "running"),
            ("end", "c", "succeeded"),
            ("run end", None),
        ]
    )


async def test_hooks_see_a_failure() -> None:
    with DAG("fail") as dag:
        MapOperator(lambda x: x, name="ok") >> MapOperator(lambda x: 1 / 0, name="boom")
    hook = Recorder()
    with pytest.raises(NodeFailed):
        await dag.arun(1, hooks=[hook])
    assert hook.calls == [
        ("run start",),
        ("start", "ok", "running"),
        ("end", "ok", "succeeded"),
        ("start", "boom", "running"),
        ("end", "boom", "failed"),
        ("run end", "NodeFailed"),
    ]


async def test_a_stream_node_ends_when_its_stream_does() -> None:
    with DAG("stream") as dag:
        StreamifyOperator(name="split") >> UnstreamifyOperator(name="collect")
    hook = Recorder()
    assert await dag.arun("ab", hooks=[hook]) == ["a", "b"]
    assert hook.calls == [
        ("run start",),
        ("start", "split", "running"),
        ("start", "collect", "running"),
        ("end", "split", "succeeded"),
        ("end", "collect", "succeeded"),
        ("run end", None),
    ]
