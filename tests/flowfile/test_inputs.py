"""Declared inputs: command-line text converted to the declared type, JSON values
checked, defaults filled in."""

from __future__ import annotations

import pytest

from smmf_flow.errors import FlowError
from smmf_flow.flowfile.inputs import prepare_inputs
from smmf_flow.flowfile.schema import InputSpec

SPECS = {"q": InputSpec(type="str"), "n": InputSpec(type="int", default=3),
         "tags": InputSpec(type="list", default=[]), "on": InputSpec(type="bool", default=False)}


def test_text_is_converted() -> None:
    got = prepare_inputs(SPECS, {"q": "hi", "n": "5", "tags": '["a"]', "on": "true"},
                         from_strings=frozenset({"q", "n", "tags", "on"}))
    assert got == {"q": "hi", "n": 5, "tags": ["a"], "on": True}


def test_defaults_fill_in() -> None:
    assert prepare_inputs(SPECS, {"q": "hi"}) == {"q": "hi", "n": 3, "tags": [], "on": False}


@pytest.mark.parametrize("values, strings, message", [
    ({}, (), r"missing input 'q' \(str\); pass --input q=\.\.\."),
    ({"q": "x", "z": 1}, (), r"unknown input 'z' \(the flow's inputs: q, n, tags, on\)"),
    ({"q": "x", "n": "five"}, ("n",), r"input 'n' must be int, got 'five'"),
    ({"q": 7}, (), r"input 'q' must be str, got 7"),
    ({"q": "x", "tags": "[oops"}, ("tags",), r"input 'tags' \(list\) must be JSON"),
])
def test_bad_inputs(values: dict, strings: tuple, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(FlowError, match=message):
        prepare_inputs(SPECS, values, from_strings=frozenset(strings))


def test_named_inputs_need_a_mapping() -> None:
    with pytest.raises(FlowError, match=r"takes named inputs \(q, n, tags, on\)"):
        prepare_inputs(SPECS, "just text")


def test_a_flow_without_inputs_takes_anything() -> None:
    assert prepare_inputs({}, "just text") == "just text"
