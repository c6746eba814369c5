"""Flow files built into DAGs and run: the primitive operators, edges and their
input order, node options, and plugins."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from smmf_flow.errors import FlowError, NodeFailed, NodeTimeout, UnknownParameter
from smmf_flow.flowfile.flow import Flow


def run(flow: Flow, value: object = None) -> object:
    return flow.dag.run(flow.prepare(value), output=flow.output)


def test_map_chain_with_inputs(flow_of: Callable[..., Flow]) -> None:
    flow = flow_of("""
        inputs: {text: str}
        nodes:
          upper: {type: map, expr: "input.text | upper"}
          words: {type: map, expr: "input.split()"}
        edges: ["upper >> words"]
    """)
    assert run(flow, {"text": "a b"}) == ["A", "B"]
    assert flow.name == "flow" and flow.output == "words"


def test_an_upstream_mapping_is_read_by_its_keys_before_dict_methods(
    flow_of: Callable[..., Flow],
) -> None:
    flow = flow_of("""
        nodes:
          listed: {type: map, expr: "{'items': input.split(), 'keys': 'k'}"}
          count: {type: map, expr: "(input.items | length) ~ input.keys"}
        edges: ["listed >> count"]
    """)
    assert run(flow, "a b c") == "3k"


def test_fan_out_and_join_keep_edge_order(flow_of: Callable[..., Flow]) -> None:
    flow = flow_of("""
        nodes:
          split: {type: map, expr: "input.split()"}
          count: {type: map, expr: "input | length"}
          first: {type: map, expr: "input[0]"}
          report: {type: join, expr: "inputs[1] ~ ':' ~ inputs[0]"}
        edges: ["split >> [count, first] >> report"]
    """)
    assert run(flow, "x y z") == "x:3"
    assert [p.name for p in flow.dag.upstream(flow.dag.node("report"))] == ["count", "first"]


def test_after_gives_input_order_too(flow_of: Callable[..., Flow]) -> None:
    flow = flow_of("""
        nodes:
          a: {type: map, expr: "'a'"}
          b: {type: map, expr: "'b'"}
          j: {type: join, after: [b, a]}
    """)
    assert run(flow, 0) == ["b", "a"]


def test_edges_come_before_after(flow_of: Callable[..., Flow]) -> None:
    flow = flow_of("""
        nodes:
          a: {type: map, expr: "'a'"}
          b: {type: map, expr: "'b'"}
          j: {type: join, after: [a, b]}
        edges: ["b >> j"]
    """)
    assert run(flow, 0) == ["b", "a"]


def test_branch_routes_and_adds_its_edges(flow_of: Callable[..., Flow]) -> None:
    flow = flow_of("""
        nodes:
          route:
            type: branch
            first_match: true
            branches:
              - {when: "input > 10", to: big}
              - {when: "input > 0", to: small}
            default: none
          big: {type: map, expr: "'big'"}
          small: {type: map, expr: "'small'"}
          none: {type: map, expr: "'none'"}
          out: {type: join, after: [big, small, none]}
    """)
    assert [run(flow, v) for v in (50, 5, -1)] == ["big", "small", "none"]
    assert set(flow.dag.graph.succ["route"]) == {"big", "small", "none"}


def test_stream_operators(flow_of: Callable[..., Flow]) -> None:
    flow = flow_of("""
        nodes:
          source: {type: input, items: [1, 2, 3]}
          double: {type: transform_stream, expr: "chunk * 2"}
          total: {type: reduce_stream, expr: "acc + chunk", initial: 100}
        edges: ["source >> double >> total"]
    """)
    assert run(flow) == 112


def test_streamify_and_unstreamify(flow_of: Callable[..., Flow]) -> None:
    flow = flow_of("""
        nodes:
          letters: {type: streamify, expr: "input | list"}
          word: {type: unstreamify, expr: "chunks | join('-')"}
        edges: ["letters >> word"]
    """)
    assert run(flow, "abc") == "a-b-c"


def test_input_value_ignores_the_run_input(flow_of: Callable[..., Flow]) -> None:
    flow = flow_of("""
        nodes:
          fixed: {type: input, value: {greeting: hi}}
          say: {type: map, expr: "input.greeting"}
        edges: ["fixed >> say"]
    """)
    assert run(flow, "ignored") == "hi"


def test_timeout_and_retry_reach_the_operator(flow_of: Callable[..., Flow]) -> None:
    flow = flow_of("""
        nodes:
          a:
            type: map
            expr: input
            timeout: 2.5
            retry: {attempts: 4, backoff: 0, on: [NodeTimeout, ConnectionError]}
    """)
    op = flow.dag.node("a")
    assert op.timeout == 2.5
    assert op.retry.attempts == 4 and op.retry.backoff == 0
    assert op.retry.on == (NodeTimeout, ConnectionError)


def test_an_unknown_name_in_an_expression_is_refused_when_built(
    flow_of: Callable[..., Flow],
) -> None:
    with pytest.raises(
        FlowError,
        match=r"flow.yaml:2:24: node 'a': expression 'missing \+ 1': "
        r"'missing' is not defined",
    ):
        flow_of('nodes:\n  a: {type: map, expr: "missing + 1"}\n')


def test_an_expression_the_input_does_not_fit_fails_the_run_with_the_node(
    flow_of: Callable[..., Flow],
) -> None:
    flow = flow_of('nodes:\n  a: {type: map, expr: "input.text"}\n')
    with pytest.raises(
        NodeFailed,
        match=r"node 'a' failed: InputError: expression "
        r"'input.text': 'int object' has no attribute 'text'",
    ):
        run(flow, 1)


def test_plugin_types_and_functions(flow_of: Callable[..., Flow], plugin_dir) -> None:  # type: ignore[no-untyped-def]
    plugin_dir(
        "smmf_test_ops_a",
        """
        from smmf_flow import MapOperator

        class Shout(MapOperator):
            kind = "shout"

            def __init__(self, times: int = 1, **options):
                self.times = times
                super().__init__(self.shout, **options)

            def shout(self, text: str) -> str:
                return text.upper() + "!" * self.times

            def params(self):
                return {"times": self.times}

        def exclaim(text: str) -> str:
            return text + "?"
    """,
    )
    flow = flow_of("""
        plugins: [smmf_test_ops_a]
        nodes:
          loud: {type: shout, times: 2}
          ask: {type: map, function: "smmf_test_ops_a:exclaim"}
        edges: ["loud >> ask"]
    """)
    assert run(flow, "hey") == "HEY!!?"


def test_command_line_plugins_count_like_flow_plugins(flow_of, plugin_dir) -> None:  # type: ignore[no-untyped-def]
    plugin_dir("smmf_test_ops_b", "def twice(x):\n    return x * 2\n")
    text = "nodes:\n  a: {type: map, function: 'smmf_test_ops_b:twice'}\n"
    with pytest.raises(FlowError, match="'smmf_test_ops_b' is not a plugin"):
        flow_of(text)
    assert run(flow_of(text, plugins=["smmf_test_ops_b"]), 21) == 42


def test_a_flow_names_only_modules_of_its_own_folder(flow_of, plugin_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(
        FlowError,
        match=r"flow.yaml:1:11: plugin 'json' is not a module in "
        r"the flow's folder .*give an installed module "
        r"with --plugin json",
    ):
        flow_of("plugins: [json]\nnodes:\n  a: {type: map, function: 'json:dumps'}\n")
    assert (
        run(flow_of("nodes:\n  a: {type: map, function: 'json:dumps'}\n", plugins=["json"]), [1])
        == "[1]"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "smmf_test_far.py").write_text("def f(x):\n    return x\n")
    with pytest.raises(FlowError, match="plugin 'smmf_test_far' is not a module in"):
        flow_of("plugins: [smmf_test_far]\nnodes:\n  a: {type: map, expr: input}\n")


def test_a_plugin_cannot_take_a_built_in_name(flow_of, plugin_dir) -> None:  # type: ignore[no-untyped-def]
    plugin_dir(
        "smmf_test_ops_c",
        """
        from smmf_flow import MapOperator

        class Impostor(MapOperator):
            kind = "llm"
    """,
    )
    with pytest.raises(
        FlowError,
        match=r"flow.yaml:1:11: plugin smmf_test_ops_c defines "
        r"operator type 'llm'.*already a type \(built-in\)",
    ):
        flow_of("plugins: [smmf_test_ops_c]\nnodes:\n  a: {type: map, expr: input}\n")


def test_a_missing_required_argument_is_named(flow_of: Callable[..., Flow], plugin_dir) -> None:  # type: ignore[no-untyped-def]
    plugin_dir(
        "smmf_test_ops_d",
        """
        from smmf_flow import Operator

        class Needy(Operator):
            kind = "needy"

            def __init__(self, level: int, **options):
                self.level = level
                super().__init__(**options)
    """,
    )
    with pytest.raises(
        FlowError,
        match=r"flow.yaml:3:3: node 'a': missing required "
        r"parameter 'level' \(needy parameters: level\)",
    ):
        flow_of("plugins: [smmf_test_ops_d]\nnodes:\n  a: {type: needy}\n")
    with pytest.raises(
        UnknownParameter,
        match=r"flow.yaml:3:20: node 'a': unknown parameter "
        r"'levle'; did you mean 'level'\? \(needy "
        r"parameters: level\)",
    ):
        flow_of("plugins: [smmf_test_ops_d]\nnodes:\n  a: {type: needy, levle: 1}\n")


def test_a_plugin_type_takes_the_parameters_its_constructors_pass_on(flow_of, plugin_dir) -> None:  # type: ignore[no-untyped-def]
    plugin_dir(
        "smmf_test_ops_g",
        """
        from smmf_flow import MapOperator

        class Twice(MapOperator):
            kind = "twice"

            def __init__(self, times: int = 2, **options):
                self.times = times
                super().__init__(self.apply, **options)

            def apply(self, x: int) -> int:
                return x * self.times
    """,
    )
    flow = flow_of(
        "plugins: [smmf_test_ops_g]\nnodes:\n  a: {type: twice, times: 3, blocking: true}\n"
    )
    assert run(flow, 5) == 15
    with pytest.raises(
        UnknownParameter,
        match=r"unknown parameter 'time'; did you mean "
        r"'times'\? \(twice parameters: times, "
        r"map_function, blocking\)",
    ) as caught:
        flow_of("plugins: [smmf_test_ops_g]\nnodes:\n  a: {type: twice, time: 3}\n")
    assert (caught.value.node, caught.value.param, caught.value.line) == ("a", "time", 3)
    with pytest.raises(UnknownParameter, match=r"unknown parameter 'input_type'"):
        flow_of("plugins: [smmf_test_ops_g]\nnodes:\n  a: {type: twice, input_type: int}\n")


def test_an_operator_that_raises_while_built_is_located(flow_of, plugin_dir) -> None:  # type: ignore[no-untyped-def]
    plugin_dir(
        "smmf_test_ops_e",
        """
        from smmf_flow import Operator

        class Fussy(Operator):
            kind = "fussy"

            def __init__(self, level: int = 0, **options):
                raise ValueError("level must be even")
    """,
    )
    with pytest.raises(
        FlowError,
        match=r"flow.yaml:3:3: node 'a': cannot build a 'fussy' "
        r"node: ValueError: level must be even",
    ):
        flow_of("plugins: [smmf_test_ops_e]\nnodes:\n  a: {type: fussy, level: 1}\n")


def test_nothing_runs_when_a_flow_is_refused(flow_of, plugin_dir) -> None:  # type: ignore[no-untyped-def]
    plugin_dir(
        "smmf_test_ops_f", "CALLS = []\n\ndef record(x):\n    CALLS.append(x)\n    return x\n"
    )
    with pytest.raises(FlowError):
        flow_of("""
            plugins: [smmf_test_ops_f]
            nodes:
              a: {type: map, function: "smmf_test_ops_f:record"}
              b: {type: map, expr: input}
            edges: ["a >> b", "b >> a"]
        """)
    import smmf_test_ops_f  # type: ignore[import-not-found]

    assert smmf_test_ops_f.CALLS == []
