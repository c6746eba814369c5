"""``llama_cpp_grammar.too_many_repeats``: what a schema asks llama.cpp's grammar to
spell out (pure; the refusals over HTTP are in ``test_server_hostile``)."""

from typing import Any

import pytest

from smmf_flow.models.backends.llama_cpp_grammar import MAX_REPEAT, too_many_repeats


@pytest.mark.parametrize(
    ("schema", "found"),
    [
        ({"type": "string", "maxLength": MAX_REPEAT}, None),
        ({"type": "string", "pattern": "^[a-z]{1,1000}-\\d{4}$"}, None),
        ({"type": "string", "maxLength": MAX_REPEAT + 1}, "maxLength = 1001 at (root)"),
        (
            {"type": "object", "properties": {"tags": {"type": "array", "minItems": 5000}}},
            "minItems = 5000 at properties/tags",
        ),
        (
            {"anyOf": [{"type": "string", "pattern": "^(ab|c){2,100000}$"}]},
            "the quantifier {2,100000} of the pattern at anyOf/0",
        ),
        # a property named like the keyword, and data, are no repetition
        ({"type": "object", "properties": {"maxLength": {"type": "integer"}}}, None),
        ({"type": "integer", "enum": [{"maxLength": 10**9}]}, None),
    ],
)
def test_repetitions_over_the_bound_are_found_with_their_path(
    schema: dict[str, Any], found: str | None
) -> None:
    assert too_many_repeats(schema) == found
