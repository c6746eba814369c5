"""``MapOperator`` and the ``@map_operator`` decorator."""

import threading
from typing import Any

import anyio
import pytest

from smmf_flow import DAG, DuplicateNodeError, FlowError, MapOperator, map_operator


def square(x: int) -> int:
    return x * x


def run_one(op_factory: Any, value: Any) -> Any:
    with DAG("map") as dag:
        op_factory()
    return dag.run(value)


def test_a_sync_function() -> None:
    assert run_one(lambda: MapOperator(square), 3) == 9


def test_an_async_function() -> None:
    async def slow_square(x: int) -> int:
        await anyio.sleep(0)
        return x * x

    op = MapOperator(slow_square)
    assert op.input_types == (int,) and op.output_type is int
    assert run_one(lambda: MapOperator(slow_square), 4) == 16


class Upper(MapOperator):
    async def map(self, text: str) -> str:
        return text.upper()


def test_an_async_map_override_gives_ports_and_work() -> None:
    op = Upper()
    assert op.input_types == (str,) and op.output_type is str
    assert run_one(lambda: Upper(), "hi") == "HI"


@pytest.mark.parametrize(("blocking", "same_thread"), [(True, False), (False, True)])
def test_blocking_functions_run_in_a_worker_thread(blocking: bool, same_thread: bool) -> None:
    seen: dict[str, int] = {}

    def where(x: int) -> int:
        seen["map"] = threading.get_ident()
        return x

    async def loop_thread(x: int) -> int:
        seen["loop"] = threading.get_ident()
        return x

    with DAG("threads") as dag:
        MapOperator(loop_thread, name="loop") >> MapOperator(where, blocking=blocking, name="map")
    assert dag.run(1) == 1
    assert (seen["map"] == seen["loop"]) is same_thread


def test_several_inputs_in_edge_order() -> None:
    with DAG("two") as dag:
        a = MapOperator(lambda x: x + 1, name="a")
        b = MapOperator(lambda x: x * 10, name="b")
        pair = MapOperator(lambda first, second: (first, second), name="pair")
        [b, a] >> pair
    assert dag.run(2) == (20, 3)


def test_a_root_function_without_arguments_ignores_the_input() -> None:
    assert run_one(lambda: MapOperator(lambda: "constant"), "ignored") == "constant"


def test_a_map_needs_something_callable() -> None:
    with pytest.raises(
        FlowError, match=r"^node 'm': MapOperator needs a callable, got 3$"
    ) as error:
        MapOperator(3, name="m")  # type: ignore[arg-type]
    assert (error.value.node, error.value.param) == ("m", "map_function")


def test_a_map_with_neither_function_nor_override_is_refused_when_made() -> None:
    with pytest.raises(
        FlowError,
        match=r"^node 'empty': MapOperator needs a map_function or "
        r"a map\(\) override$",
    ) as error:
        MapOperator(name="empty")
    assert (error.value.node, error.value.param) == ("empty", "map_function")


@map_operator
def double(x: int) -> int:
    return 2 * x


@map_operator(blocking=True, timeout=5)
def triple(x: int) -> int:
    return 3 * x


def test_the_decorator_makes_map_operators_named_after_the_function() -> None:
    assert double.__name__ == "double"
    with DAG("deco") as dag:
        op = double()
        op >> triple()
    assert isinstance(op, MapOperator) and op.name == "double"
    assert op.input_types == (int,) and op.output_type is int
    assert dag.node("triple").blocking and dag.node("triple").timeout == 5
    assert dag.run(1) == 6


def test_the_decorator_takes_options_per_node() -> None:
    with DAG("deco") as dag:
        double(name="first") >> double(name="second", timeout=1)
    assert dag.node("second").timeout == 1
    assert dag.run(1) == 4


def test_the_decorator_twice_in_one_dag_needs_names() -> None:
    with DAG("deco"):
        double()
        with pytest.raises(DuplicateNodeError, match=r"already has a node named 'double'"):
            double()
