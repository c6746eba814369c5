"""Model calls as OpenTelemetry spans, following the GenAI semantic conventions.

While telemetry is on, the scheduler makes these workers instead of the plain
pool workers (``resolve.py``), so every call to one model (each member a fallback
group tries, each route taken) is one span: ``chat smollm2`` or ``embeddings
minilm``, with ``gen_ai.operation.name``, ``gen_ai.request.model`` and the
request's parameters (``max_tokens``, ``temperature``, ...), then
``gen_ai.response.model``, the token usage and the finish reason, and a
``smmf_flow.served`` event naming the instance. Its parent is the node that
asked (through its note, also for a stream read elsewhere), else the current
span. While a call runs, its span is current, so a proxied upstream gets its
``traceparent``. A worker made while telemetry was on checks it again per call:
once it is off, nothing is traced.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from contextlib import AbstractContextManager
from time import perf_counter
from typing import Any

from opentelemetry import context, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from smmf_flow import telemetry
from smmf_flow.errors import describe
from smmf_flow.models.types import ChatChunk, ChatRequest, ChatResult, Usage
from smmf_flow.runner.run_spans import add_event, span_context_of
from smmf_flow.scheduler.fallback import FallbackWorker
from smmf_flow.scheduler.routing import RouteWorker
from smmf_flow.scheduler.workers import (
    ChunkStream,
    Note,
    PoolChatWorker,
    PoolEmbeddingWorker,
    no_note,
)


class TracedPoolChatWorker(PoolChatWorker):
    """A ``PoolChatWorker`` whose every call is a ``chat`` span."""

    async def chat(self, request: ChatRequest, note: Note = no_note) -> ChatResult:
        tracing = telemetry.active()
        if tracing is None:
            return await super().chat(request, note)
        span = _start(tracing.tracer, self, request, span_context_of(note), stream=False)
        with trace.use_span(
            span, end_on_exit=True, record_exception=False, set_status_on_exception=False
        ):
            try:
                result = await super().chat(request, note)
            except BaseException as exc:
                _failed(span, exc)
                raise
            _served(span, result.model, result.instance, result.usage, result.finish_reason)
            return result

    def stream(
        self, request: ChatRequest, note: Note = no_note, *, chunk_timeout: float | None = None
    ) -> ChunkStream:
        chunks = super().stream(request, note, chunk_timeout=chunk_timeout)
        tracing = telemetry.active()
        if tracing is None:
            return chunks
        parent = span_context_of(note) or context.get_current()
        return TracedChunkStream(chunks, lambda: _start(tracing.tracer, self, request, parent))


class TracedChunkStream:
    """A model's stream whose call is a span: started by the first chunk asked
    for, ended by the last, a failure or ``aclose``."""

    __slots__ = ("_chunks", "_first", "_last", "_opened", "_span", "_start")

    def __init__(self, chunks: ChunkStream, start: Callable[[], Span]) -> None:
        self._chunks, self._start = chunks, start
        self._span: Span | None = None
        self._opened = 0.0
        self._first = True
        self._last: ChatChunk | None = None

    def __aiter__(self) -> TracedChunkStream:
        return self

    async def __anext__(self) -> ChatChunk:
        span = self._span
        if span is None:
            if not self._first:
                raise StopAsyncIteration
            span = self._span = self._start()
            self._opened = perf_counter()
        try:
            if self._first:  # the backend's request starts now: under this span
                with trace.use_span(
                    span, end_on_exit=False, record_exception=False, set_status_on_exception=False
                ):
                    chunk = await self._chunks.__anext__()
                self._first = False
                span.set_attribute(
                    "gen_ai.response.time_to_first_chunk", perf_counter() - self._opened
                )
            else:
                chunk = await self._chunks.__anext__()
        except StopAsyncIteration:
            self._end(None)
            raise
        except BaseException as exc:
            self._end(exc)
            raise
        self._last = chunk
        return chunk

    async def aclose(self) -> None:
        try:
            await self._chunks.aclose()
        finally:
            self._end(None)

    def _end(self, error: BaseException | None) -> None:
        span, self._span = self._span, None
        self._first = False
        if span is None:
            return
        last = self._last
        if error is not None:
            _failed(span, error)
        elif last is not None:
            _served(span, last.model, last.instance, last.usage, last.finish_reason)
        span.end()


class TracedEmbeddingWorker(PoolEmbeddingWorker):
    """A ``PoolEmbeddingWorker`` whose every call is an ``embeddings`` span (the
    micro-batch it joined is the batcher's business, not the caller's)."""

    async def embed(self, texts: list[str]) -> list[list[float]]:
        tracing = telemetry.active()
        if tracing is None:
            return await super().embed(texts)
        span = tracing.tracer.start_span(
            f"embeddings {self.name}",
            kind=_kind(self.pool.config.provider),
            attributes={
                "gen_ai.operation.name": "embeddings",
                "gen_ai.request.model": self.name,
                "gen_ai.provider.name": self.pool.config.provider,
                "smmf_flow.inputs": len(texts),
            },
        )
        with trace.use_span(
            span, end_on_exit=True, record_exception=False, set_status_on_exception=False
        ):
            try:
                vectors = await super().embed(texts)
            except BaseException as exc:
                _failed(span, exc)
                raise
            span.set_attribute("gen_ai.response.model", self.name)
            if vectors:
                span.set_attribute("gen_ai.embeddings.dimension.count", len(vectors[0]))
            return vectors


class TracedFallbackWorker(FallbackWorker):
    """A fallback group whose decisions are events of the caller's span when no
    node records them (a server request for a group's name)."""

    async def chat(self, request: ChatRequest, note: Note = no_note) -> ChatResult:
        return await super().chat(request, _on_span(note))

    def stream(
        self, request: ChatRequest, note: Note = no_note, *, chunk_timeout: float | None = None
    ) -> AsyncGenerator[ChatChunk, None]:
        return super().stream(request, _on_span(note), chunk_timeout=chunk_timeout)


class TracedRouteWorker(RouteWorker):
    """A route group whose decisions are events of the caller's span when no node
    records them."""

    async def chat(self, request: ChatRequest, note: Note = no_note) -> ChatResult:
        return await super().chat(request, _on_span(note))

    def stream(
        self, request: ChatRequest, note: Note = no_note, *, chunk_timeout: float | None = None
    ) -> AsyncGenerator[ChatChunk, None]:
        return super().stream(request, _on_span(note), chunk_timeout=chunk_timeout)


def _on_span(note: Note) -> Note:
    """``note``, also adding each event to the current span, unless it is a node's
    note (whose span has it already) or telemetry is off."""
    if telemetry.active() is None or span_context_of(note) is not None:
        return note
    span = trace.get_current_span()

    def both(event: str, **details: Any) -> None:
        note(event, **details)
        add_event(span, {"event": event, **details})

    return both


def _start(
    tracer: Tracer,
    worker: PoolChatWorker,
    request: ChatRequest,
    parent: context.Context | None,
    *,
    stream: bool = True,
) -> Span:
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": worker.name,
        "gen_ai.provider.name": worker.pool.config.provider,
        "gen_ai.request.temperature": request.temperature,
        "gen_ai.request.top_p": request.top_p,
        "gen_ai.request.stream": stream,
    }
    if request.max_tokens is not None:
        attributes["gen_ai.request.max_tokens"] = request.max_tokens
    if request.seed is not None:
        attributes["gen_ai.request.seed"] = request.seed
    if request.stop:
        attributes["gen_ai.request.stop_sequences"] = list(request.stop)
    if request.response_format is not None and request.response_format.type != "text":
        attributes["gen_ai.output.type"] = "json"
    if request.assistant_prefix:  # continuing an answer another model began
        attributes["smmf_flow.continuation_chars"] = len(request.assistant_prefix)
    return tracer.start_span(
        f"chat {worker.name}",
        context=parent,
        kind=_kind(worker.pool.config.provider),
        attributes=attributes,
    )


