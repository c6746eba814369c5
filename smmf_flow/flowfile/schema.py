"""The flow file format, as pydantic models, and the translation of pydantic's
validation errors into one located line.

::

    version: 1
    name: chat
    models: ../configs/default.toml     # optional; else $SMMF_MODELS, else configs/default.toml
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

import difflib
import re
from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, ValidationError,
                      field_validator)
from pydantic_core import PydanticCustomError

from smmf_flow.errors import FlowFileError
from smmf_flow.flowfile.loader import Document

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
InputType = Literal["str", "int", "float", "bool", "list", "dict", "any"]
#: keys of a node that configure the node itself rather than its operator
NODE_FIELDS = ("type", "after", "timeout", "retry", "description")


def _node_name(value: str) -> str:
    if not NAME_RE.match(value):
        raise PydanticCustomError(
            "name", "'{name}' is not a valid name: start with a letter or '_', then use "
            "letters, digits, '_' or '-'", {"name": value})
    return value


Name = Annotated[str, AfterValidator(_node_name)]


class InputSpec(BaseModel):
    """One named input of the flow; without ``default`` it is required."""

    model_config = ConfigDict(extra="forbid")
    type: InputType = "str"
    default: Any = None
    description: str = ""

    @property
    def required(self) -> bool:
        return "default" not in self.model_fields_set


class RetrySpec(BaseModel):
    """A node's retry policy; ``on`` names error classes of ``smmf_flow.errors``."""

    model_config = ConfigDict(extra="forbid")
    attempts: int = Field(default=3, ge=1)
    backoff: float = Field(default=0.1, ge=0)
    max_backoff: float = Field(default=5.0, ge=0)
    jitter: bool = True
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

    @field_validator("retry", mode="before")
    @classmethod
    def _attempts_shorthand(cls, value: Any) -> Any:
        return {"attempts": value} if isinstance(value, int) and not isinstance(value, bool) \
            else value

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
    stream: bool = False

    @field_validator("version")
    @classmethod
    def _supported(cls, value: int) -> int:
        if value != 1:
            raise PydanticCustomError("version", "unsupported flow version {v}; this "
                                      "smmf-flow reads version 1", {"v": value})
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
        raise doc.error(f"a flow file must be a mapping with `nodes:` at the top, not "
                        f"{_kind(doc.data)}")
    try:
        return FlowSpec.model_validate(doc.data)
    except ValidationError as exc:
        # an unknown field explains a missing one ('nodez' for 'nodes'): report it first
        errors = sorted(exc.errors(include_url=False),
                        key=lambda e: e["type"] != "extra_forbidden")
        raise _located(doc, errors[0], len(errors) - 1) from None


def _located(doc: Document, err: Any, more: int) -> FlowFileError:
    loc = tuple(err["loc"])
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
        message = f"a node must be a mapping with `type:` and its parameters, not " \
                  f"{_kind(err.get('input'))}"
    else:
        path, on_key = loc, False
        message = f"{_dotted(loc, node)}: {_lower(err['msg'])}{_got(err, kind)}"
    if more:
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    return doc.error(message, path, key=on_key, node=node)


def _unknown_field(loc: tuple[Any, ...]) -> str:
    field, parent = str(loc[-1]), loc[:-1]
    model = _model_at(parent)
    known = list(model.model_fields) if model else []
    close = difflib.get_close_matches(field, known, n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    where = {FlowSpec: "a flow", InputSpec: "an input", RetrySpec: "retry"}.get(model, "here")
    return f"unknown field '{field}' in {where}{hint} (fields: {', '.join(known)})"


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


def _got(err: Any, kind: str) -> str:
    if kind.startswith(("string_type", "int_", "float_", "bool_", "list_type", "dict_type",
                        "literal_error", "greater_than", "too_short")) or kind == "model_type":
        return f", got {_kind(err.get('input'))}"
    return ""


def _kind(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return "a mapping" if isinstance(value, dict) else "a list"
    if value is None:
        return "nothing (null)"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _lower(text: str) -> str:
    return text[:1].lower() + text[1:]


__all__ = ["FlowSpec", "InputSpec", "InputType", "NAME_RE", "NODE_FIELDS", "NodeSpec",
           "RetrySpec", "parse_spec"]
