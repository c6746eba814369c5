"""The flow file format, as pydantic models, and the translation of pydantic's
validation errors into one located line.

::

    version: 1
    name: chat
    models: ../configs/default.toml     # optional; else $SMMF_MODELS, else the packaged one
    plugins: [my_ops]                   # optional; modules that may add types and functions
    inputs:
      question: str                     # or {type: str, default: ..., description: ...}
    nodes:
      prompt: {type: prompt, template: "Answer briefly: {{ question }}"}
      answer: {type: llm, model: smollm2, max_tokens: 64, after: prompt}
    edges: ["prompt >> answer"]         # and/or `after:` on a node
    output: answer
    stream: false

Every key of a node besides ``type``, ``after``, ``timeout``, ``retry`` and
``description`` is a parameter of that node's operator.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from smmf_flow.errors import FlowFileError, did_you_mean
from smmf_flow.flowfile.input_types import as_declared
from smmf_flow.flowfile.loader import Document
from smmf_flow.operators.params import SHORTHAND, Flag, RetryParams, field_path, problem, value_kind

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
#: a flow input's type: Python's names or JSON Schema's
InputType = Literal[
    "str",
    "int",
    "float",
    "bool",
    "list",
    "dict",
    "any",
    "string",
    "integer",
    "number",
    "boolean",
    "array",
    "object",
]
#: keys of a node that configure the node itself rather than its operator
NODE_FIELDS = ("type", "after", "timeout", "retry", "description")


def _node_name(value: str) -> str:
    if not NAME_RE.match(value):
        raise PydanticCustomError(
            "name",
            "'{name}' is not a valid name: start with a letter or '_', then use "
            "letters, digits, '_' or '-'",
            {"name": value},
        )
    return value


def _text_name(value: Any) -> Any:
    """A name YAML read as a number or boolean (``1:``, ``true:``): say it must be text."""
    if isinstance(value, (int, float, bool)):
        raise PydanticCustomError(
            "name",
            "{name} is not a valid name: a name is text that starts with a letter or '_' "
            "(write e.g. node_{name})",
            {"name": str(value).lower() if isinstance(value, bool) else str(value)},
        )
    return value


Name = Annotated[str, BeforeValidator(_text_name), AfterValidator(_node_name)]


class InputSpec(BaseModel):
    """One named input of the flow (a type name alone is a required input of that
    type); without ``default`` it is required."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={SHORTHAND: {"enum": list(get_args(InputType))}}
    )
    type: InputType = "str"
    default: Any = None
    description: str = ""

    @field_validator("default")
    @classmethod
    def _fits_the_type(cls, value: Any, info: ValidationInfo) -> Any:
        """A default is a value of the input's type, as a JSON value would have to be
        (``default: "abc"`` for an int was run as the string); ``null`` stays the
        "no value" of an optional input."""
        declared = info.data.get("type")
        if value is None or declared is None:
            return value
        try:
            return as_declared(declared, value)
        except ValidationError:
            article = "an" if declared[0] in "aeiou" else "a"
            raise PydanticCustomError(
                "default_type",
                "{value} is not {kind}",
                {"value": value_kind(value), "kind": f"{article} {declared}"},
            ) from None

    @property
    def required(self) -> bool:
        return "default" not in self.model_fields_set


class RetrySpec(RetryParams):
    """A node's retry policy (a number alone is the attempts); ``on`` names error
    classes of ``smmf_flow.errors`` or built-in exceptions."""

    on: list[str] = Field(default_factory=lambda: ["Exception"])


