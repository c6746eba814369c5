"""Workers: what a model reference becomes once the scheduler has resolved it.

A worker serves one purpose over a pool (``PoolChatWorker``,
``PoolEmbeddingWorker``) or over other workers (``FallbackWorker`` and
``RouteWorker`` in their own modules). Operators talk only to workers, so a
flow that says ``model="chat"`` gets a single model or a whole fallback chain
without knowing which.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterator
from functools import cache
from typing import Any, Protocol

import anyio

from smmf_flow.errors import InputError, InvalidOutput
from smmf_flow.models.backends.base import Capabilities
from smmf_flow.models.batcher import EmbeddingBatcher
from smmf_flow.models.pool import Pool
from smmf_flow.models.types import ChatChunk, ChatRequest, ChatResult
from smmf_flow.timed_regex import RegexTimeout, search

#: ``note(event, **details)``: how a worker tells the trace what it decided
Note = Callable[..., None]


def no_note(event: str, **details: Any) -> None:
    """A ``Note`` that records nothing."""


class ChunkStream(Protocol):
    """A worker's streamed answer: ``async for chunk in stream``, and ``aclose()`` to
    stop early, which frees what it holds (a model's slot)."""

    def __aiter__(self) -> AsyncIterator[ChatChunk]: ...

    async def __anext__(self) -> ChatChunk: ...

    async def aclose(self) -> None: ...


class ChatWorker(ABC):
    """Generates text for chat requests."""

    name: str

    @property
    @abstractmethod
    def context_length(self) -> int: ...

    @property
    @abstractmethod
    def capabilities(self) -> Capabilities: ...

    @property
    def in_cooldown(self) -> bool:
        return False

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 4)

    async def prompt_tokens(self, request: ChatRequest) -> int:
        """Tokens the request's messages take in this model's tokenizer (a small
        allowance per message); loads the model if its tokenizer is needed."""
        return sum(self.count_tokens(m.content) + 4 for m in request.messages)

    @abstractmethod
    async def chat(self, request: ChatRequest, note: Note = no_note) -> ChatResult: ...

    @abstractmethod
    def stream(
        self, request: ChatRequest, note: Note = no_note, *, chunk_timeout: float | None = None
    ) -> ChunkStream:
        """Stream an answer; a chunk that takes longer than ``chunk_timeout`` seconds
        fails the stream with ``BackendTimeout`` (counted against the model that
        stalled)."""


class PoolChatWorker(ChatWorker):
    """Chat on one model's pool; checks structured output against its schema."""

    def __init__(self, name: str, pool: Pool, context_length: int) -> None:
        self.name = name
        self.pool = pool
        self._context_length = context_length

    @property
    def context_length(self) -> int:
        return self._context_length

    @property
    def capabilities(self) -> Capabilities:
        return self.pool.capabilities

    @property
    def in_cooldown(self) -> bool:
        return bool(self.pool.in_cooldown)

    def count_tokens(self, text: str) -> int:
        return self.pool.count_tokens(text)

    async def prompt_tokens(self, request: ChatRequest) -> int:
        await self.pool.start()  # the tokenizer lives in the loaded model
        return await super().prompt_tokens(request)

    async def chat(self, request: ChatRequest, note: Note = no_note) -> ChatResult:
        result = await self.pool.chat(request)
        if request.response_format is not None and request.response_format.type != "text":
            check_structured(result.text, request, self.name)
        return result

    def stream(
        self, request: ChatRequest, note: Note = no_note, *, chunk_timeout: float | None = None
    ) -> ChunkStream:
        return self.pool.stream_chat(request, chunk_timeout=chunk_timeout)


class PoolEmbeddingWorker:
    """Embeddings on one model's pool, through its micro-batcher."""

    def __init__(
        self,
        name: str,
        pool: Pool,
        *,
        max_batch: int,
        max_wait_ms: float,
        max_concurrent: int = 1,
        max_queue: int | None = None,
    ) -> None:
        self.name = name
        self.pool = pool
        self.batcher = EmbeddingBatcher(
            pool.embed,
            max_batch=max_batch,
            max_wait_ms=max_wait_ms,
            max_concurrent=max_concurrent,
            max_queue=max_queue,
            model=name,
            count=pool.count_tokens,
        )

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return await self.batcher.embed(texts)

    async def fingerprint(self) -> str:
        """Which weights make this model's vectors (``Pool.fingerprint``), read in a
        worker thread: the first time, it hashes the weight files."""
        return await anyio.to_thread.run_sync(self.pool.fingerprint)


def check_structured(text: str, request: ChatRequest, model: str) -> Any:
    """Parse ``text`` as JSON and check it against the request's schema."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidOutput(
            f"model '{model}' returned invalid JSON ({exc.msg} at char {exc.pos}): {text[:80]!r}",
            model=model,
        ) from None
    schema = request.response_format.schema if request.response_format else None
    if schema:
        import jsonschema

        try:
            draft = jsonschema.validators.validator_for(schema, jsonschema.Draft202012Validator)
            jsonschema.validate(value, schema, cls=_timed(draft))
        except jsonschema.ValidationError as exc:
            raise InvalidOutput(
                f"model '{model}' returned JSON that breaks its schema: {exc.message}", model=model
            ) from None
        except RegexTimeout as exc:  # the schema's fault, not the answer's: no fallback
            raise InputError(f"model '{model}': response_format's JSON schema: {exc}") from None
    return value


@cache
def _timed(draft: Any) -> Any:
    """The validator class ``draft`` (the schema's ``$schema``, 2020-12 by default)
    whose ``pattern`` and ``patternProperties`` match with a time limit: the schema
    may come from an HTTP caller, and the text it meets is a model's answer
    (``timed_regex``)."""
    from jsonschema import ValidationError, validators

    def pattern(validator: Any, regex: str, instance: Any, schema: Any) -> Iterator[Any]:
        if validator.is_type(instance, "string") and not search(regex, instance):
            yield ValidationError(f"{instance!r} does not match {regex!r}")

    def pattern_properties(
        validator: Any, patterns: dict[str, Any], instance: Any, schema: Any
    ) -> Iterator[Any]:
        if not validator.is_type(instance, "object"):
            return
        for regex, subschema in patterns.items():
            for key, item in instance.items():
                if search(regex, key):
                    yield from validator.descend(item, subschema, path=key, schema_path=regex)

    return validators.extend(  # type: ignore[no-untyped-call]  # (untyped in its stubs)
        draft, {"pattern": pattern, "patternProperties": pattern_properties}
    )
