"""The backend contract: one loaded model engine behind one pool instance.

A backend knows nothing of flows, pools or retries. It loads weights, answers a
chat (whole or streamed) or embeds texts, and raises a typed ``BackendError``
(see ``smmf_flow.errors``) when it cannot; it never returns an error as text.

Blocking engines (llama.cpp, transformers) run their calls off the event loop
(``anyio.to_thread``); async engines (vLLM, the OpenAI client) are awaited
directly. A backend that cannot do something (embeddings on a chat-only engine)
says so in ``capabilities`` so the scheduler can refuse the flow before it runs.

Continuation (``ChatRequest.assistant_prefix``): ``capabilities.prefix`` is
``"exact"`` when the backend renders the chat template itself and appends the
prefix to the raw prompt, so the answer continues the very same text;
``"approximate"`` when it can only pass the prefix as a final assistant message
and trust the server to continue it; ``"none"`` when it cannot continue at all.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import ClassVar, Literal

from smmf_flow.errors import BackendError
from smmf_flow.models.config import ModelConfig
from smmf_flow.models.fingerprint import api_host, config_digest
from smmf_flow.models.types import ChatChunk, ChatRequest, ChatResult, Usage


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend can do; checked by the scheduler before a flow runs."""

    chat: bool = True
    embed: bool = False
    json_schema: bool = False
    prefix: Literal["exact", "approximate", "none"] = "none"


class Backend(ABC):
    """One model engine. Subclasses register under a provider name."""

    provider: ClassVar[str]

    def __init__(self, config: ModelConfig, instance_id: str) -> None:
        self.config = config
        self.instance_id = instance_id

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities()

    @abstractmethod
    async def load(self) -> None:
        """Load the weights or open the connection; raise ``ModelLoadError`` on failure."""

    async def aclose(self) -> None:  # noqa: B027 - optional: a backend with nothing to free
        """Free the engine. Safe to call twice."""

    async def health(self) -> None:  # noqa: B027 - optional: loaded means healthy
        """Raise a ``BackendError`` if the engine cannot serve; return quietly otherwise."""

    async def chat(self, request: ChatRequest) -> ChatResult:
        """Answer a chat request in one piece. The default gathers the stream."""
        parts: list[str] = []
        last: ChatChunk | None = None
        async for chunk in self.stream_chat(request):
            parts.append(chunk.text)
            last = chunk
        return ChatResult(
            text="".join(parts),
            finish_reason=(last.finish_reason if last else None) or "stop",
            usage=(last.usage if last and last.usage else None) or Usage(),
            model=self.config.name,
            instance=self.instance_id,
        )

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """Stream a chat answer chunk by chunk."""
        raise BackendError(
            f"model '{self.config.name}' ({self.provider}) cannot chat", model=self.config.name
        )
        yield  # pragma: no cover - makes this an async generator

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, in order."""
        raise BackendError(
            f"model '{self.config.name}' ({self.provider}) cannot embed", model=self.config.name
        )

    @property
    def node(self) -> str | None:
        """Where the engine runs when not in this process (a Ray node, ``id@ip``),
        for status pages; None here."""
        return None

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes in this model; a rough estimate where no tokenizer is loaded."""
        return max(1, len(text) // 4)

    def fingerprint(self) -> str:
        """Which weights this backend serves, for a vector store to record
        (``models/fingerprint.py``); needs no load. The default identifies them by
        configuration (provider, path, GGUF file, remote model, API host); a
        backend that can read its weight files hashes them instead."""
        cfg = self.config
        return f"{self.provider}:" + config_digest(
            self.provider, cfg.path, cfg.gguf_file, cfg.remote_model, api_host(cfg.api_base)
        )


#: how an instance builds its backend: (config, instance id) -> Backend; a placement
#: (local, Ray) gives one
BackendFactory = Callable[[ModelConfig, str], "Backend"]
