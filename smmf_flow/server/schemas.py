"""Request bodies of the HTTP API, validated once at the edge.

These are the only pydantic models a request meets: a body is parsed and
validated straight from its bytes (``parse``), and the handlers turn it into the
library's own ``ChatRequest`` with ``model_construct`` (no second validation),
because every constraint ``ChatRequest`` checks is checked here already.

The bodies accept what OpenAI's clients send. Fields that change nothing here
(``user``, ``logit_bias``, penalties, ``parallel_tool_calls``...) are accepted
and ignored, as other OpenAI-compatible servers do; fields whose meaning cannot
be honoured (``n`` > 1, tools, image parts, token-id inputs) are refused with a
message that says so, rather than silently answered differently.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from smmf_flow.models.schema_walk import subschemas
from smmf_flow.models.types import ChatMessage, ChatRequest, ResponseFormat
from smmf_flow.server.errors import ApiError, body_error

Body = TypeVar("Body", bound=BaseModel)
#: how deeply a response_format JSON schema may nest (checking and compiling it recurse)
MAX_SCHEMA_DEPTH = 32


def parse(model: type[Body], raw: bytes, *, optional: bool = False) -> Body:
    """Validate the JSON ``raw`` as ``model``; an ``ApiError`` (400/422) if it is not.

    An empty body is no JSON (400), unless the body is ``optional``: then it is
    ``{}``, so that ``curl -X POST`` without ``-d`` works where nothing is needed."""
    if not raw.strip():
        if not optional:
            raise ApiError(
                400, "the request body is empty; send a JSON object", code="invalid_json"
            )
        raw = b"{}"
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise body_error(exc) from None


class _Lenient(BaseModel):
    #: unknown fields are let through (OpenAI clients send vendor ones); NaN and
    #: Infinity, which JSON lacks but the parser reads, are not numbers here
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


class ContentPart(_Lenient):
    type: str
    text: str | None = None


class Message(_Lenient):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    #: required whatever the role: only an assistant's tool calls may stand without
    #: content, and this server takes no tool calls (``tools`` is refused)
    content: str | list[ContentPart]

    def text(self, index: int) -> str:
        """The message's text; only text parts can be served by these models."""
        if isinstance(self.content, str):
            return self.content
        parts = []
        for part in self.content:
            if part.type != "text":
                raise ApiError(
                    422,
                    f"'messages.{index}.content': parts of type "
                    f"'{part.type[:40]}' are not supported; send text parts "
                    "only",
                    code="unsupported_content",
                    param=f"messages.{index}.content",
                )
            if part.text is None:
                raise ApiError(
                    422,
                    f"'messages.{index}.content': a text part needs 'text'",
                    code="invalid_value",
                    param=f"messages.{index}.content",
                )
            parts.append(part.text)
        return "".join(parts)


class StreamOptions(_Lenient):
    include_usage: bool = False


