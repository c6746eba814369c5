"""A deterministic in-process backend for testing pool logic (no model involved).

Each instance answers ``"<instance id>: <last user message>"``. Tests steer it
through attributes: ``delay``, ``gate`` (an ``anyio.Event`` every call waits
for), ``fail_with`` (raised by calls), ``unhealthy`` (health checks fail), and
the class-level ``load_errors`` keyed by instance id and ``load_delay`` (seconds
every load takes). It records how many calls
it ran at once (``max_active``), its loads, and streams that were closed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import ClassVar

import anyio

from smmf_flow.errors import BackendConnectionError
from smmf_flow.models.backends import Backend, Capabilities
from smmf_flow.models.config import ModelConfig
from smmf_flow.models.types import ChatChunk, ChatRequest, ChatResult, Usage

PROVIDER = "test/fake"


class FakeBackend(Backend):
    provider = PROVIDER
    load_errors: ClassVar[dict[str, Exception]] = {}
    loads: ClassVar[list[str]] = []
    load_delay: ClassVar[float] = 0.0

    def __init__(self, config: ModelConfig, instance_id: str) -> None:
        super().__init__(config, instance_id)
        self.delay = 0.0
        self.gate: anyio.Event | None = None
        self.fail_with: Exception | None = None
        self.unhealthy = False
        self.active = self.max_active = self.calls = 0
        self.streams_closed = 0
        self.closed = False

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(chat=True, embed=True)

    async def load(self) -> None:
        FakeBackend.loads.append(self.instance_id)
        await anyio.sleep(0.01 + FakeBackend.load_delay)
        error = FakeBackend.load_errors.get(self.instance_id)
        if error is not None:
            raise error

    async def aclose(self) -> None:
        self.closed = True

    async def health(self) -> None:
        if self.unhealthy:
            raise BackendConnectionError(f"{self.instance_id} is down")

    async def _work(self) -> None:
        self.calls += 1
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            if self.gate is not None:
                await self.gate.wait()
            await anyio.sleep(self.delay)
            if self.fail_with is not None:
                raise self.fail_with
        finally:
            self.active -= 1

    async def chat(self, request: ChatRequest) -> ChatResult:
        await self._work()
        text = f"{self.instance_id}: {request.messages[-1].content}"
        return ChatResult(text=text, usage=Usage(prompt_tokens=3, completion_tokens=5))

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        self.active += 1
        try:
            words = request.messages[-1].content.split()
            for i, word in enumerate(words):
                if i and self.gate is not None:
                    await self.gate.wait()
                await anyio.sleep(self.delay)
                if self.fail_with is not None:
                    raise self.fail_with
                last = i == len(words) - 1
                yield ChatChunk(
                    text=word if not i else " " + word,
                    finish_reason="stop" if last else None,
                    usage=Usage(3, len(words)) if last else None,
                )
        finally:
            self.active -= 1
            self.streams_closed += 1

    async def embed(self, texts: list[str]) -> list[list[float]]:
        await self._work()
        return [[float(len(t)), 1.0] for t in texts]

    def count_tokens(self, text: str) -> int:
        return len(text.split())
