"""A chat body's ``response_format`` JSON schema, checked before any model sees it."""

import json
from typing import Any

import pytest

from smmf_flow.server.errors import ApiError
from smmf_flow.server.schemas import ChatCompletionBody, parse


def body(schema: dict[str, Any]) -> bytes:
    response_format = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    return json.dumps(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "response_format": (response_format),
        }
    ).encode()


@pytest.mark.parametrize(
    ("schema", "where"),
    [
        ({"type": "object", "patternProperties": {"^x": {}}}, "(root)"),
        (
            {"type": "array", "items": {"properties": {"a": {"patternProperties": {"^x": {}}}}}},
            "items/properties/a",
        ),
        ({"anyOf": [{"type": "string"}, {"patternProperties": {"^x": {}}}]}, "anyOf/1"),
    ],
)
def test_pattern_properties_are_refused_naming_where(schema: dict[str, Any], where: str) -> None:
    """jsonschema matches their regexes with Python's re (additionalProperties too),
    which cannot be stopped; a caller's regex would run on the model's answer."""
    with pytest.raises(ApiError) as info:
        parse(ChatCompletionBody, body(schema))
    assert info.value.status == 422
    assert f"json_schema.schema uses patternProperties at {where}, which" in str(info.value)


def test_the_word_as_a_property_name_or_a_value_is_no_keyword() -> None:
    schema = {
        "type": "object",
        "properties": {"patternProperties": {"type": "string", "enum": ["patternProperties"]}},
        "$defs": {"patternProperties": {"type": "integer"}},
        "default": {"patternProperties": {}},
    }
    parsed = parse(ChatCompletionBody, body(schema))
    assert parsed.response_format is not None and parsed.response_format.schema == schema
