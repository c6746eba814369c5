"""The operator contract: ``>>``/``<<`` chaining and the edge check made at ``>>`` time."""

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from smmf_flow import (
    DAG,
    EdgeTypeError,
    FlowError,
    JoinOperator,
    MapOperator,
    Operator,
    RunContext,
    StreamifyOperator,
    TransformStreamOperator,
)
from smmf_flow.dag import Graph


def to_text(x: int) -> str:
    return str(x)


def square(x: int) -> int:
    return x * x


def shout(text: str) -> str:
    return text.upper()


async def words(text: str) -> AsyncIterator[str]:
    for word in text.split():
        yield word


def edges(dag: DAG) -> set[tuple[str, str]]:
    return set(dag.graph.edges)


@pytest.fixture
def dag() -> DAG:
    return DAG("ops")


def maps(dag: DAG, *names: str) -> list[MapOperator]:
    with dag:
        return [MapOperator(lambda x: x, name=n) for n in names]


# --- chaining ----------------------------------------------------------------------------


def test_rshift_returns_the_right_operand(dag: DAG) -> None:
    a, b, c = maps(dag, "a", "b", "c")
    assert (a >> b) is b
    assert (b >> c) is c
    assert edges(dag) == {("a", "b"), ("b", "c")}


def test_rshift_fans_out_to_a_list(dag: DAG) -> None:
    a, b, c = maps(dag, "a", "b", "c")
    assert (a >> [b, c]) == [b, c]
    assert edges(dag) == {("a", "b"), ("a", "c")}


def test_a_list_fans_in_with_rshift(dag: DAG) -> None:
    a, b = maps(dag, "a", "b")
    with dag:
        j = JoinOperator(name="j")
    assert ([a, b] >> j) is j
    assert [op.name for op in dag.upstream(j)] == ["a", "b"]
    assert dag.graph.edges["a", "j"]["slot"] == 0
    assert dag.graph.edges["b", "j"]["slot"] == 1


def test_lshift_points_the_other_way(dag: DAG) -> None:
    a, b, c = maps(dag, "a", "b", "c")
    assert (c << b) is b
    c << b << a  # chained for its side effect
    assert edges(dag) == {("b", "c"), ("a", "b")}


def test_a_list_lshift_fans_out_from_the_right_operand(dag: DAG) -> None:
    a, b, c = maps(dag, "a", "b", "c")
    assert ([a, b] << c) is c
    assert edges(dag) == {("c", "a"), ("c", "b")}


def test_lshift_a_list_fans_in(dag: DAG) -> None:
    a, b = maps(dag, "a", "b")
    with dag:
        j = JoinOperator(name="j")
    assert (j << [a, b]) == [a, b]
    assert edges(dag) == {("a", "j"), ("b", "j")}


def test_the_same_edge_twice_is_one_edge(dag: DAG) -> None:
    a, b = maps(dag, "a", "b")
    a >> b
    a >> b
    assert dag.graph.number_of_edges() == 1


def test_an_operator_made_outside_joins_the_dag_of_its_partner(dag: DAG) -> None:
    (a,) = maps(dag, "a")
    b = MapOperator(lambda x: x, name="b")
    assert b.dag is None
    a >> b
    assert b.dag is dag
    assert edges(dag) == {("a", "b")}


def test_only_operators_chain(dag: DAG) -> None:
    (a,) = maps(dag, "a")
    with pytest.raises(
        FlowError,
        match=r"cannot chain 'a' >> \['x'\]: only an operator or a "
        r"list of operators",
    ):
        a >> ["x"]  # type: ignore[list-item]
    with pytest.raises(FlowError, match=r"cannot chain 'a' << 3"):
        a << 3  # type: ignore[operator]


def test_operators_of_no_dag_cannot_connect() -> None:
    a = MapOperator(lambda x: x, name="a")
    b = MapOperator(lambda x: x, name="b")
    with pytest.raises(FlowError, match=r"cannot connect 'a' >> 'b': neither belongs to a DAG"):
        a >> b


