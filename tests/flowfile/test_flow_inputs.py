"""Declared inputs: command-line text converted to the declared type, JSON values
checked, defaults filled in; a value that does not fit is an ``InputError``
(the run's input is wrong, not the flow). Types are named as in Python or as in
JSON Schema."""

from __future__ import annotations

import pytest

from smmf_flow.errors import FlowFileError, InputError
from smmf_flow.flowfile.flow_inputs import prepare_inputs
from smmf_flow.flowfile.input_types import JSON_NAMES
from smmf_flow.flowfile.loader import read_flow_text
from smmf_flow.flowfile.schema import InputSpec, parse_spec

SPECS = {
    "q": InputSpec(type="str"),
    "n": InputSpec(type="int", default=3),
    "tags": InputSpec(type="list", default=[]),
    "on": InputSpec(type="bool", default=False),
}


def test_text_is_converted() -> None:
    got = prepare_inputs(
        SPECS,
        {"q": "hi", "n": "5", "tags": '["a"]', "on": "true"},
        from_strings=frozenset({"q", "n", "tags", "on"}),
    )
    assert got == {"q": "hi", "n": 5, "tags": ["a"], "on": True}


def test_defaults_fill_in() -> None:
    assert prepare_inputs(SPECS, {"q": "hi"}) == {"q": "hi", "n": 3, "tags": [], "on": False}


@pytest.mark.parametrize(
    ("values", "strings", "message"),
    [
        ({}, (), r"missing input 'q' \(str\); pass --input q=\.\.\."),
        ({"q": "x", "z": 1}, (), r"unknown input 'z' \(the flow's inputs: q, n, tags, on\)"),
        ({"qq": "x"}, (), r"unknown input 'qq'; did you mean 'q'\? \(the flow's inputs"),
        ({"q": "x", "n": "five"}, ("n",), r"input 'n' must be int, got 'five'"),
        ({"q": 7}, (), r"input 'q' must be str, got 7"),
        ({"q": "x", "tags": "[oops"}, ("tags",), r"input 'tags' \(list\) must be JSON"),
    ],
)
def test_bad_inputs(values: dict, strings: tuple, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(InputError, match=message):
        prepare_inputs(SPECS, values, from_strings=frozenset(strings))


def test_named_inputs_need_a_mapping() -> None:
    with pytest.raises(InputError, match=r"takes named inputs \(q, n, tags, on\)"):
        prepare_inputs(SPECS, "just text")


def test_a_flow_without_inputs_takes_anything() -> None:
    assert prepare_inputs({}, "just text") == "just text"


JSON_SPECS = {
    "s": InputSpec(type="string"),
    "i": InputSpec(type="integer", default=1),
    "x": InputSpec(type="number", default=0.5),
    "b": InputSpec(type="boolean", default=False),
    "a": InputSpec(type="array", default=[]),
    "o": InputSpec(type="object", default={}),
}


def test_json_schema_type_names_are_the_python_types() -> None:
    text = {"s": "hi", "i": "5", "x": "2.5", "b": "true", "a": '["p"]', "o": '{"k": 1}'}
    assert prepare_inputs(JSON_SPECS, text, from_strings=frozenset(text)) == {
        "s": "hi",
        "i": 5,
        "x": 2.5,
        "b": True,
        "a": ["p"],
        "o": {"k": 1},
    }
    assert prepare_inputs(JSON_SPECS, {"s": "hi", "x": 3}) == {
        "s": "hi",
        "i": 1,
        "x": 3.0,
        "b": False,
        "a": [],
        "o": {},
    }
    assert set(JSON_NAMES) == {"string", "integer", "number", "boolean", "array", "object"}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"s": 3}, r"input 's' must be string, got 3"),
        ({"s": "x", "i": 1.5}, r"input 'i' must be integer, got 1.5"),
        ({"s": "x", "a": {"k": 1}}, r"input 'a' must be array, got \{'k': 1\}"),
    ],
)
def test_a_json_typed_input_names_its_declared_type(values: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(InputError, match=message):
        prepare_inputs(JSON_SPECS, values)


def test_a_flow_file_may_declare_json_schema_types() -> None:
    spec = parse_spec(
        read_flow_text(
            "inputs:\n  n: integer\n  tags: {type: array, default: []}\n"
            "nodes:\n  a: {type: map, expr: input}\n",
            "f.yaml",
        )
    )
    assert spec.inputs["n"].type == "integer" and spec.inputs["tags"].type == "array"


@pytest.mark.parametrize(
    ("declared", "default", "problem"),
    [
        ("int", '"abc"', "'abc' is not an int"),
        ("int", "1.5", "1.5 is not an int"),
        ("integer", "true", "true is not an integer"),
        ("str", "12", "12 is not a str"),
        ("list", "{k: 1}", "a mapping is not a list"),
        ("bool", "yes", "'yes' is not a bool"),
    ],
)
def test_a_default_not_of_the_declared_type_is_refused_where_it_is_written(
    declared: str, default: str, problem: str
) -> None:
    line = f"  n: {{type: {declared}, default: {default}}}"
    text = f"inputs:\n{line}\nnodes:\n  a: {{type: map, expr: input}}\n"
    with pytest.raises(FlowFileError) as caught:
        parse_spec(read_flow_text(text, "f.yaml"))
    column = line.index(default) + 1
    assert str(caught.value) == f"f.yaml:2:{column}: field 'inputs.n.default': {problem}"


def test_a_default_of_the_declared_type_is_kept_as_a_json_value_would_be() -> None:
    spec = parse_spec(
        read_flow_text(
            "inputs:\n  x: {type: number, default: 2}\n  n: {type: int, default: null}\n"
            "  any: {type: any, default: [1]}\nnodes:\n  a: {type: map, expr: input}\n",
            "f.yaml",
        )
    )
    assert [(s.default, s.required) for s in spec.inputs.values()] == [
        (2.0, False),
        (None, False),
        ([1], False),
    ]
