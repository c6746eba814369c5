"""Any OpenAI-compatible API (OpenAI, vLLM's server, llama.cpp's server...) as a backend.

Calls go through the official ``openai`` SDK's async client against ``api_base``,
with ``remote_model`` (or the config name) as the model. The SDK's own retries are
off: the pool's policy decides what an error means (a rate limit is a cooldown, a
full context window is a reason to fall back), so HTTP failures become the typed
errors of ``smmf_flow.errors`` at once, see ``map_error``.

Continuation: the API takes whole messages, so ``assistant_prefix`` is sent as a
final assistant message. Most servers close that turn and answer anew, so by
default continuation is only *approximate*. Servers that take vLLM's
``continue_final_message`` extension (vLLM's own, and smmf-flow's) continue it as
the same turn: with ``continue_final_message = true`` in the model's config the
flag is sent and continuation is *exact* (``capabilities.prefix``).

A stream is whole only when the server ends it with a finish reason: one that
closes without it (``llama_cpp.server`` interrupts a stream when another request
arrives) or breaks off (a reset, an early EOF, a read timeout — transport errors
that may escape the SDK unwrapped) raises ``BackendConnectionError`` (or
``BackendTimeout``), never a short answer, so fallback and the breaker act on it.

Error messages name the model and what happened, never ``api_base``: they reach
HTTP callers. The URL goes to the debug log of ``smmf_flow.models``.
"""

from __future__ import annotations

import email.utils
import functools
import importlib
import logging
import os
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from anyio.lowlevel import current_token

from smmf_flow.errors import (
    BackendConnectionError,
    BackendError,
    BackendTimeout,
    ContextWindowExceeded,
    ModelLoadError,
    RateLimited,
    RequestRefused,
)
from smmf_flow.models.backends.base import Backend, Capabilities
from smmf_flow.models.backends.support import chat_messages, check_json, loaded, require
from smmf_flow.models.config import ModelConfig
from smmf_flow.models.types import ChatChunk, ChatRequest, ChatResult, Usage