class NodeSpec(BaseModel):
    """One node: its operator type, its place in the graph, and its parameters."""

    model_config = ConfigDict(extra="allow")
    type: str = Field(min_length=1)
    after: list[Name] = Field(default_factory=list)
    timeout: float | None = Field(default=None, gt=0)
    retry: RetrySpec | None = None
    description: str = ""

    @field_validator("after", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @property
    def params(self) -> dict[str, Any]:
        """The operator's constructor arguments."""
        return dict(self.model_extra or {})


class FlowSpec(BaseModel):
    """A whole flow file."""

    model_config = ConfigDict(extra="forbid")
    version: int = 1
    name: str | None = None
    description: str = ""
    models: str | None = None
    plugins: list[str] = Field(default_factory=list)
    inputs: dict[Name, InputSpec] = Field(default_factory=dict)
    nodes: dict[Name, NodeSpec] = Field(min_length=1)
    edges: list[str] = Field(default_factory=list)
    output: str | None = None
    stream: Flag = False

    @field_validator("version")
    @classmethod
    def _supported(cls, value: int) -> int:
        if value != 1:
            raise PydanticCustomError(
                "version",
                "unsupported flow version {v}; this smmf-flow reads version 1",
                {"v": value},
            )
        return value

    @field_validator("inputs", mode="before")
    @classmethod
    def _type_shorthand(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: {"type": v} if isinstance(v, str) else v for k, v in value.items()}
        return value


# --- located errors ------------------------------------------------------------------


def parse_spec(doc: Document) -> FlowSpec:
    """Validate ``doc.data`` as a flow; raise a ``FlowFileError`` at the first bad spot."""
    if not isinstance(doc.data, dict):
        raise doc.error(
            f"a flow file must be a mapping with `nodes:` at the top, not {value_kind(doc.data)}"
        )
    try:
        return FlowSpec.model_validate(doc.data)
    except ValidationError as exc:
        # an unknown field explains a missing one ('nodez' for 'nodes'): report it first
        errors = sorted(exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
        raise _located(doc, errors[0], len(errors) - 1) from None


def _located(doc: Document, err: Any, more: int) -> FlowFileError:
    loc = field_path(FlowSpec, tuple(err["loc"]), unknown=err["type"] == "extra_forbidden")
    if err["loc"] and err["loc"][-1] == "[key]" and loc[-1:] != ("[key]",):
        loc = (*loc, "[key]")
    node = str(loc[1]) if len(loc) > 1 and loc[0] == "nodes" else None
    kind = err["type"]
    if loc and loc[-1] == "[key]":
        path, on_key, node = loc[:-1], True, None
        message = err["msg"]
    elif kind == "extra_forbidden":
        path, on_key = loc, True
        message = _unknown_field(loc)
    elif kind == "missing":
        path, on_key = loc[:-1], False
        message = f"missing required field '{loc[-1]}'"
        if loc == ("nodes",):
            message = "missing required field 'nodes' (the flow's operators, name → type)"
    elif len(loc) == 2 and loc[0] == "nodes":
        path, on_key = loc, False
        message = (
            f"a node must be a mapping with `type:` and its parameters, not "
            f"{value_kind(err.get('input'))}"
        )
    else:
        path, on_key = loc, False
        message = f"{_dotted(loc, node)}: {problem(err)}"
    if more:
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    return doc.error(message, path, key=on_key, node=node)


def _unknown_field(loc: tuple[Any, ...]) -> str:
    field, parent = str(loc[-1]), loc[:-1]
    model = _model_at(parent)
    known = list(model.model_fields) if model else []
    names: dict[type[BaseModel] | None, str] = {
        FlowSpec: "a flow",
        InputSpec: "an input",
        RetrySpec: "retry",
    }
    where = names.get(model, "here")
    return (
        f"unknown field '{field}' in {where}{did_you_mean(field, known)} (fields: "
        f"{', '.join(known)})"
    )


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    if loc == ():
        return FlowSpec
    if len(loc) == 2 and loc[0] == "inputs":
        return InputSpec
    if len(loc) == 3 and loc[0] == "nodes" and loc[2] == "retry":
        return RetrySpec
    return None


def _dotted(loc: tuple[Any, ...], node: str | None) -> str:
    parts = loc[2:] if node is not None else loc
    text = ".".join(str(p) for p in parts) or str(loc[-1])
    return f"field '{text}'"


__all__ = [
    "NAME_RE",
    "NODE_FIELDS",
    "FlowSpec",
    "InputSpec",
    "InputType",
    "NodeSpec",
    "RetrySpec",
    "parse_spec",
]
