"""The types a flow's input may declare, and the values each takes.

A type is named as in Python (``str``, ``int``, ``float``, ``bool``, ``list``,
``dict``, ``any``) or as in JSON Schema (``string``, ``integer``, ``number``,
``boolean``, ``array``, ``object``). Both a run's input values
(``flow_inputs.py``) and a flow file's ``default:`` (``schema.py``) are checked
here, so a default can never be a value that a run could not be given.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

_PY_TYPES: dict[str, Any] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "list": list,
    "dict": dict,
    "any": Any,
}
#: JSON Schema's type names, as the Python type each stands for
JSON_NAMES = {
    "string": "str",
    "integer": "int",
    "number": "float",
    "boolean": "bool",
    "array": "list",
    "object": "dict",
}
_ADAPTERS = {name: TypeAdapter(tp) for name, tp in _PY_TYPES.items()}


def python_type(declared: str) -> Any:
    """The Python type a declared input type names (``integer`` → ``int``)."""
    return _PY_TYPES[JSON_NAMES.get(declared, declared)]


def as_declared(declared: str, value: Any, *, from_string: bool = False) -> Any:
    """``value`` as an input of type ``declared``: command-line text converted, any
    other value (JSON, a flow file's ``default:``) as it is, but for an int taken as
    a float; a pydantic ``ValidationError`` when it does not fit."""
    type_name = JSON_NAMES.get(declared, declared)
    return _ADAPTERS[type_name].validate_python(
        value, strict=not from_string and type_name != "float"
    )


__all__ = ["JSON_NAMES", "as_declared", "python_type"]
