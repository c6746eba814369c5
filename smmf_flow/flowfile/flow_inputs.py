"""A flow's declared inputs: checking and converting the values a run is given.

Values typed on a command line arrive as strings (``--input n=3``) and are
converted to the declared type; values from JSON must already have it (the
types, and what each takes: ``input_types.py``). A flow that declares no
inputs takes whatever it is given. A value that does not fit is an
``InputError``: the flow is fine, the run's input is not.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from smmf_flow.errors import InputError, did_you_mean
from smmf_flow.flowfile.input_types import JSON_NAMES, as_declared
from smmf_flow.flowfile.schema import InputSpec

#: how a missing input is given on the command line (``{name}``: the input's name)
CLI_HINT = "pass --input {name}=..."


def prepare_inputs(
    specs: Mapping[str, InputSpec],
    values: Any,
    *,
    from_strings: frozenset[str] = frozenset(),
    hint: str = CLI_HINT,
) -> Any:
    """The run input for ``values``; ``from_strings`` names values typed as text.
    ``hint`` tells the caller how to give a missing input (``{name}`` is its name):
    the command line's way by default, an HTTP body's by the server."""
    if not specs:
        return values
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise InputError(
            f"the flow takes named inputs ({', '.join(specs)}); give a JSON "
            f"object, not {type(values).__name__}"
        )
    unknown = [k for k in values if k not in specs]
    if unknown:
        raise InputError(
            f"unknown input '{unknown[0]}'{did_you_mean(str(unknown[0]), specs)} "
            f"(the flow's inputs: {', '.join(specs)})"
        )
    out: dict[str, Any] = {}
    for name, spec in specs.items():
        if name not in values:
            if spec.required:
                raise InputError(f"missing input '{name}' ({spec.type}); {hint.format(name=name)}")
            out[name] = spec.default
            continue
        out[name] = _convert(name, spec.type, values[name], name in from_strings)
    return out


def _convert(name: str, declared: str, value: Any, from_string: bool) -> Any:
    type_name = JSON_NAMES.get(declared, declared)
    if from_string and type_name in ("list", "dict"):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise InputError(f"input '{name}' ({declared}) must be JSON: {exc.msg}") from None
    try:
        return as_declared(declared, value, from_string=from_string)
    except ValidationError as exc:
        text = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        reason = exc.errors(include_url=False)[0]["msg"]
        raise InputError(
            f"input '{name}' must be {declared}, got {text} ({reason[:1].lower() + reason[1:]})"
        ) from None


__all__ = ["CLI_HINT", "prepare_inputs"]
