"""``workers.check_structured``: a model's JSON answer against the request's schema,
whose regexes (``pattern``, ``patternProperties``) may come from an HTTP caller."""

import json
from typing import Any

import pytest

from smmf_flow.errors import InputError, InvalidOutput
from smmf_flow.models.types import ChatRequest, ResponseFormat
from smmf_flow.scheduler.workers import check_structured

#: a pattern that backtracks exponentially on a run of a's that does not end it
BACKTRACKS = r"^(a|aa)+$"
NO_END = "a" * 40 + "!"  # re: about a minute; 2 more a's, 2.6 times that


def checked(answer: Any, schema: dict[str, Any]) -> Any:
    request = ChatRequest.of("hi", response_format=ResponseFormat.from_schema(schema))
    return check_structured(json.dumps(answer), request, "m")


def test_a_pattern_is_checked() -> None:
    schema = {"type": "object", "properties": {"id": {"type": "string", "pattern": "^[a-z]+$"}}}
    assert checked({"id": "abc"}, schema) == {"id": "abc"}
    with pytest.raises(InvalidOutput, match=r"breaks its schema: 'ABC' does not match"):
        checked({"id": "ABC"}, schema)


def test_pattern_properties_are_checked() -> None:
    schema = {"type": "object", "patternProperties": {"^n_": {"type": "integer"}}}
    assert checked({"n_a": 1, "other": "x"}, schema) == {"n_a": 1, "other": "x"}
    with pytest.raises(InvalidOutput, match=r"'x' is not of type 'integer'"):
        checked({"n_a": "x"}, schema)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "pattern": BACKTRACKS},
        {"type": "object", "patternProperties": {BACKTRACKS: {"type": "integer"}}},
    ],
    ids=["pattern", "patternProperties"],
)
def test_a_pattern_that_backtracks_without_bound_is_stopped(schema: dict[str, Any]) -> None:
    """With Python's re this match runs for ages and holds the event loop; it is
    stopped and blamed on the schema (a 422, and no fallback to another model)."""
    answer: Any = NO_END if schema["type"] == "string" else {NO_END: 1}
    with pytest.raises(InputError, match=r"^model 'm': response_format's JSON schema: regex "):
        checked(answer, schema)


def test_a_schema_keeps_its_own_draft() -> None:
    """Draft 7's tuple ``items`` (a list) is no 2020-12 schema: the ``$schema`` picks
    the rules, and the patterns are timed there too."""
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "array",
        "items": [{"type": "integer"}, {"type": "string", "pattern": BACKTRACKS}],
    }
    assert checked([1, "aa"], schema) == [1, "aa"]
    with pytest.raises(InvalidOutput, match=r"2 is not of type 'string'"):
        checked([1, 2], schema)
    with pytest.raises(InputError, match=r"regex /\^\(a\|aa\)\+\$/ took more than"):
        checked([1, NO_END], schema)