def _current(span: Span, *, end: bool) -> AbstractContextManager[Span]:
    """``span`` as the current span (ended on leaving if ``end``); errors are
    recorded by ``_failed``, which knows a cancellation from a failure."""
    return trace.use_span(
        span, end_on_exit=end, record_exception=False, set_status_on_exception=False
    )


def _kind(provider: str) -> SpanKind:
    """CLIENT for a model behind HTTP, INTERNAL for one in this process."""
    return SpanKind.CLIENT if provider.startswith("proxy/") else SpanKind.INTERNAL


def _served(span: Span, model: str, instance: str, usage: Usage | None, finish: str | None) -> None:
    span.set_attribute("gen_ai.response.model", model)
    span.set_attribute("smmf_flow.instance", instance)
    if usage is not None:
        span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
    if finish:
        span.set_attribute("gen_ai.response.finish_reasons", [finish])
    span.add_event("smmf_flow.served", {"model": model, "instance": instance})


def _failed(span: Span, error: BaseException) -> None:
    if not isinstance(error, Exception):  # cancelled: the caller went away
        span.set_attribute("smmf_flow.cancelled", True)
        return
    span.set_status(Status(StatusCode.ERROR, describe(error)[:512]))
    span.set_attribute("error.type", type(error).__qualname__)
    instance = getattr(error, "instance", None)
    if instance:
        span.set_attribute("smmf_flow.instance", str(instance))


__all__ = [
    "TracedChunkStream",
    "TracedEmbeddingWorker",
    "TracedFallbackWorker",
    "TracedPoolChatWorker",
    "TracedRouteWorker",
]
