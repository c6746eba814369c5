"""Whole-graph validation: everything here is refused before any node runs."""

from typing import Any

import pytest

from smmf_flow import (
    DAG,
    BranchOperator,
    CycleError,
    FlowError,
    JoinOperator,
    MapOperator,
    Operator,
    RunContext,
)


class Counting(MapOperator):
    """A map that counts its calls, to show nothing ran."""

    def __init__(self, **options: Any) -> None:
        self.calls = 0
        super().__init__(**options)

    async def map(self, x: Any) -> Any:
        self.calls += 1
        return x


def test_a_cycle_is_printed_in_the_message() -> None:
    with DAG("loop") as dag:
        a, b, c = Counting(name="a"), Counting(name="b"), Counting(name="c")
        a >> b >> c >> a
    with pytest.raises(CycleError, match=r"^DAG 'loop' has a cycle: a >> b >> c >> a$"):
        dag.validate()


def test_a_self_loop_is_a_cycle() -> None:
    with DAG("self") as dag:
        a = Counting(name="a")
        a >> a
    with pytest.raises(CycleError, match=r"DAG 'self' has a cycle: a >> a$"):
        dag.validate()


def test_a_cycle_stops_the_run_before_any_node_runs() -> None:
    with DAG("loop") as dag:
        first = Counting(name="first")
        merge = JoinOperator(name="merge")
        b = Counting(name="b")
        first >> merge >> b >> merge
    with pytest.raises(CycleError, match=r"merge >> b >> merge"):
        dag.run(1)
    assert first.calls == b.calls == 0


def test_an_empty_dag_is_refused() -> None:
    with pytest.raises(FlowError, match=r"DAG 'empty' has no nodes"):
        DAG("empty").validate()


def test_a_single_node_is_a_valid_flow() -> None:
    with DAG("one") as dag:
        Counting(name="only")
    dag.validate()
    assert dag.run(5) == 5


@pytest.mark.parametrize(
    ("lonely", "message"),
    [
        (["z"], r"^node 'z': connects to nothing; chain it with >> or remove it$"),
        (
            ["y", "z"],
            r"DAG 'd': nodes 'y', 'z' connect to nothing; chain them with >> or "
            r"remove them",
        ),
    ],
)
def test_a_dangling_node_is_named(lonely: list[str], message: str) -> None:
    with DAG("d") as dag:
        Counting(name="a") >> Counting(name="b")
        for name in lonely:
            Counting(name=name)
    with pytest.raises(FlowError, match=message) as error:
        dag.validate()
    assert error.value.node == (lonely[0] if len(lonely) == 1 else None)


@pytest.mark.parametrize("via", ["branches", "default"])
def test_a_branch_to_a_node_that_is_not_its_child(via: str) -> None:
    with DAG("d") as dag:
        kept = Counting(name="kept")
        stray = Counting(name="stray")
        if via == "branches":
            branch = BranchOperator({bool: kept, (lambda x: not x): "stray"}, name="route")
        else:
            branch = BranchOperator({bool: kept}, default=stray, name="route")
        branch >> kept
        Counting(name="feed") >> stray
    with pytest.raises(
        FlowError,
        match=(
            r"^node 'route': the branch routes to 'stray', which is not downstream of it; "
            r"add `route >> <node>` for each branch$"
        ),
    ) as error:
        dag.validate()
    assert error.value.node == "route"


def test_a_nodes_own_check_runs_with_the_registry() -> None:
    seen: list[Any] = []

    class NeedsModel(Operator):
        async def execute(self, ctx: RunContext, text: str) -> str:
            return text

        def check(self, registry: Any) -> None:
            seen.append(registry)
            raise FlowError("no model 'm' in the registry", node=self.name)

    with DAG("d") as dag:
        NeedsModel(name="llm")
    registry = object()
    with pytest.raises(FlowError, match=r"node 'llm': no model 'm' in the registry"):
        dag.validate(registry)
    assert seen == [registry]


def test_validation_is_redone_after_the_dag_changes() -> None:
    with DAG("d") as dag:
        a, b = Counting(name="a"), Counting(name="b")
        a >> b
    dag.validate()
    b >> a
    with pytest.raises(CycleError):
        dag.validate()
