"""A Python DAG of registered operators exports to YAML and loads back to an
equivalent DAG: same nodes, types, parameters, options, edges and input order,
and the same results."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from smmf_flow import (
    DAG,
    BranchOperator,
    InputOperator,
    InputSource,
    JoinOperator,
    MapOperator,
    ReduceStreamOperator,
    RetryPolicy,
    TransformStreamOperator,
)
from smmf_flow.errors import BackendTimeout, FlowError
from smmf_flow.flowfile.export import dump_flow, export_dag
from smmf_flow.flowfile.flow import loads_flow
from smmf_flow.flowfile.functions import Expression as E

PLUGIN = """
    from smmf_flow import map_operator

    def shout(text: str) -> str:
        return text.upper()

    def both(a, b):
        return f"{a}|{b}"

    @map_operator
    def exclaim(text: str) -> str:
        return text + "!"
"""


def chain() -> DAG:
    with DAG("chain", description="a chain") as dag:
        MapOperator(E("input * 2"), name="double") >> MapOperator(E("input + 1"), name="inc")
    return dag


def fan() -> DAG:
    with DAG("fan") as dag:
        split = MapOperator(E("input.split()"), name="split")
        count = MapOperator(E("input | length"), name="count")
        first = MapOperator(E("input[0]"), name="first")
        last = MapOperator(E("input[-1]"), name="last")
        out = JoinOperator(E("inputs | join(',')", variadic="inputs"), name="out")
        split >> [count, first, last]
        [last, count, first] >> out
    return dag


def branch() -> DAG:
    with DAG("branch") as dag:
        route = BranchOperator(
            [(E("input > 10"), "big"), (E("input > 0"), "small")],
            default="none",
            first_match=True,
            name="route",
        )
        big, small, none = (MapOperator(E(f"'{n}'"), name=n) for n in ("big", "small", "none"))
        route >> [big, small, none]
        [none, big, small] >> JoinOperator(name="out")
    return dag


def streams() -> DAG:
    with DAG("streams") as dag:
        source = InputOperator(InputSource.from_iterable([1, 2, 3]), name="source")
        double = TransformStreamOperator(E("chunk * 2", names=("chunk",)), name="double")
        total = ReduceStreamOperator(
            E("acc + chunk", names=("acc", "chunk")),
            initial=10,
            name="total",
            timeout=5,
            retry=RetryPolicy(attempts=2, backoff=0.5, on=(BackendTimeout,)),
        )
        source >> double >> total
    return dag


def functions() -> DAG:
    import smmf_export_plugin as plugin  # type: ignore[import-not-found]

    with DAG("functions") as dag:
        a = MapOperator(plugin.shout, name="a", blocking=True)
        b = plugin.exclaim()
        c = MapOperator(E("input ~ '?'"), name="c")
        a >> [b, c]
        [b, c] >> JoinOperator(plugin.both, name="j")
    return dag


SHAPES: dict[str, tuple[Callable[[], DAG], list[Any]]] = {
    "chain": (chain, [1, 20]),
    "fan": (fan, ["one two three"]),
    "branch": (branch, [50, 5, -5]),
    "streams": (streams, [None]),
    "functions": (functions, ["hey"]),
}


@pytest.fixture(autouse=True)
def folder(plugin_dir) -> Path:  # type: ignore[no-untyped-def]
    """The folder of the plugin module, where exported flows are loaded from."""
    return plugin_dir("smmf_export_plugin", PLUGIN)


def edges(dag: DAG) -> set[tuple[str, str, int]]:
    return {(u, v, d["slot"]) for u, v, d in dag.graph.edges(data=True)}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_round_trip(shape: str, folder: Path) -> None:
    make, inputs = SHAPES[shape]
    original = make()
    text = dump_flow(original)
    loaded = loads_flow(text, file=str(folder / f"{shape}.yaml")).dag
    assert export_dag(loaded) == export_dag(original)
    assert edges(loaded) == edges(original)
    assert (loaded.name, loaded.description) == (original.name, original.description)
    for op in original.nodes:
        twin = loaded.node(op.name)
        assert (type(twin), twin.timeout, twin.retry) == (type(op), op.timeout, op.retry)
    for value in inputs:
        assert loaded.run(value) == original.run(value)


def test_exported_yaml_reads_like_a_hand_written_flow() -> None:
    data = yaml.safe_load(dump_flow(fan()))
    assert data["nodes"]["count"] == {"type": "map", "expr": "input | length"}
    assert data["edges"] == [
        "split >> count",
        "split >> first",
        "split >> last",
        "last >> out",
        "count >> out",
        "first >> out",
    ]


def test_chains_are_written_as_one_string() -> None:
    assert export_dag(chain())["edges"] == ["double >> inc"]


def test_function_modules_become_plugins() -> None:
    data = export_dag(functions())
    assert data["plugins"] == ["smmf_export_plugin"]
    assert data["nodes"]["a"] == {
        "type": "map",
        "function": "smmf_export_plugin:shout",
        "blocking": True,
    }
    assert data["nodes"]["exclaim"]["function"] == "smmf_export_plugin:exclaim"


def test_model_operators_round_trip() -> None:
    from smmf_flow.operators import FallbackOperator, LLMOperator, PromptOperator, RouterOperator

    with DAG("models") as dag:
        prompt = PromptOperator(
            "Q: {{ question }}", system="Be brief.", name="prompt", max_tokens=16
        )
        route = RouterOperator(
            [{"model": "a", "when": {"keywords": ["code"]}}],
            default="b",
            name="route",
            temperature=0,
        )
        backup = FallbackOperator(["a", "b"], on=["unavailable"], name="backup", max_tokens=8)
        final = LLMOperator("b", name="final", max_tokens=4, stop=["\n"])
        prompt >> route
        prompt >> backup
        (
            [route, backup]
            >> JoinOperator(E("inputs[0].text ~ inputs[1].text", variadic="inputs"), name="both")
            >> final
        )
    loaded = loads_flow(dump_flow(dag)).dag
    assert export_dag(loaded) == export_dag(dag)
    assert export_dag(dag)["nodes"]["final"] == {
        "type": "llm",
        "model": "b",
        "max_tokens": 4,
        "stop": ["\n"],
    }


def test_a_lambda_cannot_be_exported() -> None:
    with DAG("lambda") as dag:
        MapOperator(lambda x: x, name="anon")
    with pytest.raises(
        FlowError,
        match=r"node 'anon': its function .*lambda.* cannot be "
        r"written to a flow file",
    ):
        dump_flow(dag)


def test_a_value_a_file_cannot_hold_is_named() -> None:
    with DAG("odd") as dag:
        InputOperator(InputSource.from_data({"when": object()}), name="src")
    with pytest.raises(FlowError, match=r"node 'src': parameter 'value' is a object"):
        dump_flow(dag)


def test_several_ends_need_an_output() -> None:
    with DAG("ends") as dag:
        a = MapOperator(E("input"), name="a")
        a >> [MapOperator(E("1"), name="b"), MapOperator(E("2"), name="c")]
    with pytest.raises(FlowError, match=r"has 2 end nodes \(b, c\); say which one is the output"):
        dump_flow(dag)
    flow = loads_flow(dump_flow(dag, output="c"))
    assert flow.output == "c" and flow.dag.run(0, output=flow.output) == 2
