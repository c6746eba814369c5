"""Reading a node's input when it may come from a flow file.

A YAML flow hands its root node the flow's inputs as a mapping (``{question:
...}``), while a Python flow usually passes the value itself. Operators that
take one text (a question, a task, a path) accept both: the value, or a
mapping holding it under one of a few conventional keys.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from smmf_flow.errors import InputError


def pick(value: Any, keys: Sequence[str], owner: str, what: str) -> Any:
    """``value``, or the item of a mapping ``value`` under the first of ``keys`` it has."""
    if not isinstance(value, Mapping):
        return value
    key = next((k for k in keys if k in value), None)
    if key is None:
        raise InputError(f"{owner}: the input mapping has no {what} (looked for "
                        f"{', '.join(keys)}; it has {', '.join(map(str, value)) or 'nothing'})")
    return value[key]


def text(value: Any, keys: Sequence[str], owner: str, what: str) -> str:
    """A non-empty string given directly or under one of ``keys``."""
    found = pick(value, keys, owner, what)
    if not isinstance(found, str) or not found.strip():
        raise InputError(f"{owner}: the {what} must be a non-empty string, got {found!r:.60}")
    return found


__all__ = ["pick", "text"]
