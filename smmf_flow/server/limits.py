"""``ServerLimits``: how much one request may ask of the server, and the checks.

Every limit is one field of one pydantic model, so a server is configured in one
place (``create_app(..., limits=ServerLimits(...))``, the ``smmf-flow serve``
flags) and a bad value is refused when the server starts. The defaults suit a
small box serving small models; raise them for bigger ones.

A request over a limit is refused before any model is touched, with a 422 that
names the field, the limit and its value (``param`` says where); the body size
is checked even earlier, by ``body_guard.py``, as a 413.

``max_tokens`` is bounded by the model itself: asking for more tokens than the
model's context window holds is a 422 naming its ``context_length``, and a
request that gives none gets ``default_max_tokens`` when that fits beside the
prompt, else whatever room the window has left (the backend fills it exactly).
So a proxied model always forwards a bounded value, and no request can keep a
model generating for minutes by leaving ``max_tokens`` out. Counting the
prompt's tokens runs in a worker thread, never on the event loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import anyio
from pydantic import BaseModel, ConfigDict, Field

from smmf_flow.errors import SmmfError
from smmf_flow.models.types import ChatMessage, ChatRequest
from smmf_flow.server.errors import ApiError

if TYPE_CHECKING:
    from smmf_flow.scheduler.workers import ChatWorker

#: tokens a chat template adds around the messages (roles, a default system
#: prompt), kept free when deciding whether the default ``max_tokens`` fits
TEMPLATE_ALLOWANCE = 64


class ServerLimits(BaseModel):
    """What one request may ask of the server (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_body_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, description="request body size (413 above it)"
    )
    max_messages: int = Field(default=256, ge=1, description="messages in one chat")
    max_message_chars: int = Field(
        default=500_000,
        ge=1,
        description="characters of all messages (or of all prompts) of one request",
    )
    max_prompts: int = Field(default=32, ge=1, description="prompts of one /v1/completions")
    max_embedding_inputs: int = Field(default=512, ge=1, description="texts of one /v1/embeddings")
    max_embedding_chars: int = Field(
        default=32_000, ge=1, description="characters of one text to embed"
    )
    max_stop: int = Field(default=4, ge=0, description="stop strings of one request")
    max_stop_chars: int = Field(default=64, ge=1, description="characters of one stop string")
    max_flow_input_bytes: int = Field(
        default=256 * 1024, ge=2, description="JSON size of one flow run's inputs"
    )
    default_max_tokens: int = Field(
        default=512, ge=1, description="max_tokens of a request that gives none"
    )
    max_instances: int = Field(
        default=8, ge=1, description="instances an admin may scale one model to"
    )


def over(field: str, value: int, limit: int, what: str, *, param: str) -> ApiError:
    """The 422 for ``value`` (of ``what``) over the limit ``field`` = ``limit``."""
    return ApiError(
        422,
        f"'{param}': {value} {what} is more than this server takes ({field} = {limit})",
        code="limit_exceeded",
        param=param,
    )


def check_chat(limits: ServerLimits, request: ChatRequest) -> None:
    """Messages (count and characters) and stop strings of a chat request."""
    texts = [m.content for m in request.messages]
    if request.assistant_prefix is not None:
        texts.append(request.assistant_prefix)
    if len(texts) > limits.max_messages:
        raise over("max_messages", len(texts), limits.max_messages, "messages", param="messages")
    _check_chars(limits, texts, param="messages")
    _check_stop(limits, request.stop)


def check_prompts(limits: ServerLimits, prompts: Sequence[str], stop: Sequence[str] | None) -> None:
    """Prompts (count and characters) and stop strings of a text completion."""
    if len(prompts) > limits.max_prompts:
        raise over("max_prompts", len(prompts), limits.max_prompts, "prompts", param="prompt")
    _check_chars(limits, prompts, param="prompt")
    _check_stop(limits, stop)


def _check_chars(limits: ServerLimits, texts: Sequence[str], *, param: str) -> None:
    chars = sum(len(text) for text in texts)
    if chars > limits.max_message_chars:
        raise over("max_message_chars", chars, limits.max_message_chars, "characters", param=param)


def _check_stop(limits: ServerLimits, stop: Sequence[str] | None) -> None:
    stop = stop or ()
    if len(stop) > limits.max_stop:
        raise over("max_stop", len(stop), limits.max_stop, "stop strings", param="stop")
    for i, text in enumerate(stop):
        if len(text) > limits.max_stop_chars:
            raise over(
                "max_stop_chars", len(text), limits.max_stop_chars, "characters", param=f"stop.{i}"
            )


def check_embedding_inputs(limits: ServerLimits, texts: Sequence[str]) -> None:
    if len(texts) > limits.max_embedding_inputs:
        raise over(
            "max_embedding_inputs", len(texts), limits.max_embedding_inputs, "texts", param="input"
        )
    for i, text in enumerate(texts):
        if len(text) > limits.max_embedding_chars:
            raise over(
                "max_embedding_chars",
                len(text),
                limits.max_embedding_chars,
                "characters",
                param=f"input.{i}",
            )


def check_flow_input(limits: ServerLimits, size: int) -> None:
    if size > limits.max_flow_input_bytes:
        raise over(
            "max_flow_input_bytes", size, limits.max_flow_input_bytes, "bytes", param="inputs"
        )


async def bounded_max_tokens(
    limits: ServerLimits,
    worker: ChatWorker,
    messages: Sequence[ChatMessage],
    asked: int | None,
    *,
    param: str = "max_tokens",
) -> int | None:
    """The ``max_tokens`` to send: ``asked`` if the window can hold it, else a 422; for
    none, ``default_max_tokens`` if it fits beside the prompt, else None (the backend
    then generates exactly as many tokens as the window has room for)."""
    window = worker.context_length
    if asked is not None:
        if asked > window:
            raise ApiError(
                422,
                f"'{param}': {asked} tokens is more than model "
                f"'{worker.name}' can hold (context_length = {window}); ask "
                f"for fewer, counting the prompt",
                code="invalid_value",
                param=param,
            )
        return asked
    prompt = await anyio.to_thread.run_sync(_prompt_tokens, worker, messages)
    room = window - prompt - TEMPLATE_ALLOWANCE
    return limits.default_max_tokens if room >= limits.default_max_tokens else None


def _prompt_tokens(worker: ChatWorker, messages: Sequence[ChatMessage]) -> int:
    """Tokens of the messages in the model's tokenizer (an estimate if it is not loaded);
    runs in a worker thread."""
    try:
        return sum(worker.count_tokens(m.content) + 4 for m in messages)
    except SmmfError:
        return sum(len(m.content) // 3 + 4 for m in messages)


__all__ = [
    "TEMPLATE_ALLOWANCE",
    "ServerLimits",
    "bounded_max_tokens",
    "check_chat",
    "check_embedding_inputs",
    "check_flow_input",
    "check_prompts",
]
