"""The OpenAI-compatible API: models, chat completions, completions, embeddings.

A request's ``model`` goes through the scheduler exactly as a flow's would: a
model name gets that model's pool, a group name (``"chat"``) gets the whole
fallback chain or router, so a client of this server gets fallback and routing
without knowing they exist. The answer's ``model`` field names the model that
actually served (after a fallback, the member that answered).

The handlers are thin on purpose, to keep the latency the server adds small:
one body validation (``schemas.parse``), the request limits (``limits.py``;
``max_tokens`` bounded by the model's window), one worker lookup (cached by the
scheduler), then the call; responses go out through ``json_response``. The
three POST endpoints are served straight from ``DIRECT_ROUTES`` by the app's
innermost middleware (``direct_routes.py``), which skips FastAPI's per-request
dependency solving and Starlette's router and exception layers; plain Starlette
routes serve them too where that middleware is absent, and a twin FastAPI route
that never matches keeps them in ``/docs``.

``/v1/completions`` sends each prompt to the model as one user message: the
registry serves chat models, which answer through their chat template.
"""

from __future__ import annotations

import base64
import os
import sys
import time
from array import array
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import orjson
from fastapi import APIRouter
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from smmf_flow.models.batcher import counting_tokens
from smmf_flow.models.types import ChatChunk, ChatRequest, ChatResult, Usage
from smmf_flow.scheduler.workers import ChatWorker, Note
from smmf_flow.server.errors import ApiError
from smmf_flow.server.limits import (
    bounded_max_tokens,
    check_chat,
    check_embedding_inputs,
    check_prompts,
)
from smmf_flow.server.responses import body_doc, json_response
from smmf_flow.server.schemas import ChatCompletionBody, CompletionBody, EmbeddingBody, parse
from smmf_flow.server.sse import EventStream, frame
from smmf_flow.server.state import ServerState, of

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"])
#: the POST endpoints by path, for ``DirectRoutes``
DIRECT_ROUTES: dict[str, Route] = {}
FINISH_REASONS = frozenset({"stop", "length", "content_filter", "tool_calls"})


def _new_id(prefix: str) -> str:
    return f"{prefix}-{os.urandom(12).hex()}"


def _finish(reason: str | None) -> str:
    return reason if reason in FINISH_REASONS else "stop"


def _usage(usage: Usage | None) -> dict[str, int]:
    usage = usage or Usage()
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


# --- models --------------------------------------------------------------------------


def _model_card(state: ServerState, row: Any) -> dict[str, Any]:
    return {
        "id": row.name,
        "object": "model",
        "created": state.created,
        "owned_by": "smmf-flow",
        "kind": row.kind,
        "provider": row.provider,
        "status": row.status,
    }


@router.get("/models")
async def list_models(request: Request) -> Response:
    """Every model and group this server answers for (no secrets: no keys, no URLs)."""
    state = of(request)
    return json_response(
        {"object": "list", "data": [_model_card(state, row) for row in state.registry.list()]}
    )


@router.get("/models/{model:path}")
async def get_model(model: str, request: Request) -> Response:
    state = of(request)
    state.registry.get(model)  # ModelNotFound (404, with the known names) if absent
    row = next(r for r in state.registry.list() if r.name == model)
    return json_response(_model_card(state, row))


# --- chat ----------------------------------------------------------------------------


def _chat_worker(state: ServerState, request: Request, model: str) -> tuple[ChatWorker, Note]:
    request.state.model = model
    worker = state.scheduler.chat_worker(model)
    return worker, state.metrics.note_for(worker.name)


async def chat_completions(request: Request) -> Response:
    """Chat completion, whole or streamed (``stream: true``) as server-sent events."""
    state = of(request)
    body = parse(ChatCompletionBody, await request.body())
    chat = body.to_request()
    check_chat(state.limits, chat)
    worker, note = _chat_worker(state, request, body.model)
    chat.max_tokens = await bounded_max_tokens(
        state.limits,
        worker,
        chat.messages,
        chat.max_tokens,
        param="max_completion_tokens" if body.max_completion_tokens else "max_tokens",
    )
    if body.stream:
        return EventStream(
            _chat_frames(state, worker, chat, note, body.include_usage),
            on_end=state.metrics.stream_ended,
            redact=state.redact,
        )
    result = await worker.chat(chat, note)
    state.metrics.count_usage(result.model, result.usage)
    return json_response(
        {
            "id": _new_id("chatcmpl"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": result.model or worker.name,
            "system_fingerprint": None,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": result.text},
                    "logprobs": None,
                    "finish_reason": _finish(result.finish_reason),
                }
            ],
            "usage": _usage(result.usage),
        }
    )


