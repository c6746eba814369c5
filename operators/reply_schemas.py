"""The JSON shapes that the answer and agent operators require of a model.

Each is a JSON schema that a backend enforces while decoding (a grammar on
llama.cpp, ``response_format`` on OpenAI-compatible APIs). Free text inside
them is a ``text_field``: capped in length, so an answer cannot run past
``max_tokens`` and leave the JSON unfinished, and free of control characters
and escapes, which JSON forbids raw in strings but a permissive grammar would
let a model write (a raw newline would make the whole reply unparseable).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from smmf_flow.operators.llm import ChatOperator
from smmf_flow.operators.params import SamplingParams, configure

if TYPE_CHECKING:
    from smmf_flow.operators.tools import Tool


#: strings in tool arguments are capped at this length unless their schema says otherwise
ARGUMENT_CHARS = 300
_SAFE = '[^\\x00-\\x1f"\\\\]'


def text_field(max_chars: int, min_chars: int = 1) -> dict[str, Any]:
    """A one-line string of ``min_chars`` to ``max_chars`` characters without quotes
    or escapes (the pattern applies to the raw JSON text under a grammar and to
    the decoded value under validation; without escapes the two agree)."""
    return {"type": "string", "pattern": f"^{_SAFE}{{{min_chars},{max_chars}}}$"}


def harden(schema: Any) -> Any:
    """``schema`` with every free-form string made a ``text_field`` (its own
    ``minLength``/``maxLength`` kept, else 0 to ``ARGUMENT_CHARS``): a model
    filling a tool's arguments then cannot break the JSON or run on forever."""
    if isinstance(schema, list):
        return [harden(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {
        k: harden(v) if k not in ("enum", "const", "default", "examples") else v
        for k, v in schema.items()
    }
    if out.get("type") == "string" and not {"pattern", "enum", "const", "format"} & set(out):
        low, high = out.pop("minLength", 0), out.pop("maxLength", ARGUMENT_CHARS)
        out.update(text_field(high, low))
    return out


def answer_schema(passages: int, max_chars: int) -> dict[str, Any]:
    """``{"answer": ..., "sources": [n, ...]}`` citing some of ``passages`` numbered
    passages. The answer comes first: a small model asked for sources first
    tends to list every passage it was shown."""
    return {
        "type": "object",
        "properties": {
            "answer": text_field(max_chars),
            "sources": {
                "type": "array",
                "items": {"enum": list(range(1, passages + 1))},
                "minItems": 1,
                "maxItems": passages,
            },
        },
        "required": ["answer", "sources"],
        "additionalProperties": False,
    }


def step_schema(
    tools: Mapping[str, Tool], final_chars: int, *, final: bool = True
) -> dict[str, Any]:
    """One agent step: ``{"tool": name, "arguments": {...}}`` for one of ``tools``
    (arguments per that tool's schema), or (if ``final``) ``{"final": ...}``."""
    variants: list[dict[str, Any]] = []
    defs: dict[str, Any] = {}
    for name, item in tools.items():
        arguments = harden(item.schema())
        defs.update(arguments.pop("$defs", {}))
        arguments.pop("title", None)
        variants.append(
            {
                "type": "object",
                "properties": {"tool": {"const": name}, "arguments": arguments},
                "required": ["tool", "arguments"],
                "additionalProperties": False,
            }
        )
    if final:
        variants.append(final_schema(final_chars))
    schema: dict[str, Any] = {"anyOf": variants}
    if defs:
        schema["$defs"] = defs
    return schema


def final_schema(final_chars: int) -> dict[str, Any]:
    """An agent's final answer, ``{"final": ...}``, and nothing else."""
    return {
        "type": "object",
        "properties": {"final": text_field(final_chars)},
        "required": ["final"],
        "additionalProperties": False,
    }


class StructuredParams(SamplingParams):
    """What a node that decides its replies' JSON shape itself takes: the model (or
    group) and sampling, greedy by default since the reply must parse; no
    ``response_format``/``json_schema`` of the user's."""

    model: str | None = None
    temperature: float | None = Field(default=0.0, ge=0.0, le=2.0)


class StructuredChatOperator(ChatOperator):
    """A node that asks a model or group by name (as ``LLMOperator``) for replies
    that must be JSON of a shape it sets on each request; what it takes and gives
    is its own (a retrieval and an answer, a task and an agent's result)."""

    params_model: ClassVar[type[StructuredParams]] = StructuredParams
    config: StructuredParams

    def __init__(self, model: str | None = None, **params: Any) -> None:
        self.config, options = configure(self.params_model, self.kind, {"model": model, **params})
        self.model = self.config.model
        super().__init__(**options)


__all__ = [
    "ARGUMENT_CHARS",
    "StructuredChatOperator",
    "StructuredParams",
    "answer_schema",
    "final_schema",
    "harden",
    "step_schema",
    "text_field",
]
