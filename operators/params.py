"""Operator parameters: one pydantic model per operator type.

The model is the one place where an operator type's parameters are declared.
The constructor validates through it (``configure``): a misspelt name is an
``UnknownParameter`` naming the closest valid one, a bad value a ``FlowError``
whose ``param`` is the dotted path to it (``routes.0.when.regex``), so a flow
file points at the exact key; ``params()`` (export) dumps it without its
defaults; and the flow-file JSON schema is generated from it. An operator
class names its model in ``params_model``.

Generation parameters are shared by inheritance: ``SamplingParams`` (how to
sample) for every node that generates, ``FormatParams`` (the answer's shape)
and ``GenerationParams`` (what a node that passes on its input's request may
add to it: a system message, a response format).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import UnionType
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from smmf_flow.dag import RetryPolicy
from smmf_flow.errors import FlowError, UnknownParameter, did_you_mean
from smmf_flow.models.types import ResponseFormat

#: what every node takes besides its operator's parameters
NODE_OPTIONS = ("name", "timeout", "retry", "dag", "input_type", "output_type")
#: a yes/no parameter: ``true`` or ``false`` only (not ``"yes"``, ``1`` or ``"on"``)
Flag = Annotated[bool, Strict()]
#: the JSON-schema key under which a model names the short form it also takes (a
#: number for a retry policy, a path for a store); the flow-file schema offers both
SHORTHAND = "x-shorthand"


class OperatorParams(BaseModel):
    """Base of every operator's parameter model: unknown names are refused."""

    model_config = ConfigDict(extra="forbid")

    def exported(self) -> dict[str, Any]:
        """The parameters as a flow file writes them: only those not at their default."""
        return self.model_dump(exclude_defaults=True, by_alias=True)


P = TypeVar("P", bound=OperatorParams)


def configure(model: type[P], kind: str, values: Mapping[str, Any]) -> tuple[P, dict[str, Any]]:
    """Split a constructor's keyword arguments into the node options (name,
    timeout, ...) and the parameters, validated by ``model``."""
    options = {k: v for k, v in values.items() if k in NODE_OPTIONS}
    given = {k: v for k, v in values.items() if k not in NODE_OPTIONS}
    return parse_params(model, given, kind=kind, node=options.get("name")), options


def parse_params(
    model: type[P], values: Mapping[str, Any], *, kind: str, node: str | None = None
) -> P:
    """``values`` validated by ``model``; the first problem as a located error."""
    try:
        return model.model_validate(dict(values))
    except ValidationError as exc:
        raise params_error(exc, model, kind, node) from None