async def _chat_frames(
    state: ServerState, worker: ChatWorker, chat: ChatRequest, note: Note, include_usage: bool
) -> AsyncIterator[bytes]:
    """OpenAI ``chat.completion.chunk`` frames: the role with the first text, one frame
    per chunk, an empty delta with the finish reason, then usage if it was asked for."""
    base: dict[str, Any] = {
        "id": _new_id("chatcmpl"),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": worker.name,
        "system_fingerprint": None,
    }
    if include_usage:
        base["usage"] = None

    def chunk_frame(model: str, delta: dict[str, Any], finish: str | None) -> bytes:
        base["model"] = model
        base["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        return frame(base)

    stream = worker.stream(chat, note)
    try:
        last: ChatChunk | None = None
        first = True
        async for chunk in stream:
            last = chunk
            out = b""
            if chunk.text or first:
                delta = (
                    {"role": "assistant", "content": chunk.text}
                    if first
                    else {"content": chunk.text}
                )
                out = chunk_frame(chunk.model or worker.name, delta, None)
                first = False
            if chunk.finish_reason is not None:
                out += _chat_tail(state, base, chunk, chunk_frame, include_usage)
            if out:
                yield out
        if last is None or last.finish_reason is None:  # a stream that ended without a reason
            tail = last or ChatChunk("", model=worker.name)
            yield _chat_tail(state, base, tail, chunk_frame, include_usage)
    finally:
        await stream.aclose()


def _chat_tail(
    state: ServerState,
    base: dict[str, Any],
    chunk: ChatChunk,
    chunk_frame: Callable[[str, dict[str, Any], str | None], bytes],
    include_usage: bool,
) -> bytes:
    model = chunk.model or base["model"]
    state.metrics.count_usage(model, chunk.usage)
    out = chunk_frame(model, {}, _finish(chunk.finish_reason))
    if include_usage:
        base["choices"] = []
        base["usage"] = _usage(chunk.usage)
        out += frame(base)
    return out


# --- text completions ----------------------------------------------------------------


async def completions(request: Request) -> Response:
    """Text completion: each prompt goes to the model as one user message."""
    state = of(request)
    body = parse(CompletionBody, await request.body())
    prompts = body.prompts
    check_prompts(state.limits, prompts, body.stops)
    worker, note = _chat_worker(state, request, body.model)
    chats = [body.to_request(prompt) for prompt in prompts]
    for chat in chats:
        chat.max_tokens = await bounded_max_tokens(
            state.limits, worker, chat.messages, chat.max_tokens
        )
    if body.stream:
        if len(prompts) != 1:
            raise ApiError(
                422,
                "'prompt': streaming takes exactly one prompt",
                code="invalid_value",
                param="prompt",
            )
        return EventStream(
            _completion_frames(state, worker, chats[0], note, body.include_usage),
            on_end=state.metrics.stream_ended,
            redact=state.redact,
        )
    results: list[ChatResult | None] = [None] * len(prompts)

    async def one(index: int) -> None:
        results[index] = await worker.chat(chats[index], note)

    if len(prompts) == 1:
        await one(0)
    else:
        async with anyio.create_task_group() as group:  # errors: see errors.classify
            for index in range(len(prompts)):
                group.start_soon(one, index)
    done = [r for r in results if r is not None]
    total = Usage(
        sum(r.usage.prompt_tokens for r in done), sum(r.usage.completion_tokens for r in done)
    )
    for r in done:
        state.metrics.count_usage(r.model, r.usage)
    return json_response(
        {
            "id": _new_id("cmpl"),
            "object": "text_completion",
            "created": int(time.time()),
            "model": done[0].model or worker.name,
            "choices": [
                {
                    "index": i,
                    "text": r.text,
                    "logprobs": None,
                    "finish_reason": _finish(r.finish_reason),
                }
                for i, r in enumerate(done)
            ],
            "usage": _usage(total),
        }
    )


async def _completion_frames(
    state: ServerState, worker: ChatWorker, chat: ChatRequest, note: Note, include_usage: bool
) -> AsyncIterator[bytes]:
    base: dict[str, Any] = {
        "id": _new_id("cmpl"),
        "object": "text_completion",
        "created": int(time.time()),
        "model": worker.name,
    }
    stream = worker.stream(chat, note)
    usage: Usage | None = None
    try:
        async for chunk in stream:
            base["model"] = chunk.model or worker.name
            finish = _finish(chunk.finish_reason) if chunk.finish_reason else None
            base["choices"] = [
                {"index": 0, "text": chunk.text, "logprobs": None, "finish_reason": finish}
            ]
            if chunk.finish_reason is not None:
                usage = chunk.usage
                state.metrics.count_usage(base["model"], usage)
            yield frame(base)
        if include_usage:
            base["choices"] = []
            base["usage"] = _usage(usage)
            yield frame(base)
    finally:
        await stream.aclose()


# --- embeddings ----------------------------------------------------------------------


def _base64(vector: list[float]) -> str:
    """OpenAI's base64 encoding: little-endian float32."""
    packed = array("f", vector)
    if sys.byteorder != "little":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


def _float32_rows(vectors: list[list[float]]) -> list[Any]:
    """The vectors as float32 rows, which orjson writes in float32's shortest form.

    A model's vectors are float32 (as base64 sends them): the float64 digits of the
    same values are noise, and nearly twice the bytes for every client to parse.
    Plain floats where numpy is absent (a proxied model's vectors)."""
    try:
        import numpy
    except ImportError:
        return vectors
    return list(numpy.asarray(vectors, dtype=numpy.float32))


async def embeddings(request: Request) -> Response:
    """Embeddings through the model's micro-batcher: concurrent requests share batches,
    and each batch counts its requests' tokens (usage) in one worker-thread call."""
    state = of(request)
    body = parse(EmbeddingBody, await request.body())
    texts = body.texts
    check_embedding_inputs(state.limits, texts)
    request.state.model = body.model
    worker = state.scheduler.embedding_worker(body.model)
    with counting_tokens() as counted:
        vectors = await worker.embed(texts)
    tokens = counted[0]
    dimension = len(vectors[0]) if vectors else 0
    if body.dimensions is not None and body.dimensions != dimension:
        raise ApiError(
            422,
            f"'dimensions': model '{worker.name}' gives {dimension}-dimensional "
            f"vectors; set dimensions to {dimension} or leave it unset",
            code="invalid_value",
            param="dimensions",
        )
    state.metrics.tokens.labels(worker.name, "prompt").inc(tokens)
    if body.encoding_format == "base64":
        rows: list[Any] = [_base64(v) for v in vectors]
    else:
        rows = _float32_rows(vectors)
    payload = {
        "object": "list",
        "model": worker.name,
        "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(rows)],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return Response(
        orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json"
    )


def _post(
    path: str, endpoint: Callable[[Request], Awaitable[Response]], body: type[BaseModel]
) -> None:
    """Serve ``POST /v1{path}`` directly (``DIRECT_ROUTES``) or by a plain Starlette
    route, documented by a FastAPI twin (registered second, so it is never matched)."""
    route = Route(f"{router.prefix}{path}", endpoint, methods=["POST"])
    DIRECT_ROUTES[route.path] = route
    router.routes.append(route)
    router.add_api_route(
        path,
        endpoint,
        methods=["POST"],
        openapi_extra=body_doc(body),
        summary=endpoint.__doc__.split("\n")[0] if endpoint.__doc__ else None,
    )


_post("/chat/completions", chat_completions, ChatCompletionBody)
_post("/completions", completions, CompletionBody)
_post("/embeddings", embeddings, EmbeddingBody)

__all__ = ["DIRECT_ROUTES", "router"]
