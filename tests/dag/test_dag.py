"""``DAG``: collecting nodes, naming them, one DiGraph, and refusing foreign nodes."""

import networkx as nx
import pytest

from smmf_flow import (
    DAG,
    DuplicateNodeError,
    FlowError,
    ForeignNodeError,
    InputOperator,
    JoinOperator,
    MapOperator,
)
from smmf_flow.dag.operator import CURRENT_DAG


def ident(x: object) -> object:
    return x


def test_with_collects_the_operators_made_inside() -> None:
    outside = MapOperator(ident, name="outside")
    with DAG("d") as dag:
        a = MapOperator(ident, name="a")
        b = MapOperator(ident, name="b")
    after = MapOperator(ident, name="after")
    assert dag.nodes == [a, b]
    assert a.dag is dag and b.dag is dag
    assert outside.dag is None and after.dag is None


def test_with_leaves_no_global_state_behind() -> None:
    assert CURRENT_DAG.get() is None
    with pytest.raises(RuntimeError), DAG("d"):
        raise RuntimeError("inside")
    assert CURRENT_DAG.get() is None


def test_nested_dags_collect_into_the_innermost() -> None:
    with DAG("outer") as outer:
        a = MapOperator(ident, name="a")
        with DAG("inner") as inner:
            b = MapOperator(ident, name="b")
        c = MapOperator(ident, name="c")
    assert outer.nodes == [a, c]
    assert inner.nodes == [b]


def test_the_same_dag_can_be_reopened() -> None:
    dag = DAG("d")
    with dag:
        a = MapOperator(ident, name="a")
    with dag:
        b = MapOperator(ident, name="b")
    a >> b
    assert dag.nodes == [a, b]


def test_an_explicit_dag_argument_adds_without_with() -> None:
    dag = DAG("d")
    op = MapOperator(ident, name="op", dag=dag)
    assert dag.nodes == [op]


def test_unnamed_operators_get_kind_and_counter_names() -> None:
    with DAG("d") as dag:
        m1 = MapOperator(ident)
        taken = MapOperator(ident, name="map_2")
        m3 = MapOperator(ident)
        entry = InputOperator()
        join = JoinOperator()
    assert [m1.name, taken.name, m3.name] == ["map_1", "map_2", "map_3"]
    assert entry.name == "input_4"
    assert join.name == "join_5"
    assert len(dag.nodes) == 5


def test_duplicate_names_are_refused() -> None:
    with DAG("d"):
        MapOperator(ident, name="x")
        with pytest.raises(
            DuplicateNodeError,
            match=r"DAG 'd' already has a node named 'x'; give each node a "
            r"unique name",
        ):
            MapOperator(ident, name="x")


def test_a_node_of_another_dag_cannot_be_connected() -> None:
    with DAG("one"):
        a = MapOperator(ident, name="a")
    with DAG("two"):
        b = MapOperator(ident, name="b")
    with pytest.raises(
        ForeignNodeError, match=r"cannot connect 'a' >> 'b' in DAG 'one': 'b' belongs to DAG 'two'"
    ):
        a >> b
    with pytest.raises(
        ForeignNodeError, match=r"cannot connect 'b' >> 'a' in DAG 'two': 'a' belongs to DAG 'one'"
    ):
        a << b


def test_a_node_of_another_dag_cannot_be_added() -> None:
    with DAG("one"):
        a = MapOperator(ident, name="a")
    with pytest.raises(
        ForeignNodeError,
        match=r"operator 'a' already belongs to DAG 'one'; it cannot join DAG "
        r"'two'",
    ):
        DAG("two").add(a)


def test_adding_a_node_twice_to_its_own_dag_is_harmless() -> None:
    with DAG("d") as dag:
        a = MapOperator(ident, name="a")
    assert dag.add(a) is a
    assert dag.nodes == [a]


def test_the_graph_is_one_digraph_with_ops_and_slots() -> None:
    with DAG("d") as dag:
        a = MapOperator(ident, name="a")
        b = MapOperator(ident, name="b")
        j = JoinOperator(name="j")
        a >> j
        b >> j
    assert isinstance(dag.graph, nx.DiGraph)
    assert dag.graph.nodes["a"]["op"] is a
    assert dag.graph.edges["a", "j"]["slot"] == 0
    assert dag.graph.edges["b", "j"]["slot"] == 1


def test_roots_leaves_and_neighbours() -> None:
    with DAG("d") as dag:
        a = MapOperator(ident, name="a")
        b = MapOperator(ident, name="b")
        c = MapOperator(ident, name="c")
        j = JoinOperator(name="j")
        a >> [b, c]
        [c, b] >> j
    assert dag.roots == [a]
    assert dag.leaves == [j]
    assert dag.upstream(j) == [c, b]  # in the order the edges were made
    assert set(dag.downstream(a)) == {b, c}


def test_node_looks_up_by_name() -> None:
    with DAG("d") as dag:
        a = MapOperator(ident, name="a")
        MapOperator(ident, name="b")
    assert dag.node("a") is a
    with pytest.raises(FlowError, match=r"DAG 'd' has no node 'zz' \(nodes: a, b\)"):
        dag.node("zz")


def test_every_change_bumps_the_version() -> None:
    dag = DAG("d")
    v0 = dag.version
    with dag:
        a = MapOperator(ident, name="a")
        b = MapOperator(ident, name="b")
    v1 = dag.version
    a >> b
    v2 = dag.version
    a >> b  # already there: no change
    assert v0 < v1 < v2 == dag.version


def test_repr_counts_nodes() -> None:
    with DAG("d") as dag:
        MapOperator(ident)
    assert repr(dag) == "<DAG 'd': 1 nodes>"
