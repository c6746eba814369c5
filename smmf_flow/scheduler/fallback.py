"""``FallbackWorker``: try models in order, and survive a failure mid-stream.

Before a stream has delivered anything, falling back is simple: ask the next
model. After some chunks were delivered, the consumer already holds that text,
so the next model must *continue* it: the text so far becomes the request's
``assistant_prefix``, and the next model produces only what follows. The
consumer sees one stream with nothing repeated and nothing lost.

How faithfully a model continues depends on its backend (``capabilities.prefix``):
``exact`` backends render the chat template and append the prefix to the raw
prompt, so the continuation is what that model would have written next;
``approximate`` ones (OpenAI-compatible servers) get the prefix as a final
assistant message; a backend that cannot continue at all is skipped once text
has been delivered. Each model's span of the answer is noted in the trace.
``max_tokens`` bounds the whole answer: a model that continues gets what the
models before it left unspent (counted with their own tokenizers).

A stream that stalls past ``chunk_timeout`` fails inside the member's pool (so it
counts against that model's breaker) and the next model continues it. When every
model tried was busy (``PoolBusy``), the chain is busy too: it raises ``PoolBusy``
with the soonest ``retry_after``, so an HTTP caller gets a 429 it can act on.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing

import anyio

from smmf_flow.errors import PoolBusy, RateLimited, SmmfError, WorkerUnavailable
from smmf_flow.models.backends.base import Capabilities
from smmf_flow.models.types import ChatChunk, ChatRequest, ChatResult, Usage
from smmf_flow.scheduler.fallback_policy import FallbackPolicy, decide, error_kind
from smmf_flow.scheduler.workers import ChatWorker, Note, no_note


class FallbackWorker(ChatWorker):
    """A chain of workers tried in order under a ``FallbackPolicy``."""

    def __init__(self, name: str, members: list[ChatWorker], policy: FallbackPolicy) -> None:
        self.name = name
        self.members = members
        self.policy = policy

    @property
    def context_length(self) -> int:
        return max(m.context_length for m in self.members)

    @property
    def capabilities(self) -> Capabilities:
        caps = [m.capabilities for m in self.members]
        return Capabilities(
            chat=any(c.chat for c in caps),
            embed=False,
            json_schema=all(c.json_schema for c in caps),
            prefix=caps[0].prefix,
        )

    @property
    def in_cooldown(self) -> bool:
        return all(m.in_cooldown for m in self.members)

    def count_tokens(self, text: str) -> int:
        return self.members[0].count_tokens(text)

    async def prompt_tokens(self, request: ChatRequest) -> int:
        return await self.members[0].prompt_tokens(request)

    def _candidates(self) -> list[ChatWorker]:
        depth = self.policy.max_depth or len(self.members)
        return self.members[:depth]

    async def chat(self, request: ChatRequest, note: Note = no_note) -> ChatResult:
        errors: list[tuple[str, Exception]] = []
        min_window = 0
        for worker in self._candidates():
            if not self._usable(worker, min_window, note):
                continue
            attempt = 1
            while True:
                try:
                    result = await worker.chat(request, note)
                except Exception as error:
                    action = self._handle(worker, error, attempt, errors, note)
                    if action == "retry":
                        await anyio.sleep(self.policy.retry.next_delay(attempt))
                        attempt += 1
                        continue
                    if action == "bigger":
                        min_window = worker.context_length + 1
                    break
                if errors:
                    note("fallback_served", model=worker.name)
                return result
        raise self._exhausted(errors)

    async def stream(
        self, request: ChatRequest, note: Note = no_note, *, chunk_timeout: float | None = None
    ) -> AsyncGenerator[ChatChunk, None]:
        timeout = _sooner(chunk_timeout, self.policy.chunk_timeout)
        errors: list[tuple[str, Exception]] = []
        parts: list[str] = []  # text delivered so far, across models
        delivered = 0  # its length in characters
        spent = 0  # its length in tokens, counted by the models that wrote it
        min_window = 0
        for worker in self._candidates():
            if not self._usable(worker, min_window, note, continuing=bool(delivered)):
                continue
            attempt = 1
            while True:
                start = delivered
                current = request
                if delivered:
                    current = _continuation(request, "".join(parts), spent)
                try:
                    stream = worker.stream(current, note, chunk_timeout=timeout)
                    async with aclosing(stream) as chunks:
                        async for chunk in chunks:
                            if chunk.text:
                                parts.append(chunk.text)
                                delivered += len(chunk.text)
                            if spent and chunk.usage is not None:
                                chunk.usage = Usage(
                                    chunk.usage.prompt_tokens, chunk.usage.completion_tokens + spent
                                )
                            yield chunk
                except Exception as error:
                    if delivered > start:
                        note("span", model=worker.name, start=start, end=delivered, complete=False)
                        spent += _tokens(worker, "".join(parts)[start:])
                    action = self._handle(worker, error, attempt, errors, note, delivered=delivered)
                    if request.max_tokens is not None and spent >= request.max_tokens:
                        # it broke off after its last token: the answer is whole
                        yield ChatChunk("", finish_reason="length")
                        return
                    if action == "retry" and not (
                        delivered and worker.capabilities.prefix == "none"
                    ):
                        await anyio.sleep(self.policy.retry.next_delay(attempt))
                        attempt += 1
                        continue
                    if action == "bigger":
                        min_window = worker.context_length + 1
                    break
                note("span", model=worker.name, start=start, end=delivered, complete=True)
                return
        raise self._exhausted(errors)

    def _usable(
        self, worker: ChatWorker, min_window: int, note: Note, *, continuing: bool = False
    ) -> bool:
        if worker.in_cooldown:
            note("fallback_skip", model=worker.name, reason="in cooldown")
            return False
        if worker.context_length < min_window:
            note(
                "fallback_skip",
                model=worker.name,
                reason=f"context window {worker.context_length} too small",
            )
            return False
        if continuing and worker.capabilities.prefix == "none":
            note("fallback_skip", model=worker.name, reason="cannot continue a partial answer")
            return False
        return True

    def _handle(
        self,
        worker: ChatWorker,
        error: Exception,
        attempt: int,
        errors: list[tuple[str, Exception]],
        note: Note,
        *,
        delivered: int = 0,
    ) -> str:
        action = decide(self.policy, error, attempt)
        if action == "raise":
            raise error
        errors.append((worker.name, error))
        note(
            "fallback",
            model=worker.name,
            attempt=attempt,
            error=type(error).__name__,
            kind=error_kind(error),
            message=str(error)[:200],
            action=action,
            delivered_chars=delivered,
        )
        return action

    def _exhausted(self, errors: list[tuple[str, Exception]]) -> WorkerUnavailable:
        tried = (
            "; ".join(f"{name}: {type(error).__name__}: {error}" for name, error in errors)
            or "no model was usable"
        )
        # busy pools and rate-limited upstreams both say "later", never "broken": a
        # chain of nothing else is busy as a whole (429 with the soonest retry)
        busy = [
            error.retry_after or 1.0
            for _, error in errors
            if isinstance(error, (PoolBusy, RateLimited))
        ]
        if errors and len(busy) == len(errors):
            return PoolBusy(
                f"every model of '{self.name}' is busy: {tried}",
                retry_after=min(busy),
                model=self.name,
            )
        return WorkerUnavailable(f"all models of '{self.name}' failed: {tried}", model=self.name)


def _sooner(a: float | None, b: float | None) -> float | None:
    """The smaller of two optional limits."""
    return b if a is None else a if b is None else min(a, b)


def _continuation(request: ChatRequest, so_far: str, spent: int) -> ChatRequest:
    """``request`` asking the next model to continue ``so_far`` (``spent`` tokens
    of the answer's ``max_tokens`` are used up)."""
    update: dict[str, object] = {"assistant_prefix": (request.assistant_prefix or "") + so_far}
    if request.max_tokens is not None:
        update["max_tokens"] = request.max_tokens - spent
    return request.model_copy(update=update)


def _tokens(worker: ChatWorker, text: str) -> int:
    """Tokens ``text`` took in the model that wrote it (an estimate if it cannot say)."""
    try:
        return worker.count_tokens(text)
    except SmmfError:
        return max(1, len(text) // 4)