class _Sampling(_Lenient):
    """Parameters shared by chat and text completions (ranges as in ``ChatRequest``)."""

    model: str = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = Field(default=None, ge=1)
    stream: bool = False
    stream_options: StreamOptions | None = None

    @field_validator("n", "best_of", check_fields=False)
    @classmethod
    def _one_choice(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and value != 1:
            raise ValueError(
                f"only {info.field_name} = 1 is supported; send one request per choice"
            )
        return value

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    @property
    def stops(self) -> list[str] | None:
        return [self.stop] if isinstance(self.stop, str) else self.stop

    def request(
        self,
        messages: list[ChatMessage],
        *,
        max_tokens: int | None,
        response_format: ResponseFormat | None = None,
        metadata: dict[str, Any] | None = None,
        assistant_prefix: str | None = None,
    ) -> ChatRequest:
        """The library's request; every field was validated by this body already."""
        return ChatRequest.model_construct(
            messages=messages,
            max_tokens=max_tokens,
            temperature=0.0 if self.temperature is None else self.temperature,
            top_p=1.0 if self.top_p is None else self.top_p,
            stop=self.stops or None,
            seed=self.seed,
            response_format=response_format,
            assistant_prefix=assistant_prefix,
            metadata=metadata or {},
        )


class ChatCompletionBody(_Sampling):
    """``POST /v1/chat/completions``."""

    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    response_format: ResponseFormat | None = None
    metadata: dict[str, Any] | None = None
    tools: list[Any] | None = None
    #: vLLM's extension: the last (assistant) message is the start of the answer, to
    #: be continued as the same turn; smmf-flow's proxy backend sends it to continue
    #: a stream another model broke off
    continue_final_message: bool = False

    @field_validator("response_format")
    @classmethod
    def _valid_schema(cls, value: ResponseFormat | None) -> ResponseFormat | None:
        """A JSON schema that is not one is the client's error (a 422 here), whatever
        the backend would have made of it."""
        schema = value.schema if value is not None and value.type == "json_schema" else None
        if schema:
            from jsonschema import Draft202012Validator, SchemaError

            if _depth(schema) > MAX_SCHEMA_DEPTH:
                raise ValueError(
                    f"json_schema.schema is nested more than {MAX_SCHEMA_DEPTH} levels deep"
                )
            try:
                Draft202012Validator.check_schema(schema)
            except SchemaError as exc:
                where = "/".join(str(p) for p in exc.path) or "(root)"
                raise ValueError(
                    f"json_schema.schema is not a valid JSON schema at {where}: {exc.message[:200]}"
                ) from None
            found = next((at for at, sub in subschemas(schema) if "patternProperties" in sub), None)
            if found is not None:
                raise ValueError(
                    f"json_schema.schema uses patternProperties at {found}, which this server "
                    "does not accept: jsonschema matches its regexes with Python's re, which "
                    "cannot be stopped (a `pattern` on strings is fine); name the properties"
                )
        return value

    @field_validator("tools")
    @classmethod
    def _no_tools(cls, value: list[Any] | None) -> list[Any] | None:
        if value:
            raise ValueError(
                "tool calling is not supported by this server; use a flow "
                "with an agent node instead"
            )
        return value

    def to_request(self) -> ChatRequest:
        messages = [
            ChatMessage.model_construct(
                role="system" if m.role == "developer" else m.role, content=m.text(i)
            )
            for i, m in enumerate(self.messages)
        ]
        prefix = None
        if self.continue_final_message:
            if messages[-1].role != "assistant" or len(messages) < 2:
                raise ApiError(
                    422,
                    "'continue_final_message' needs the last message to be "
                    "the assistant's partial answer, after at least one other",
                    code="invalid_value",
                    param="messages",
                )
            prefix = messages.pop().content
        return self.request(
            messages,
            max_tokens=self.max_completion_tokens or self.max_tokens,
            response_format=self.response_format,
            metadata=self.metadata,
            assistant_prefix=prefix,
        )


class CompletionBody(_Sampling):
    """``POST /v1/completions`` (each prompt is sent to the model as one user message)."""

    prompt: str | list[str]
    max_tokens: int | None = Field(default=16, ge=1)  # OpenAI's default for this endpoint
    echo: bool = False
    suffix: str | None = None
    logprobs: int | None = None
    best_of: int | None = None

    @field_validator("echo", "suffix", "logprobs")
    @classmethod
    def _unsupported(cls, value: Any) -> Any:
        if value:
            raise ValueError("not supported by this server; leave it unset")
        return value

    @field_validator("prompt")
    @classmethod
    def _some_prompt(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError("give at least one prompt")
        return value

    @property
    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else self.prompt

    def to_request(self, prompt: str) -> ChatRequest:
        message = ChatMessage.model_construct(role="user", content=prompt)
        return self.request([message], max_tokens=self.max_tokens)


class EmbeddingBody(_Lenient):
    """``POST /v1/embeddings``."""

    model: str = Field(min_length=1)
    input: str | list[str]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)

    @field_validator("input", mode="before")
    @classmethod
    def _texts_only(cls, value: Any) -> Any:
        if isinstance(value, list) and value and not isinstance(value[0], str):
            raise ValueError("token-id inputs are not supported; send strings")
        if isinstance(value, list) and not value:
            raise ValueError("give at least one string")
        return value

    @property
    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else self.input


def _depth(value: Any) -> int:
    """How deeply ``value`` nests lists and objects (counted without recursion)."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            todo += [
                (child, depth + 1) for child in (item.values() if isinstance(item, dict) else item)
            ]
    return deepest


class FlowRunBody(BaseModel):
    """``POST /v1/flows/{name}/run``: the flow's inputs, and whether to stream."""

    model_config = ConfigDict(extra="forbid")
    inputs: dict[str, Any] = Field(default_factory=dict)
    stream: bool | None = None


__all__ = ["ChatCompletionBody", "CompletionBody", "EmbeddingBody", "FlowRunBody", "parse"]
