"""Request and response types of model calls.

Requests come from users (flows, HTTP bodies), so they are pydantic models that
validate. Results and stream chunks are made by the library once per call or per
token, so they are slotted dataclasses: cheap on the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["system", "user", "assistant", "tool"]


class ChatMessage(BaseModel):
    """One message of a chat."""

    model_config = ConfigDict(extra="forbid")
    role: Role
    content: str


class JsonSchemaFormat(BaseModel):
    """OpenAI's ``response_format.json_schema`` object."""

    model_config = ConfigDict(extra="allow")
    name: str = "output"
    schema_: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    """What shape the answer must have: free text, any JSON object, or JSON per a schema."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["text", "json_object", "json_schema"] = "text"
    json_schema: JsonSchemaFormat | None = None

    @property
    def schema(self) -> dict[str, Any] | None:  # type: ignore[override]  # pydantic's old schema()
        """The JSON schema the output must match, if one was given."""
        return self.json_schema.schema_ if self.json_schema else None

    @classmethod
    def from_schema(cls, schema: dict[str, Any], name: str = "output") -> ResponseFormat:
        """Build a ``json_schema`` format from a bare JSON schema."""
        return cls(type="json_schema", json_schema=JsonSchemaFormat(name=name, schema=schema))


class ChatRequest(BaseModel):
    """A chat completion request.

    ``assistant_prefix`` is text the answer must continue from (it is not repeated
    in the output): mid-stream fallback uses it to let a second model carry on an
    answer the first model broke off.
    """

    model_config = ConfigDict(extra="forbid")
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=256, ge=1)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    stop: list[str] | None = None
    seed: int | None = None
    response_format: ResponseFormat | None = None
    assistant_prefix: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of(cls, prompt: str, *, system: str | None = None, **params: Any) -> ChatRequest:
        """A request from one user prompt (and an optional system message)."""
        messages = [ChatMessage(role="system", content=system)] if system else []
        messages.append(ChatMessage(role="user", content=prompt))
        return cls(messages=messages, **params)


@dataclass(slots=True)
class Usage:
    """Token counts of one call."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class ChatResult:
    """A finished chat completion."""

    text: str
    finish_reason: str = "stop"
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    instance: str = ""


@dataclass(slots=True)
class ChatChunk:
    """One piece of a streamed chat completion.

    The last chunk of a stream has ``finish_reason`` set and may carry ``usage``.
    """

    text: str
    finish_reason: str | None = None
    usage: Usage | None = None
    model: str = ""
    instance: str = ""


class EmbeddingRequest(BaseModel):
    """Texts to embed."""

    model_config = ConfigDict(extra="forbid")
    input: list[str] = Field(min_length=1)


@dataclass(slots=True)
class EmbeddingResult:
    """One vector per input text, in order."""

    vectors: list[list[float]]
    model: str = ""
    instance: str = ""
    usage: Usage = field(default_factory=Usage)

    @property
    def dimension(self) -> int:
        return len(self.vectors[0]) if self.vectors else 0
