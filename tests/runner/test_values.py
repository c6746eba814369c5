"""``jsonable``: a run's output as JSON-ready data (the CLI's --json, the flow endpoints)."""

import dataclasses
import enum
import json
from typing import Any

import pytest
from pydantic import BaseModel

from smmf_flow.runner.values import jsonable


class Colour(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Hit:
    source: str
    score: float
    tags: frozenset[str]


class Reply(BaseModel):
    text: str
    colour: Colour


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("text", "text"),
        (3, 3),
        (None, None),
        ({1: (1, 2)}, {"1": [1, 2]}),
        (Colour.RED, "red"),
        (Hit("a.md", 0.5, frozenset({"x"})), {"source": "a.md", "score": 0.5, "tags": ["x"]}),
        (Reply(text="hi", colour=Colour.RED), {"text": "hi", "colour": "red"}),
        (ValueError("bad"), "ValueError: bad"),
        (object, "<class 'object'>"),
    ],
)
def test_values_become_json_data(value: Any, expected: Any) -> None:
    assert jsonable(value) == expected
    json.dumps(jsonable(value))
