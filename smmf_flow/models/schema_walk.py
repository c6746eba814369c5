"""Every subschema of a JSON schema, with its path: for checks on what a schema asks.

A schema nests schemas under keywords (``items``, ``anyOf``, ``not``...) and under
names (``properties``, ``$defs``...: their keys are names, not keywords), while the
values of ``enum``, ``const``, ``default`` and ``examples`` are data. The server and
the llama.cpp backend look for keywords a caller's schema must not use, or use
with too large a value; a plain search of the JSON would also find a property
that happens to be called ``patternProperties``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

#: keywords whose value maps names (not keywords) to subschemas
NAMED_SUBSCHEMAS = frozenset(
    {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}
)
#: keywords whose value is data, not a schema
DATA = frozenset({"enum", "const", "default", "examples"})


def subschemas(schema: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(path, subschema)`` for ``schema`` and every schema inside it (iteratively:
    no recursion limit, however deep)."""
    todo: list[tuple[Any, tuple[str, ...]]] = [(schema, ())]
    while todo:
        node, path = todo.pop()
        if isinstance(node, list):
            todo += [(child, (*path, str(i))) for i, child in enumerate(node)]
            continue
        if not isinstance(node, dict):
            continue
        yield "/".join(path) or "(root)", node
        for key, child in node.items():
            if key in NAMED_SUBSCHEMAS and isinstance(child, dict):
                todo += [(sub, (*path, key, name)) for name, sub in child.items()]
            elif key not in DATA:
                todo.append((child, (*path, key)))