_CONTEXT_HINTS = (
    "context length",
    "context_length",
    "context window",
    "maximum context",
    "too many tokens",
    "reduce the length",
)
logger = logging.getLogger("smmf_flow.models")


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` / ``retry-after`` (seconds or an HTTP date)."""
    if not headers:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(float(value) * scale, 0.0)
        except ValueError:
            parsed = email.utils.parsedate_tz(value)
            if parsed is not None:
                return max(email.utils.mktime_tz(parsed) - time.time(), 0.0)
    return None


def map_error(exc: Exception, model: str, instance: str, api_base: str) -> BackendError:
    """The typed error for an ``openai`` SDK or ``httpx`` transport exception (decides,
    raises nothing); the message leaves ``api_base`` out, the debug log has it."""
    import openai

    logger.debug("model '%s' at %s: %s: %s", model, api_base, type(exc).__name__, exc)
    where = f"model '{model}'"
    timeouts, connects, transports = (
        transport_errors(kind) for kind in ("TimeoutException", "ConnectError", "TransportError")
    )
    transport = exc.__cause__ if isinstance(exc, openai.APIConnectionError) else exc
    if isinstance(exc, openai.APITimeoutError) or isinstance(transport, timeouts):
        return BackendTimeout(
            f"{where}: the request timed out; raise `timeout_s` or check the server's load",
            model=model,
            instance=instance,
        )
    if isinstance(transport, transports) and not isinstance(transport, connects):
        return BackendConnectionError(
            f"{where}: the connection broke ({_cause(exc, api_base)})",
            model=model,
            instance=instance,
        )
    if isinstance(exc, (openai.APIConnectionError, *connects)):
        return BackendConnectionError(
            f"{where}: cannot connect ({_cause(exc, api_base)}); "
            "check `api_base` and that the server is running",
            model=model,
            instance=instance,
        )
    if isinstance(exc, openai.RateLimitError):
        wait = retry_after(exc.response.headers)
        return RateLimited(
            f"{where}: rate limited (HTTP 429): {_scrub(exc.message, api_base)}",
            retry_after=wait,
            model=model,
            instance=instance,
        )
    if isinstance(exc, openai.APIStatusError):
        message = _scrub(exc.message, api_base)
        if exc.status_code in (400, 413) and any(h in message.lower() for h in _CONTEXT_HINTS):
            return ContextWindowExceeded(
                f"{where}: the prompt does not fit the context window "
                f"(HTTP {exc.status_code}): {message}",
                model=model,
                instance=instance,
            )
        if exc.status_code in (400, 413, 422):  # the upstream refuses this request
            return RequestRefused(
                f"{where}: the upstream refused the request (HTTP {exc.status_code}): {message}",
                model=model,
                instance=instance,
            )
        hint = {
            401: "; check `api_key`",
            403: "; check `api_key`",
            404: "; check `remote_model` and `api_base`",
        }.get(exc.status_code, "")
        return BackendError(
            f"{where}: HTTP {exc.status_code}: {message}{hint}", model=model, instance=instance
        )
    return BackendError(f"{where}: {_cause(exc, api_base)}", model=model, instance=instance)


@functools.cache
def transport_errors(kind: str = "TransportError") -> tuple[type[Exception], ...]:
    """httpx's exception class ``kind`` from each HTTP library the SDK may use
    (``httpx``, and ``httpx2`` in newer SDKs): the errors of the transport, which
    may escape the SDK unwrapped while a response body is read."""
    found = []
    for name in ("httpx", "httpx2"):
        try:
            found.append(getattr(importlib.import_module(name), kind))
        except (ImportError, AttributeError):
            continue
    return tuple(found)


def _cause(exc: BaseException, api_base: str) -> str:
    """``Type: message`` of the transport error under ``exc``."""
    cause = exc.__cause__ or exc
    text = f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__
    return _scrub(text, api_base)


def _scrub(text: str, api_base: str) -> str:
    """``text`` without the server's address (the upstream's own messages may hold it)."""
    for address in sorted({api_base, urlsplit(api_base).netloc} - {""}, key=len, reverse=True):
        text = text.replace(address, "the server")
    return text


class OpenAIProxyBackend(Backend):
    """A model behind an OpenAI-compatible HTTP API."""

    provider = "proxy/openai"

    def __init__(self, config: ModelConfig, instance_id: str) -> None:
        super().__init__(config, instance_id)
        self._client: Any = None
        self._client_loop: object = None  # the event loop the client's connections live in
        self._openai: Any = None
        self._httpx: Any = None

    @property
    def capabilities(self) -> Capabilities:
        prefix: Literal["exact", "approximate"] = (
            "exact" if self.config.continue_final_message else "approximate"
        )
        return Capabilities(chat=True, embed=True, json_schema=True, prefix=prefix)

    @property
    def remote_model(self) -> str:
        return self.config.remote_model or self.config.name

    async def load(self) -> None:
        cfg = self.config
        if not cfg.api_base:
            raise ModelLoadError(
                f"model '{cfg.name}' (proxy/openai) has no `api_base`; set it "
                "to the server's URL, e.g. https://api.openai.com/v1",
                model=cfg.name,
            )
        self._openai = require("openai", "openai", cfg.name)
        self._httpx = require("httpx", "openai", cfg.name)
        self._connect()

    def _connect(self) -> Any:
        """A client whose connections belong to the running event loop. Its HTTP client
        is the SDK's plain one: the SDK's default would, when dropped with its loop
        ended, try to close its connections on the next loop and fail there."""
        cfg = self.config
        key = cfg.api_key or os.environ.get("OPENAI_API_KEY") or "not-needed"
        self._client = self._openai.AsyncOpenAI(
            base_url=cfg.api_base,
            api_key=key,
            timeout=cfg.timeout_s,
            max_retries=0,
            http_client=self._openai.DefaultAsyncHttpxClient(),
        )
        self._client_loop = current_token().native_token
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._client_loop is current_token().native_token:
            await client.close()  # a client of an ended loop has nothing left to close

    def _ready(self) -> Any:
        """The client, made afresh when this is another event loop than the one it was
        made in (each synchronous ``dag.run`` has a loop of its own, and a connection
        kept alive from an ended loop cannot be used in the next)."""
        client = loaded(self, self._client)
        if self._client_loop is not current_token().native_token:
            client = self._connect()
        return client

    def _error(self, exc: Exception) -> BackendError:
        return map_error(exc, self.config.name, self.instance_id, str(self.config.api_base))

    @property
    def _failures(self) -> tuple[type[Exception], ...]:
        """What a call to the server may raise: the SDK's errors and the transport's."""
        return (self._openai.OpenAIError, *transport_errors())

    async def health(self) -> None:
        client = self._ready()
        try:
            await client.models.list()
        except self._failures as exc:
            raise self._error(exc) from exc

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        messages: list[dict[str, str]] = chat_messages(request)
        if request.assistant_prefix:
            messages.append({"role": "assistant", "content": request.assistant_prefix})
        body: dict[str, Any] = {
            "model": self.remote_model,
            "messages": messages,
            "temperature": request.temperature,
            "top_p": request.top_p,
        }
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        if request.stop:
            body["stop"] = request.stop
        if request.seed is not None:
            body["seed"] = request.seed
        if request.response_format is not None:
            body["response_format"] = request.response_format.model_dump(
                by_alias=True, exclude_none=True
            )
        body.update(self._extensions(request))
        return body

    def _extensions(self, request: ChatRequest) -> dict[str, Any]:
        """Body fields beyond OpenAI's own (sent only where the config says the server
        takes them)."""
        if request.assistant_prefix and self.config.continue_final_message:
            return {"continue_final_message": True, "add_generation_prompt": False}
        return {}

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        """POST through the SDK's client (its auth, timeouts and error types) but read
        the JSON ourselves: the SDK's request validation and typed response objects
        cost about a millisecond of CPU per call, which a proxy should not add."""
        client = self._ready()
        try:
            response = await client.post(path, body=body, cast_to=self._httpx.Response)
        except self._failures as exc:
            raise self._error(exc) from exc
        try:
            return response.json()
        except ValueError:  # a body cut short, or not an API's answer at all
            raise BackendConnectionError(
                f"model '{self.config.name}': the server's answer to {path} is cut off or "
                f"not JSON: {response.text[:80]!r}",
                model=self.config.name,
                instance=self.instance_id,
            ) from None

    async def chat(self, request: ChatRequest) -> ChatResult:
        reply = await self._post("/chat/completions", self._body(request))
        try:
            choice = reply["choices"][0]
            text = choice["message"].get("content") or ""
            finish = choice.get("finish_reason") or "stop"
        except (KeyError, IndexError, TypeError, AttributeError):
            raise BackendError(
                f"model '{self.config.name}': the server answered with no usable choice",
                model=self.config.name,
                instance=self.instance_id,
            ) from None
        usage = reply.get("usage") or {}
        result = ChatResult(
            text=text,
            finish_reason=finish,
            usage=Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)),
            model=self.config.name,
            instance=self.instance_id,
        )
        return check_json(result, request, self.config)

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        client, name, instance = self._ready(), self.config.name, self.instance_id
        finish: str | None = None
        usage: Usage | None = None
        sent = 0
        try:
            body = self._body(request)
            extra = {k: body.pop(k) for k in self._extensions(request)}
            stream = await client.chat.completions.create(
                **body,
                stream=True,
                stream_options={"include_usage": True},
                extra_body=extra or None,
            )
            async with stream:
                async for event in stream:
                    if event.usage is not None:
                        usage = Usage(event.usage.prompt_tokens, event.usage.completion_tokens)
                    for choice in event.choices[:1]:
                        finish = choice.finish_reason or finish
                        text = choice.delta.content if choice.delta else None
                        if text:
                            sent += 1
                            yield ChatChunk(text, model=name, instance=instance)
        except self._failures as exc:
            raise self._error(exc) from exc
        if finish is None:
            raise BackendConnectionError(
                f"model '{name}': the server ended the stream after {sent} chunk(s) without "
                "a finish reason, so the answer was cut off",
                model=name,
                instance=instance,
            )
        yield ChatChunk(
            "", finish_reason=finish, usage=usage or Usage(), model=name, instance=instance
        )

    async def embed(self, texts: list[str]) -> list[list[float]]:
        reply = await self._post(
            "/embeddings", {"model": self.remote_model, "input": texts, "encoding_format": "float"}
        )
        try:
            items = sorted(reply["data"], key=lambda d: d["index"])
            return [item["embedding"] for item in items]
        except (KeyError, TypeError):
            raise BackendError(
                f"model '{self.config.name}': the server's embeddings answer has no data",
                model=self.config.name,
                instance=self.instance_id,
            ) from None

    def fingerprint(self) -> str:
        """The remote model and the host serving it (its weights are out of reach)."""
        from smmf_flow.models.fingerprint import api_host, config_digest

        return f"{self.provider}:{config_digest(self.remote_model, api_host(self.config.api_base))}"


__all__ = ["OpenAIProxyBackend", "map_error", "retry_after"]
