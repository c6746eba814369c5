"""The flow file's schema: shorthands, defaults, and parameters kept apart
from a node's own fields."""

from __future__ import annotations

from smmf_flow.flowfile.loader import read_flow_text
from smmf_flow.flowfile.schema import parse_spec


def spec_of(text: str):  # type: ignore[no-untyped-def]
    return parse_spec(read_flow_text(text, "f.yaml"))


def test_defaults() -> None:
    spec = spec_of("nodes:\n  a: {type: map, expr: input}\n")
    assert (spec.version, spec.name, spec.models, spec.stream) == (1, None, None, False)
    assert spec.edges == [] and spec.inputs == {} and spec.plugins == []


def test_parameters_are_the_keys_that_are_not_node_fields() -> None:
    spec = spec_of(
        "nodes:\n  a: {type: llm, model: m, max_tokens: 8, timeout: 3, "
        "after: b, description: hi}\n  b: {type: map, expr: input}\n"
    )
    node = spec.nodes["a"]
    assert node.params == {"model": "m", "max_tokens": 8}
    assert (node.timeout, node.after, node.description) == (3, ["b"], "hi")


def test_retry_shorthand_is_a_number_of_attempts() -> None:
    spec = spec_of("nodes:\n  a: {type: map, expr: input, retry: 4}\n")
    assert spec.nodes["a"].retry.attempts == 4
    assert spec.nodes["a"].retry.on == ["Exception"]


def test_input_shorthand_is_a_type_and_required() -> None:
    spec = spec_of(
        "inputs:\n  q: str\n  n: {type: int, default: 3}\nnodes:\n  a: {type: map, expr: input}\n"
    )
    assert spec.inputs["q"].type == "str" and spec.inputs["q"].required
    assert spec.inputs["n"].default == 3 and not spec.inputs["n"].required


def test_a_default_of_null_still_counts_as_given() -> None:
    spec = spec_of(
        "inputs:\n  q: {type: any, default: null}\nnodes:\n  a: {type: map, expr: input}\n"
    )
    assert not spec.inputs["q"].required


def test_several_problems_are_counted_in_the_message() -> None:
    import pytest

    from smmf_flow.errors import FlowFileError

    with pytest.raises(FlowFileError, match=r"\(and 1 more problem\)$"):
        spec_of("nodes:\n  a: {type: map, timeout: x}\n  b: {type: map, timeout: y}\n")
