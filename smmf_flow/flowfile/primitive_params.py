"""The primitive operators' parameters as a flow file writes them.

A map, join, branch, stream or input node takes Python callables, which a file
cannot hold, so its YAML form differs from its constructor: ``expr:`` (a jinja2
expression) or ``function:`` (``module:name`` of a plugin) stand for the
callable (``node_params.py`` turns them into one). These models describe that
form: a node's YAML parameters are validated with them before the callable is
made, and the flow-file JSON schema is generated from them.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field
from pydantic.config import JsonDict

from smmf_flow.operators.params import Flag, OperatorParams

#: ``function:`` is a plugin's public module-level name. Only the JSON schema says so
#: (an editor's hint): the loader's allow-list explains a refusal better than a pattern
FUNCTION_REF: JsonDict = {
    "pattern": r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
    "description": "module:name of a function of a plugin module",
}


class FunctionParams(OperatorParams):
    """A function given as ``expr`` (a jinja2 expression) or ``function``
    (``module:name`` of a plugin module): one of the two."""

    expr: str | None = Field(default=None, description="a jinja2 expression")
    function: str | None = Field(default=None, json_schema_extra=FUNCTION_REF)


class MapParams(FunctionParams):
    """``map``: ``input`` → the expression's value; ``blocking`` runs a function
    in a worker thread."""

    blocking: Flag = False


class ReduceParams(FunctionParams):
    """``reduce_stream``: ``acc`` and ``chunk`` → the new ``acc``, from ``initial``."""

    initial: Any = None


class WhenSpec(OperatorParams):
    """A branch condition given as a function."""

    expr: str | None = None
    function: str | None = Field(default=None, json_schema_extra=FUNCTION_REF)


class BranchItem(OperatorParams):
    """One route of a branch: the node ``to`` run when ``when`` holds."""

    when: str | WhenSpec
    to: str


class BranchParams(OperatorParams):
    """``branch``: ``branches`` tried in order (all that hold run, or only the
    first with ``first_match``), else ``default``."""

    branches: list[BranchItem] = Field(min_length=1)
    default: str | None = None
    first_match: Flag = False


class InputParams(OperatorParams):
    """``input``: fixed data (``value``), a stream of ``items``, or a ``function``
    called with the run's input; with none of them, the run's input itself."""

    value: Any = None
    items: list[Any] | None = None
    function: str | None = Field(default=None, json_schema_extra=FUNCTION_REF)


#: flow-file type → the model of its YAML parameters
PRIMITIVE_PARAMS: dict[str, type[OperatorParams]] = {
    "input": InputParams,
    "map": MapParams,
    "branch": BranchParams,
    "join": FunctionParams,
    "streamify": FunctionParams,
    "unstreamify": FunctionParams,
    "transform_stream": FunctionParams,
    "reduce_stream": ReduceParams,
}

__all__ = [
    "PRIMITIVE_PARAMS",
    "BranchParams",
    "FunctionParams",
    "InputParams",
    "MapParams",
    "ReduceParams",
]
