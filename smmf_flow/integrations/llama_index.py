"""smmf-flow inside LlamaIndex: ``SmmfEmbedding`` (a ``BaseEmbedding``) and
``SmmfLLM`` (an ``LLM``: chat and completion, streamed or not) on registry
names. A name may be a group, so fallback and routing happen inside; embeddings
go through the model's micro-batcher. Like the LangChain adapters, every call
runs on the registry's loop thread (``registry_loop.py``): sync methods work
from any thread, even inside a running event loop.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Generator, Sequence
from typing import Any

from smmf_flow.integrations import require

require("llama_index.core", "llama-index")

from llama_index.core.base.embeddings.base import BaseEmbedding  # noqa: E402 - after the check
from llama_index.core.base.llms.types import (  # noqa: E402
    ChatMessage as LIChatMessage,
)
from llama_index.core.base.llms.types import (  # noqa: E402
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.llms import LLM  # noqa: E402
from llama_index.core.llms.callbacks import (  # noqa: E402
    llm_chat_callback,
    llm_completion_callback,
)
from pydantic import ConfigDict, Field, PrivateAttr  # noqa: E402

from smmf_flow.errors import InputError  # noqa: E402
from smmf_flow.integrations.registry_loop import registry_loop  # noqa: E402
from smmf_flow.models.registry import ModelRegistry  # noqa: E402
from smmf_flow.models.types import ChatMessage, ChatRequest, ChatResult, Role  # noqa: E402
from smmf_flow.scheduler import scheduler_for  # noqa: E402

_ROLES: dict[MessageRole, Role] = {
    MessageRole.SYSTEM: "system",
    MessageRole.DEVELOPER: "system",
    MessageRole.USER: "user",
    MessageRole.ASSISTANT: "assistant",
    MessageRole.TOOL: "user",  # a tool result, read as text by any backend
    MessageRole.FUNCTION: "user",
}


class SmmfEmbedding(BaseEmbedding):
    """LlamaIndex embeddings on a registry's embedding model (default: the
    registry's ``default_embedding``), checked when the object is made."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    _registry: ModelRegistry = PrivateAttr()
    _model: str | None = PrivateAttr(default=None)

    def __init__(
        self, *, registry: ModelRegistry, model: str | None = None, **options: Any
    ) -> None:
        binding = scheduler_for(registry).resolve(model, "embedding")
        options.setdefault("embed_batch_size", 64)  # the micro-batcher sizes the real batches
        super().__init__(model_name=binding.name, **options)
        self._registry = registry
        self._model = binding.name

    @classmethod
    def class_name(cls) -> str:
        return "SmmfEmbedding"

    async def _embed(self, texts: list[str]) -> list[list[float]]:
        return await scheduler_for(self._registry).embedding_worker(self._model).embed(texts)

    def _get_query_embedding(self, query: str) -> list[float]:
        return registry_loop(self._registry).call(self._embed, [query])[0]

    def _get_text_embedding(self, text: str) -> list[float]:
        return registry_loop(self._registry).call(self._embed, [text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return registry_loop(self._registry).call(self._embed, list(texts)) if texts else []

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return (await registry_loop(self._registry).acall(self._embed, [query]))[0]

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return (await registry_loop(self._registry).acall(self._embed, [text]))[0]

    async def _aget_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        return await registry_loop(self._registry).acall(self._embed, list(texts))


class SmmfLLM(LLM):
    """A LlamaIndex LLM on a registry name or group (default: the registry's
    ``default_llm``); ``raw`` of a response holds the model that served."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    model: str = Field(description="registry name or group")
    max_tokens: int | None = Field(default=256, ge=1)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    _registry: ModelRegistry = PrivateAttr()

    def __init__(
        self, *, registry: ModelRegistry, model: str | None = None, **options: Any
    ) -> None:
        options["model"] = scheduler_for(registry).resolve(model, "llm").name
        super().__init__(**options)
        self._registry = registry

    @classmethod
    def class_name(cls) -> str:
        return "SmmfLLM"

    @property
    def metadata(self) -> LLMMetadata:
        worker = scheduler_for(self._registry).chat_worker(self.model)
        return LLMMetadata(
            context_window=worker.context_length,
            num_output=self.max_tokens or 256,
            is_chat_model=True,
            model_name=self.model,
        )

    # --- requests ------------------------------------------------------------------

    def _request(self, messages: Sequence[LIChatMessage], **kwargs: Any) -> ChatRequest:
        params: dict[str, Any] = {"max_tokens": self.max_tokens, "temperature": self.temperature}
        params.update({k: v for k, v in kwargs.items() if k in ("max_tokens", "temperature")})
        return ChatRequest(messages=[_message(m, i) for i, m in enumerate(messages)], **params)

    def _prompt(self, prompt: str, formatted: bool) -> list[LIChatMessage]:
        if not formatted and self.completion_to_prompt is not None:
            prompt = self.completion_to_prompt(prompt)
        return [LIChatMessage(role=MessageRole.USER, content=prompt)]

    async def _answer(self, request: ChatRequest) -> ChatResult:
        return await scheduler_for(self._registry).chat_worker(self.model).chat(request)

    async def _responses(self, request: ChatRequest) -> AsyncIterator[ChatResponse]:
        """The streamed answer as LlamaIndex wants it: each response holds the text
        so far and its ``delta``."""
        stream = scheduler_for(self._registry).chat_worker(self.model).stream(request)
        text = ""
        try:
            async for chunk in stream:
                text += chunk.text
                yield ChatResponse(
                    message=LIChatMessage(role=MessageRole.ASSISTANT, content=text),
                    delta=chunk.text,
                    raw={"model": chunk.model, "instance": chunk.instance},
                )
        finally:
            await stream.aclose()

    # --- chat ----------------------------------------------------------------------

    @llm_chat_callback()
    def chat(self, messages: Sequence[LIChatMessage], **kwargs: Any) -> ChatResponse:
        result = registry_loop(self._registry).call(self._answer, self._request(messages, **kwargs))
        return _chat_response(result)

    @llm_chat_callback()
    async def achat(self, messages: Sequence[LIChatMessage], **kwargs: Any) -> ChatResponse:
        request = self._request(messages, **kwargs)
        return _chat_response(await registry_loop(self._registry).acall(self._answer, request))

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[LIChatMessage], **kwargs: Any) -> ChatResponseGen:
        request = self._request(messages, **kwargs)
        return registry_loop(self._registry).iterate(lambda: self._responses(request))

    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[LIChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        request = self._request(messages, **kwargs)
        return registry_loop(self._registry).aiterate(lambda: self._responses(request))

    # --- completion ------------------------------------------------------------------

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        response = self.chat(self._prompt(prompt, formatted), **kwargs)
        return CompletionResponse(text=response.message.content or "", raw=response.raw)

    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        response = await self.achat(self._prompt(prompt, formatted), **kwargs)
        return CompletionResponse(text=response.message.content or "", raw=response.raw)

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        chats = self.stream_chat(self._prompt(prompt, formatted), **kwargs)

        def gen() -> Generator[CompletionResponse, None, None]:
            for r in chats:
                yield CompletionResponse(text=r.message.content or "", delta=r.delta, raw=r.raw)

        return gen()

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        chats = await self.astream_chat(self._prompt(prompt, formatted), **kwargs)

        async def gen() -> AsyncGenerator[CompletionResponse, None]:
            async for r in chats:
                yield CompletionResponse(text=r.message.content or "", delta=r.delta, raw=r.raw)

        return gen()


def _chat_response(result: ChatResult) -> ChatResponse:
    return ChatResponse(
        message=LIChatMessage(role=MessageRole.ASSISTANT, content=result.text),
        raw={"model": result.model, "instance": result.instance, "finish": result.finish_reason},
    )


def _message(message: LIChatMessage, index: int) -> ChatMessage:
    role = _ROLES.get(message.role)
    if role is None:
        raise InputError(f"message {index} has role {message.role!r}, which SmmfLLM cannot send")
    return ChatMessage(role=role, content=message.content or "")


__all__ = ["SmmfEmbedding", "SmmfLLM"]
