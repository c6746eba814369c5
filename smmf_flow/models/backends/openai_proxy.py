"""Any OpenAI-compatible API (OpenAI, vLLM's server, llama.cpp's server...) as a backend.

Calls go to ``api_base`` with ``remote_model`` (or the config name) as the model,
through ``openai_http.Upstream``: plain HTTP (``http1``, orjson) rather than the
``openai`` SDK, whose typed objects cost a proxy more CPU than everything else
it does. There are no retries here: the pool's policy decides what an error
means (a rate limit is a cooldown, a full context window is a reason to fall
back), so HTTP failures become the typed errors of ``smmf_flow.errors`` at once
(``openai_http`` says which).

Continuation: the API takes whole messages, so ``assistant_prefix`` is sent as a
final assistant message. Most servers close that turn and answer anew, so by
default continuation is only *approximate*. Servers that take vLLM's
``continue_final_message`` extension (vLLM's own, and smmf-flow's) continue it as
the same turn: with ``continue_final_message = true`` in the model's config the
flag is sent and continuation is *exact* (``capabilities.prefix``).

A stream is whole only when the server ends it with a finish reason: one that
closes without it (``llama_cpp.server`` interrupts a stream when another request
arrives) or breaks off (a reset, an early EOF, a read timeout) raises
``BackendConnectionError`` (or ``BackendTimeout``), never a short answer, so
fallback and the breaker act on it.

Error messages name the model and what happened, never ``api_base``: they reach
HTTP callers. The URL goes to the debug log of ``smmf_flow.models``. An answer
without what the API promises (no choice, no embeddings) is an ``UpstreamError``:
the upstream is at fault.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any, Literal

from smmf_flow.errors import BackendConnectionError, ModelLoadError, UpstreamError
from smmf_flow.models.backends.base import Backend, Capabilities
from smmf_flow.models.backends.openai_http import Upstream, retry_after
from smmf_flow.models.backends.proxied_http import env_proxy
from smmf_flow.models.backends.support import chat_messages, check_json, loaded, require
from smmf_flow.models.config import ModelConfig
from smmf_flow.models.types import ChatChunk, ChatRequest, ChatResult, Usage


class OpenAIProxyBackend(Backend):
    """A model behind an OpenAI-compatible HTTP API."""

    provider = "proxy/openai"

    def __init__(self, config: ModelConfig, instance_id: str) -> None:
        super().__init__(config, instance_id)
        self._upstream: Upstream | None = None

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
        proxied = env_proxy(cfg.api_base) is not None  # aiohttp only carries those
        for module in ("httptools", "orjson", *(("aiohttp",) if proxied else ())):
            require(module, "openai", cfg.name)
        key = cfg.api_key or os.environ.get("OPENAI_API_KEY") or "not-needed"
        self._upstream = Upstream(
            cfg.api_base, key, cfg.timeout_s, model=cfg.name, instance=self.instance_id
        )

    async def aclose(self) -> None:
        upstream, self._upstream = self._upstream, None
        if upstream is not None:
            await upstream.aclose()

    async def health(self) -> None:
        await loaded(self, self._upstream).get("/models")

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

    async def chat(self, request: ChatRequest) -> ChatResult:
        reply = await loaded(self, self._upstream).post("/chat/completions", self._body(request))
        try:
            choice = reply["choices"][0]
            text = choice["message"].get("content") or ""
            finish = choice.get("finish_reason") or "stop"
            counts = reply.get("usage") or {}
            usage = Usage(counts.get("prompt_tokens") or 0, counts.get("completion_tokens") or 0)
        except (KeyError, IndexError, TypeError, AttributeError):
            raise UpstreamError(
                f"model '{self.config.name}': the server answered with no usable choice",
                model=self.config.name,
                instance=self.instance_id,
            ) from None
        result = ChatResult(
            text=text,
            finish_reason=finish,
            usage=usage,
            model=self.config.name,
            instance=self.instance_id,
        )
        return check_json(result, request, self.config)

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        upstream, name, instance = loaded(self, self._upstream), self.config.name, self.instance_id
        finish: str | None = None
        usage: Usage | None = None
        sent = 0
        body = self._body(request)
        body["stream"], body["stream_options"] = True, {"include_usage": True}
        async for event in upstream.events("/chat/completions", body):
            try:
                counts = event.get("usage")
                if counts:
                    usage = Usage(
                        counts.get("prompt_tokens") or 0, counts.get("completion_tokens") or 0
                    )
                choices = event.get("choices")
                if not choices:
                    continue
                choice = choices[0]
                finish = choice.get("finish_reason") or finish
                delta = choice.get("delta")
                text = delta.get("content") if delta else None
            except (AttributeError, IndexError, KeyError, TypeError):
                raise UpstreamError(
                    f"model '{name}': the server sent a chunk with no usable choice",
                    model=name,
                    instance=instance,
                ) from None
            if text:
                sent += 1
                yield ChatChunk(text, model=name, instance=instance)
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
        reply = await loaded(self, self._upstream).post(
            "/embeddings", {"model": self.remote_model, "input": texts, "encoding_format": "float"}
        )
        try:
            items = sorted(reply["data"], key=lambda d: d["index"])
            return [item["embedding"] for item in items]
        except (KeyError, TypeError):
            raise UpstreamError(
                f"model '{self.config.name}': the server's embeddings answer has no data",
                model=self.config.name,
                instance=self.instance_id,
            ) from None

    def fingerprint(self) -> str:
        """The remote model and the host serving it (its weights are out of reach)."""
        from smmf_flow.models.fingerprint import api_host, config_digest

        return f"{self.provider}:{config_digest(self.remote_model, api_host(self.config.api_base))}"


__all__ = ["OpenAIProxyBackend", "retry_after"]
