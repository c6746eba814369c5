"""Small pieces every backend needs: optional imports, prompts, limits, JSON checks.

Kept apart from ``base.py`` (the contract) so the contract stays one screen, and
so each backend module reads as the engine-specific part only.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

from smmf_flow.errors import (
    BackendError,
    ConfigError,
    ContextWindowExceeded,
    InvalidOutput,
    ModelLoadError,
    OutputTruncated,
    RequestRefused,
)
from smmf_flow.models.backends.special_tokens import NO_SPECIALS, SpecialTokens
from smmf_flow.models.chat_templates import ChatTemplate, resolve_template
from smmf_flow.models.config import ModelConfig
from smmf_flow.models.types import ChatChunk, ChatRequest, ChatResult

if TYPE_CHECKING:
    from smmf_flow.models.backends.base import Backend

T = TypeVar("T")


def require(module: str, extra: str, model: str) -> ModuleType:
    """Import an optional engine package, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ModelLoadError(
            f"model '{model}' needs the Python package '{module.split('.')[0]}', which is "
            f"not importable ({exc}); install it with: pip install 'smmf-flow[{extra}]'",
            model=model,
        ) from exc


def model_path(config: ModelConfig, *, want: str = "file or folder") -> Path:
    """The config's ``path`` as an existing filesystem path (``ModelLoadError`` otherwise)."""
    if not config.path:
        raise ModelLoadError(
            f"model '{config.name}' ({config.provider}) has no `path`; set it to a model {want}",
            model=config.name,
        )
    path = Path(config.path)
    if not path.exists():
        raise ModelLoadError(
            f"model '{config.name}': path {path} does not exist; check "
            "`path` in the model config (or run the set-up that creates it)",
            model=config.name,
        )
    return path


def loaded(backend: Backend, engine: T | None) -> T:
    """``engine`` if the backend has loaded it; a ``BackendError`` saying so otherwise."""
    if engine is None:
        raise BackendError(
            f"model '{backend.config.name}' ({backend.instance_id}) is not "
            "loaded (or was closed); start the instance first",
            model=backend.config.name,
            instance=backend.instance_id,
        )
    return engine


def pick_template(
    config: ModelConfig,
    *,
    shipped: str | None,
    model_ref: str,
    bos_token: str | None,
    eos_token: str | None,
) -> ChatTemplate:
    """The model's chat template (see ``chat_templates.resolve_template``); none is a load error."""
    try:
        return resolve_template(
            model=config.name,
            shipped=shipped,
            explicit=config.chat_template,
            family=config.family,
            model_ref=model_ref,
            bos_token=bos_token or "",
            eos_token=eos_token or "",
        )
    except ConfigError as exc:
        raise ModelLoadError(str(exc), model=config.name) from exc


def render_prompt(
    template: ChatTemplate, request: ChatRequest, specials: SpecialTokens = NO_SPECIALS
) -> str:
    """The raw prompt: messages through the template, then the assistant prefix, if any;
    the model's control-token texts in either stay text (``special_tokens.py``).

    Appending the prefix to the rendered text (not sending it as a message) is what
    makes continuation exact: the model resumes the very same token sequence.
    """
    messages = [{"role": m.role, "content": specials.escape(m.content)} for m in request.messages]
    prompt = template.render(messages, add_generation_prompt=True)
    return prompt + specials.escape(request.assistant_prefix or "")


def refuse_structured(backend: Backend, request: ChatRequest) -> None:
    """Raise for a JSON response format on a backend that cannot constrain its output."""
    fmt = request.response_format
    if fmt is not None and fmt.type != "text":
        raise RequestRefused(
            f"model '{backend.config.name}' ({backend.provider}) cannot "
            "constrain output to JSON; serve it with llama.cpp or vllm to "
            "use response_format",
            model=backend.config.name,
        )


def chat_messages(request: ChatRequest) -> list[dict[str, str]]:
    """The request's messages as the plain dicts chat templates expect."""
    return [{"role": m.role, "content": m.content} for m in request.messages]


def check_context(
    config: ModelConfig, prompt_tokens: int, max_tokens: int | None, n_ctx: int
) -> int:
    """The number of tokens to generate; ``ContextWindowExceeded`` if they cannot fit."""
    wanted = max_tokens if max_tokens is not None else max(n_ctx - prompt_tokens, 0)
    if prompt_tokens >= n_ctx or prompt_tokens + wanted > n_ctx:
        raise ContextWindowExceeded(
            f"model '{config.name}': the prompt takes {prompt_tokens} tokens and "
            f"{wanted} more were requested, but the context window holds {n_ctx}; shorten "
            "the prompt, lower max_tokens, or raise `context_length` in the model config",
            model=config.name,
        )
    return wanted


def check_json(result: ChatResult, request: ChatRequest, config: ModelConfig) -> ChatResult:
    """Raise ``InvalidOutput`` if a JSON answer was asked for and did not parse."""
    fmt = request.response_format
    if fmt is None or fmt.type == "text":
        return result
    try:
        json.loads(result.text)
    except json.JSONDecodeError as exc:
        truncated = result.finish_reason == "length"
        cut = " (the answer hit max_tokens; raise it)" if truncated else ""
        error = OutputTruncated if truncated else InvalidOutput
        raise error(
            f"model '{config.name}' returned text that is not JSON{cut}: "
            f"{exc}: {result.text[:200]!r}",
            model=config.name,
        ) from exc
    return result


def merge_chunks(batch: Sequence[ChatChunk], model: str, instance: str) -> ChatChunk:
    """One chunk carrying every piece of ``batch`` (the last one's finish and usage)."""
    last = batch[-1]
    text = last.text if len(batch) == 1 else "".join(c.text for c in batch)
    return ChatChunk(
        text=text,
        finish_reason=last.finish_reason,
        usage=last.usage,
        model=model,
        instance=instance,
    )


def schema_of(request: ChatRequest) -> dict[str, Any] | None:
    """The JSON schema a ``json_schema`` response format asks for, if any."""
    fmt = request.response_format
    return fmt.schema if fmt is not None and fmt.type == "json_schema" else None


__all__ = [
    "chat_messages",
    "check_context",
    "check_json",
    "loaded",
    "merge_chunks",
    "model_path",
    "pick_template",
    "refuse_structured",
    "render_prompt",
    "require",
    "schema_of",
]