def params_error(
    exc: ValidationError, model: type[BaseModel], kind: str, node: str | None
) -> FlowError:
    """One error for what pydantic found (an unknown name first: a misspelt
    parameter explains a missing one)."""
    errors = sorted(exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
    first = errors[0]
    loc = field_path(model, tuple(first["loc"]), unknown=first["type"] == "extra_forbidden")
    param = ".".join(str(p) for p in loc) or None
    name = str(loc[-1]) if loc else ""
    if first["type"] == "extra_forbidden":
        if len(loc) == 1:
            valid = parameter_names(model)
            return UnknownParameter(
                f"unknown parameter '{name}'{did_you_mean(name, valid)} "
                f"({kind} parameters: {', '.join(valid)})",
                node=node,
                param=param,
            )
        inner = model_at(model, loc[:-1])
        fields = list(inner.model_fields) if inner else []
        parent = ".".join(str(p) for p in loc[:-1])
        return UnknownParameter(
            f"unknown field '{name}' in {parent}"
            f"{did_you_mean(name, fields)} (fields: {', '.join(fields)})",
            node=node,
            param=param,
        )
    if first["type"] == "missing":
        what = "parameter" if len(loc) == 1 else "field"
        return FlowError(f"missing required {what} '{param}'", node=node, param=param)
    where = f"parameter '{param}': " if param else ""
    return FlowError(f"{where}{problem(first)}", node=node, param=param)


def problem(err: ErrorDetails) -> str:
    """pydantic's message for one problem, lower-cased, with the value it got when
    the value is what is wrong (``input should be a valid integer, got 'x'``)."""
    message = err["msg"].removeprefix("Value error, ")
    message = message[:1].lower() + message[1:]
    kind = err["type"]
    if kind.startswith(
        (
            "string_",
            "int_",
            "float_",
            "bool_",
            "list_type",
            "dict_type",
            "literal_error",
            "greater_than",
            "less_than",
            "model_type",
            "enum",
        )
    ):
        return f"{message}, got {value_kind(err.get('input'))}"
    return message


def value_kind(value: Any) -> str:
    """A value as a message shows it: short, and a collection by its kind."""
    if isinstance(value, (dict, list)):
        return "a mapping" if isinstance(value, dict) else "a list"
    if value is None:
        return "nothing (null)"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parameter_names(model: type[BaseModel]) -> list[str]:
    """The names a node of this type takes, as a flow file writes them: its own
    first, then those it shares (generation parameters)."""
    names: list[str] = []
    for cls in model.__mro__:
        names += [
            n
            for n in vars(cls).get("__annotations__", {})
            if n in model.model_fields and n not in names
        ]
    return [model.model_fields[n].alias or n for n in names]


def field_path(
    model: type[BaseModel], loc: tuple[Any, ...], *, unknown: bool = False
) -> tuple[Any, ...]:
    """pydantic's ``loc`` without the names it gives union members (``str``,
    ``WhenSpec``): the path of keys and indexes a file writes. With ``unknown``
    the last part is a name the model does not have, and is kept."""
    out: list[Any] = []
    current: Any = model
    for i, part in enumerate(loc):
        found = _as_model(current)
        if isinstance(part, int):
            out.append(part)
        elif found is not None and part in found.model_fields:
            out.append(part)
            current = found.model_fields[part].annotation
        elif _mapping_values(current) is not None:
            out.append(part)
            current = _mapping_values(current)
        elif unknown and i == len(loc) - 1:
            out.append(part)
    return tuple(out)


def _mapping_values(tp: Any) -> Any:
    """The value type of a mapping type (looked for through unions), or None."""
    if get_origin(tp) in (dict, Mapping):
        return get_args(tp)[1] if get_args(tp) else Any
    for arg in get_args(tp) if get_origin(tp) in (Union, UnionType) else ():
        found = _mapping_values(arg)
        if found is not None:
            return found
    return None


def model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model found at ``loc`` inside ``model`` (list indexes and
    optional or union types looked through), or None."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        found = _as_model(current)
        if found is None or part not in found.model_fields:
            return None
        current = found.model_fields[part].annotation
    return _as_model(current)


def _as_model(tp: Any) -> type[BaseModel] | None:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp
    for arg in get_args(tp):
        found = _as_model(arg)
        if found is not None:
            return found
    return None


def custom(kind: str, message: str) -> PydanticCustomError:
    """A problem a validator of a parameter model reports, worded as given."""
    return PydanticCustomError(kind, message)


# --- shared parameter groups ---------------------------------------------------------


class RetryParams(OperatorParams):
    """A ``RetryPolicy``'s numbers (a number alone is the attempts): how often, and
    how long to wait between tries."""

    model_config = ConfigDict(json_schema_extra={SHORTHAND: {"type": "integer", "minimum": 1}})

    attempts: int = Field(default=3, ge=1)
    backoff: float = Field(default=0.1, ge=0)
    max_backoff: float = Field(default=5.0, ge=0)
    jitter: Flag = True

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return {"attempts": value}
        if isinstance(value, RetryPolicy):
            return {name: getattr(value, name) for name in RetryParams.model_fields}
        return value

    def policy(self, on: tuple[type[BaseException], ...] = (Exception,)) -> RetryPolicy:
        return RetryPolicy(
            attempts=self.attempts,
            backoff=self.backoff,
            max_backoff=self.max_backoff,
            jitter=self.jitter,
            on=on,
        )


class SamplingParams(OperatorParams):
    """How a generating node samples; each fills what a request does not set."""

    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    stop: list[str] | None = None
    seed: int | None = None
    metadata: dict[str, Any] | None = None

    def request_fields(self) -> dict[str, Any]:
        """What this node sets on the requests it sends (the fields given)."""
        return {
            name: getattr(self, name)
            for name in SamplingParams.model_fields
            if getattr(self, name) is not None
        }


class FormatParams(OperatorParams):
    """The shape the answer must have: a ``response_format``, or a bare
    ``json_schema`` (the short way to ask for JSON under a schema)."""

    response_format: ResponseFormat | None = None
    json_schema: dict[str, Any] | None = None

    @field_validator("json_schema")
    @classmethod
    def _one_format(
        cls, schema: dict[str, Any] | None, info: ValidationInfo
    ) -> dict[str, Any] | None:
        if schema is not None and info.data.get("response_format") is not None:
            raise custom("format", "give response_format or json_schema, not both")
        return schema

    def format(self) -> ResponseFormat | None:
        if self.json_schema is not None:
            return ResponseFormat.from_schema(self.json_schema)
        return self.response_format


class GenerationParams(SamplingParams, FormatParams):
    """What a node that sends its input's request on may set: sampling, the
    answer's format, and a ``system`` message for a request that has none."""

    system: str | None = None

    def request_fields(self) -> dict[str, Any]:
        out = super().request_fields()
        if self.format() is not None:
            out["response_format"] = self.format()
        if self.system:
            out["system"] = self.system
        return out


__all__ = [
    "NODE_OPTIONS",
    "SHORTHAND",
    "Flag",
    "FormatParams",
    "GenerationParams",
    "OperatorParams",
    "RetryParams",
    "SamplingParams",
    "configure",
    "custom",
    "field_path",
    "model_at",
    "parameter_names",
    "params_error",
    "parse_params",
    "problem",
    "value_kind",
]
