"""Generation parameters shared by every generating operator.

``LLMOperator``, ``StreamingLLMOperator``, ``RouterOperator`` and
``FallbackOperator`` all take the same ``max_tokens``, ``temperature``, ...;
they are checked once here (a misspelt one is an error naming the node type
and the valid names) and applied to a request without overriding what the
request set itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from smmf_flow.errors import FlowError
from smmf_flow.models.types import ChatMessage, ChatRequest, ResponseFormat


class GenerationParams(BaseModel):
    """What a generating operator may set on the requests it sends."""

    model_config = ConfigDict(extra="forbid")
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    stop: list[str] | None = None
    seed: int | None = None
    response_format: ResponseFormat | None = None
    json_schema: dict[str, Any] | None = None
    system: str | None = None
    metadata: dict[str, Any] | None = None


VALID = sorted(GenerationParams.model_fields)


def invalid(exc: ValidationError, owner: str, what: str, valid: Iterable[str], *,
            listed: str = "valid") -> FlowError:
    """One line for the first problem pydantic found in an operator's settings: the
    field, and the valid ones when the field is unknown (a misspelling, usually)."""
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "?"
    if first["type"] == "extra_forbidden":
        return FlowError(f"{owner}: unknown {what} '{field}' ({listed}: {', '.join(valid)})")
    return FlowError(f"{owner}: {what} '{field}': {first['msg']}")


def check_params(owner: str, params: dict[str, Any]) -> dict[str, Any]:
    """Validated generation parameters (only those given), or a ``FlowError``."""
    try:
        checked = GenerationParams(**params)
    except ValidationError as exc:
        raise invalid(exc, owner, "parameter", VALID) from None
    given = checked.model_dump(exclude_unset=True, by_alias=True)
    if checked.json_schema is not None:
        given.pop("json_schema")
        given["response_format"] = ResponseFormat.from_schema(checked.json_schema)
    elif checked.response_format is not None:
        given["response_format"] = checked.response_format
    return given


def export_params(given: dict[str, Any]) -> dict[str, Any]:
    """The generation parameters as a flow file writes them (the inverse of
    ``check_params``): a JSON-schema format goes back to ``json_schema``."""
    out = dict(given)
    fmt = out.pop("response_format", None)
    if fmt is not None:
        if fmt.type == "json_schema" and fmt.schema is not None:
            out["json_schema"] = fmt.schema
        else:
            out["response_format"] = fmt.model_dump(by_alias=True, exclude_none=True)
    return out


def to_request(value: Any, params: dict[str, Any], owner: str) -> ChatRequest:
    """Turn an operator's input (request, prompt string or mapping) into a request,
    with ``params`` filling what the request did not set."""
    if isinstance(value, ChatRequest):
        request = value
    elif isinstance(value, str):
        request = ChatRequest.of(value)
    elif isinstance(value, dict):
        try:
            request = ChatRequest.model_validate(value)
        except ValidationError as exc:
            raise FlowError(f"{owner}: input is not a valid chat request: "
                            f"{exc.errors()[0]['msg']}") from None
    else:
        raise FlowError(f"{owner}: expected a chat request, a prompt string or a mapping, "
                        f"got {type(value).__name__}")
    if not params:
        return request
    update = {k: v for k, v in params.items()
              if k not in request.model_fields_set and k not in ("system", "metadata")}
    if params.get("metadata"):
        update["metadata"] = {**params["metadata"], **request.metadata}
    if params.get("system") and not any(m.role == "system" for m in request.messages):
        update["messages"] = [ChatMessage(role="system", content=params["system"]),
                              *request.messages]
    return request.model_copy(update=update) if update else request
