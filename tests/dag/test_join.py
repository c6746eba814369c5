"""``JoinOperator``: one combine over all parents' outputs, in edge order."""

from collections.abc import Callable
from typing import Any

import anyio
import pytest

from smmf_flow import DAG, EdgeTypeError, JoinOperator, MapOperator


def fan(combine: Callable[..., Any] | None = None, n: int = 3) -> DAG:
    """root → n parents (parent i sleeps longer the earlier it is) → join."""
    with DAG("fan") as dag:
        root = MapOperator(lambda x: x, name="root")
        join = JoinOperator(combine, name="join")
        for i in range(n):

            async def parent(x: int, i: int = i) -> int:
                await anyio.sleep(0.01 * (n - i))  # finish in reverse edge order
                return x + i

            MapOperator(parent, name=f"p{i}", input_type=int, output_type=int)
            root >> dag.node(f"p{i}") >> join
    return dag


def test_the_default_combine_gives_a_list_in_edge_order() -> None:
    assert fan().run(10) == [10, 11, 12]


def test_the_default_combine_of_one_parent_is_its_output() -> None:
    with DAG("one") as dag:
        MapOperator(lambda x: x + 1, name="a") >> JoinOperator(name="join")
    assert dag.run(1) == 2


def test_a_combine_function() -> None:
    def total(*xs: int) -> int:
        return sum(xs)

    assert fan(total).run(10) == 33


def test_an_async_combine_function() -> None:
    async def describe(a: int, b: int, c: int) -> str:
        await anyio.sleep(0)
        return f"{a}-{b}-{c}"

    dag = fan(describe)
    join = dag.node("join")
    assert join.input_types == (int, int, int) and join.output_type is str
    assert dag.run(0) == "0-1-2"


def test_the_combine_signature_types_the_inputs() -> None:
    def pair(a: int, b: int) -> int:
        return a + b

    with DAG("typed"):
        num = MapOperator(lambda x: x, name="num", output_type=int)
        text = MapOperator(lambda x: x, name="text", output_type=str)
        join = JoinOperator(pair, name="join")
        num >> join
        with pytest.raises(
            EdgeTypeError,
            match=r"'text' outputs str but 'join' input 2 "
            r"expects int",
        ):
            text >> join
