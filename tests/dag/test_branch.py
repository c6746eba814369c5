"""``BranchOperator``: predicates pick children; the rest are skipped, and so on down."""

from typing import Any

import anyio
import pytest

from smmf_flow import DAG, BranchOperator, FlowError, JoinOperator, MapOperator, Trace
from smmf_flow.dag.branch import Branched


def is_even(x: int) -> bool:
    return x % 2 == 0


def is_big(x: int) -> bool:
    return x > 100


def build(**options: Any) -> DAG:
    """route → even / odd → join; ``options`` go to the branch."""
    with DAG("branch") as dag:
        even = MapOperator(lambda x: f"even {x}", name="even")
        odd = MapOperator(lambda x: f"odd {x}", name="odd")
        route = BranchOperator(options.pop("branches", {is_even: even}), name="route", **options)
        route >> [even, odd]
        [even, odd] >> JoinOperator(name="join")
    return dag


def traced(dag: DAG, value: Any) -> tuple[Any, dict[str, str]]:
    """The run's output and each node's final state."""
    trace = Trace()
    return dag.run(value, trace=trace), trace.states()


def test_the_branch_taken_runs_and_the_other_is_skipped() -> None:
    dag = build(branches={is_even: "even", (lambda x: not is_even(x)): "odd"})
    output, states = traced(dag, 4)
    assert output == "even 4"
    assert states == {
        "route": "succeeded",
        "even": "succeeded",
        "odd": "skipped",
        "join": "succeeded",
    }
    assert dag.run(3) == "odd 3"


def test_every_predicate_that_holds_runs() -> None:
    dag = build(branches=[(is_even, "even"), (lambda x: x > 0, "odd")])
    assert dag.run(2) == ["even 2", "odd 2"]


def test_first_match_runs_only_the_first() -> None:
    dag = build(branches=[(is_even, "even"), (lambda x: x > 0, "odd")], first_match=True)
    assert dag.run(2) == "even 2"
    assert dag.run(3) == "odd 3"


def test_default_runs_only_when_nothing_holds() -> None:
    dag = build(branches={is_big: "even"}, default="odd")
    assert dag.run(200) == "even 200"
    assert dag.run(2) == "odd 2"


def test_nothing_holds_and_no_default_skips_everything_below() -> None:
    dag = build(branches={is_big: "even"})
    output, states = traced(dag, 2)
    assert output is None
    assert states == {"route": "succeeded", "even": "skipped", "odd": "skipped", "join": "skipped"}


def test_async_predicates_and_operator_targets() -> None:
    async def slow_even(x: int) -> bool:
        await anyio.sleep(0)
        return is_even(x)

    with DAG("async") as dag:
        even = MapOperator(lambda x: "even", name="even")
        odd = MapOperator(lambda x: "odd", name="odd")
        BranchOperator({slow_even: even}, default=odd, name="route") >> [even, odd]
        [even, odd] >> JoinOperator(name="join")
    assert dag.run(8) == "even"
    assert dag.run(7) == "odd"


def test_the_skip_propagates_down_a_chain_until_a_join() -> None:
    with DAG("deep") as dag:
        route = BranchOperator({is_even: "short"}, default="long1", name="route")
        short = MapOperator(lambda x: "short", name="short")
        long1 = MapOperator(lambda x: x, name="long1")
        long2 = MapOperator(lambda x: x, name="long2")
        long3 = MapOperator(lambda x: "long", name="long3")
        route >> [short, long1]
        long1 >> long2 >> long3
        [short, long3] >> JoinOperator(name="join")
    output, states = traced(dag, 2)
    assert output == "short"
    assert states == {
        "route": "succeeded",
        "short": "succeeded",
        "long1": "skipped",
        "long2": "skipped",
        "long3": "skipped",
        "join": "succeeded",
    }


def test_a_plain_node_below_a_skipped_parent_is_skipped_too() -> None:
    with DAG("plain") as dag:
        route = BranchOperator({is_even: "a"}, default="b", name="route")
        a = MapOperator(lambda x: "a", name="a")
        b = MapOperator(lambda x: "b", name="b")
        both = MapOperator(lambda x, y: x + y, name="both")
        route >> [a, b]
        [a, b] >> both
    trace = Trace()
    assert dag.run(2, trace=trace) is None
    assert trace["both"].state == "skipped"


def test_the_branch_passes_its_input_on_unchanged() -> None:
    with DAG("value") as dag:
        route = BranchOperator({lambda d: d["n"] > 0: "keep"}, name="route")
        route >> MapOperator(lambda x: x, name="keep")
    request = {"n": 2}
    assert dag.run(request) is request


@pytest.mark.anyio
async def test_execute_returns_a_branched_decision() -> None:
    route = BranchOperator([(is_even, "a"), (is_big, "b")], default="c")
    assert route.targets() == ["a", "b", "c"]
    assert await route.execute(None, 200) == Branched(200, frozenset({"a", "b"}))
    assert await route.execute(None, 3) == Branched(3, frozenset({"c"}))


def test_each_branch_must_be_a_predicate_and_node() -> None:
    with pytest.raises(
        FlowError,
        match=r"BranchOperator: each branch must be \(predicate, "
        r"node\), got \('x', 'y'\)",
    ):
        BranchOperator([("x", "y")])  # type: ignore[list-item]


@pytest.mark.anyio
async def test_calling_the_branch_itself_returns_its_input() -> None:
    with DAG("call") as dag:
        route = BranchOperator({is_even: "even"}, name="route")
        route >> MapOperator(lambda x: x, name="even")
    assert await dag.arun(4, output=route) == 4
    assert await dag.arun(3, output="route") == 3