# --- the edge check --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("up", "down", "message"),
    [
        (
            (MapOperator, to_text),
            (MapOperator, square),
            r"^cannot connect 'up' >> 'down': 'up' outputs str but 'down' input 1 expects int$",
        ),
        (
            (StreamifyOperator, words),
            (MapOperator, shout),
            r"^cannot connect 'up' >> 'down': 'up' outputs AsyncIterator\[str\] but 'down' input 1 "
            r"expects str; a stream cannot feed a node that takes a value: put an "
            r"UnstreamifyOperator or ReduceStreamOperator between them$",
        ),
        (
            (MapOperator, to_text),
            (TransformStreamOperator, shout),
            r"^cannot connect 'up' >> 'down': 'up' outputs str but 'down' input 1 expects "
            r"AsyncIterator\[str\]; a value cannot feed a stream input: put a StreamifyOperator "
            r"between them$",
        ),
    ],
    ids=["str into int", "stream into value", "value into stream"],
)
def test_an_incompatible_edge_names_both_ends_and_types(
    dag: DAG, up: Any, down: Any, message: str
) -> None:
    with dag:
        upstream = up[0](up[1], name="up")
        downstream = down[0](down[1], name="down")
    with pytest.raises(EdgeTypeError, match=message):
        upstream >> downstream
    assert not dag.graph.has_edge("up", "down")


def test_too_many_inputs_for_a_one_input_node(dag: DAG) -> None:
    a, b, m = maps(dag, "a", "b", "m")
    with pytest.raises(
        EdgeTypeError,
        match=(
            r"cannot connect 'b' >> 'm': 'm' takes 1 input and already has 1 upstream; "
            r"combine several upstreams with a JoinOperator first"
        ),
    ):
        [a, b] >> m
    assert edges(dag) == {("a", "m")}


def test_too_many_inputs_for_a_two_input_join(dag: DAG) -> None:
    a, b, c = maps(dag, "a", "b", "c")
    with dag:
        j = JoinOperator(lambda x, y: (x, y), name="j")
    with pytest.raises(EdgeTypeError, match=r"'j' takes 2 inputs and already has 2 upstream"):
        [a, b, c] >> j


def pair(n: int, label: str) -> str:
    return f"{label}{n}"


def total(*xs: int) -> int:
    return sum(xs)


@pytest.mark.parametrize(
    ("combine", "fits", "misfit", "message"),
    [
        # each input slot has its own type
        (pair, [square], square, r"'bad' outputs int but 'j' input 2 expects str"),
        # variadic inputs all take the type of the star argument
        (total, [square] * 3, to_text, r"'bad' outputs str but 'j' input 4 expects int"),
    ],
)
def test_each_input_slot_is_checked(
    dag: DAG, combine: Any, fits: list[Any], misfit: Any, message: str
) -> None:
    with dag:
        good = [MapOperator(fn, name=f"good{i}") for i, fn in enumerate(fits)]
        bad = MapOperator(misfit, name="bad")
        j = JoinOperator(combine, name="j")
    good >> j
    with pytest.raises(EdgeTypeError, match=message):
        bad >> j


def test_explicit_port_declarations_override_hints(dag: DAG) -> None:
    with dag:
        declared = MapOperator(lambda x: str(x), name="declared", input_type=int, output_type=str)
        sq = MapOperator(square, name="square")
    assert declared.input_types == (int,)
    assert declared.output_type is str
    with pytest.raises(EdgeTypeError, match=r"'declared' outputs str but 'square' input 1"):
        declared >> sq


def test_a_stream_output_type_makes_a_stream_operator(dag: DAG) -> None:
    with dag:
        split = StreamifyOperator(words)
        text = MapOperator(to_text)
    assert split.streams and split.output_type == AsyncIterator[str]
    assert not text.streams


# --- the rest of the contract ------------------------------------------------------------


def test_an_operator_without_execute_is_refused_when_made(dag: DAG) -> None:
    with pytest.raises(
        FlowError,
        match=r"^node 'bare': Operator defines no execute\(\); see "
        r"the operator contract in smmf_flow.dag.operator$",
    ):
        Operator(name="bare")
    assert not dag.nodes


class Untyped(Operator):
    async def execute(self, ctx, *inputs):  # type: ignore[no-untyped-def]
        return inputs


def test_untyped_ports_take_and_give_anything(dag: DAG) -> None:
    """``execute(self, ctx, *inputs)`` without hints takes any number of anything."""
    with dag:
        op = Untyped()
    assert op.input_types == (Any,) and op.output_type is Any and op.variadic
    assert op.input_type_at(0) is Any and op.input_type_at(5) is Any


# --- ports from execute's signature ------------------------------------------------------


class Ask(Operator):
    """Two typed inputs; ``ctx`` is not a port; a defaulted parameter is not one either."""

    async def execute(
        self, ctx: RunContext, question: str, k: int, verbose: bool = False
    ) -> list[str]:
        return [question] * k


