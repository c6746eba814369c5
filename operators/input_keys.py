"""``input_key``: which item of a mapping input an operator reads.

A YAML flow hands its root node the flow's inputs as a mapping (``{question:
...}``), while a Python flow usually passes the value itself. An operator that
reads one value (a question, a task, a path) takes it as it is, and its input
port is that value's type; given ``input_key="question"``, its port is
``Mapping[str, Any]`` and it reads that key. Nothing is guessed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from smmf_flow.errors import InputError

#: the input port of an operator given an ``input_key`` (``input_type=KEYED``)
KEYED = Mapping[str, Any]


def pick(value: Any, input_key: str | None) -> Any:
    """``value`` itself, or its item under ``input_key``; an ``InputError`` naming
    the key and the keys present when it has none."""
    if input_key is None:
        return value
    if not isinstance(value, Mapping):
        raise InputError(
            f"expected a mapping with '{input_key}' (the node's input_key), "
            f"got {type(value).__name__}"
        )
    if input_key not in value:
        present = ", ".join(map(str, value)) or "nothing"
        raise InputError(f"the input has no '{input_key}' (the node's input_key); it has {present}")
    return value[input_key]


def reads(input_key: str | None) -> dict[str, str]:
    """What an operator with this ``input_key`` reads from a mapping input, as
    ``reads_inputs()`` gives it: the key, read by the ``input_key`` parameter."""
    return {input_key: "input_key"} if input_key else {}


def text(value: Any, input_key: str | None, what: str) -> str:
    """A non-empty string, given directly or under ``input_key``."""
    found = pick(value, input_key)
    if not isinstance(found, str) or not found.strip():
        raise InputError(f"the {what} must be a non-empty string, got {found!r:.60}")
    return found


__all__ = ["KEYED", "pick", "reads", "text"]