class Shout(Operator):
    """Its ``ctx`` hint names a type this module never imports (as under TYPE_CHECKING)."""

    async def execute(self, ctx: "NotImportedHere", text: str) -> str:  # type: ignore[name-defined]  # noqa: F821
        return text.upper()


class Concat(Operator):
    async def execute(self, ctx: RunContext, *parts: str) -> str:
        return "".join(parts)


class Letters(Operator):
    async def execute(self, ctx: RunContext, text: str) -> AsyncIterator[str]:
        return words(" ".join(text))


def test_ports_come_from_execute_type_hints(dag: DAG) -> None:
    with dag:
        ask = Ask(name="ask")
    assert ask.input_types == (str, int) and not ask.variadic
    assert ask.output_type == list[str] and not ask.streams
    assert ask.input_type_at(2) is None


def test_an_unresolvable_hint_hides_no_other(dag: DAG) -> None:
    with dag:
        shout = Shout(name="shout")
    assert shout.input_types == (str,) and shout.output_type is str


def test_star_parameter_takes_any_number_of_that_type(dag: DAG) -> None:
    with dag:
        concat = Concat(name="concat")
        texts = [MapOperator(to_text, name=f"t{i}") for i in range(3)]
        number = MapOperator(square, name="number")
    texts >> concat
    number >> MapOperator(to_text, name="also_text") >> concat
    assert dag.run(7, output=concat) == "77749"
    with pytest.raises(
        EdgeTypeError,
        match=r"'number' outputs int but 'concat' input 5 "
        r"expects str",
    ):
        number >> concat


def test_a_stream_return_hint_makes_a_stream_operator_from_execute(dag: DAG) -> None:
    with dag:
        letters = Letters(name="letters")
        sq = MapOperator(square, name="square")
    assert letters.streams and letters.output_type == AsyncIterator[str]
    with pytest.raises(
        EdgeTypeError,
        match=r"'letters' outputs AsyncIterator\[str\] but "
        r"'square' input 1 expects int; a stream cannot "
        r"feed a node that takes a value",
    ):
        letters >> sq


def test_the_check_at_rshift_uses_the_derived_ports(dag: DAG) -> None:
    with dag:
        text, number = MapOperator(to_text, name="text"), MapOperator(square, name="number")
        ask = Ask(name="ask")
    text >> ask
    number >> ask
    assert dag.run(3, output=ask) == ["3"] * 9
    with dag:
        wrong = Ask(name="wrong")
    with pytest.raises(
        EdgeTypeError,
        match=r"'number' outputs int but 'wrong' input 1 "
        r"expects str",
    ):
        number >> wrong


def test_declared_types_override_the_derived_ones(dag: DAG) -> None:
    with dag:
        ask = Ask(name="ask", input_type=dict[str, Any], output_type=str)
    assert ask.input_types == (dict[str, Any],) and ask.output_type is str


def test_an_async_generator_execute_is_refused_where_the_class_is_made() -> None:
    with pytest.raises(
        FlowError,
        match=r"Gen.execute is an async generator; make it a "
        r"coroutine that returns the stream",
    ):

        class Gen(Operator):
            async def execute(self, ctx: RunContext, text: str) -> AsyncIterator[str]:  # type: ignore[override]
                yield text


# --- running belongs to smmf_flow.DAG ----------------------------------------------------


def test_a_bare_graph_collects_and_validates_but_cannot_run() -> None:
    with Graph("g") as graph:
        MapOperator(square, name="a") >> MapOperator(to_text, name="b")
    graph.validate()
    with pytest.raises(
        FlowError,
        match=r"graph 'g' cannot run: build flows with "
        r"smmf_flow.DAG, which runs them",
    ):
        anyio.run(graph.arun, 2)


def test_a_node_result_comes_from_the_dag_not_the_node(dag: DAG) -> None:
    """One run up to a node: ``dag.arun(x, output=node)``; AWEL's ``node.call(x)``
    is a door into the same run (``dag/awel_calls.py``)."""
    a, b = maps(dag, "a", "b")
    a >> b
    assert dag.run(5, output=a) == 5
    assert anyio.run(a.call, 5) == 5


def test_repr_names_the_type_and_node(dag: DAG) -> None:
    (a,) = maps(dag, "a")
    assert repr(a) == "<MapOperator 'a'>"
