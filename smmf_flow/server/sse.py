"""Server-sent events that stop generating when nobody listens, and never hang.

``EventStream`` is a response over an async iterator of ready-made SSE frames
(``frame(payload)`` builds one). It differs from a plain streaming response in
three ways that matter to a model server:

- **the first frame decides the status.** The producer is advanced once before
  any header is sent, so an error that happens before the first token (an
  unknown model inside a flow, a full pool queue, a load failure) is still an
  ordinary HTTP error with its real status (404, 429 with ``Retry-After``...),
  not a 200 whose body says "error";
- **a client that goes away cancels the producer.** A second task waits for
  ``http.disconnect`` and cancels the scope the producer runs in, so the model's
  generation is cancelled and its pool slot is freed at once, even while the
  producer is queued for a slot or waiting on the backend. Behind the server's
  ``BodyGuard``, which watches every request so already (``WATCHED`` in the
  scope), that task is not started a second time;
- **a failure after the first frame ends the stream with an error event**
  (``data: {"error": {...}}``, the frame OpenAI's SDKs raise on), then
  ``data: [DONE]``; the stream never just stops or hangs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import anyio
import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from smmf_flow.server.body_guard import WATCHED
from smmf_flow.server.errors import classify, error_payload, error_response

DONE = b"data: [DONE]\n\n"
HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


def frame(payload: Any) -> bytes:
    """One ``data:`` event holding ``payload`` as JSON."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


class EventStream(Response):
    """An SSE response over ``frames``; see the module docstring for its guarantees.

    ``on_end(outcome)`` is called once when the stream ends, with ``"done"``,
    ``"error"`` or ``"disconnected"`` (for metrics); ``redact`` cleans the message
    of an error (the server's ``Redactor``).
    """

    def __init__(
        self,
        frames: AsyncIterator[bytes],
        *,
        done: bool = True,
        headers: Mapping[str, str] | None = None,
        on_end: Callable[[str], None] | None = None,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        self.frames = frames
        self.redact = redact
        self.done = done
        self.status_code = 200
        self.extra = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()
        ]
        self.on_end = on_end
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        outcome = "disconnected"
        try:
            if scope.get(WATCHED):
                outcome = await self._respond(scope, receive, send)
            else:
                async with anyio.create_task_group() as group:
                    group.start_soon(_cancel_on_disconnect, receive, group.cancel_scope)
                    outcome = await self._respond(scope, receive, send)
                    group.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                close = getattr(self.frames, "aclose", None)
                if close is not None:
                    await close()
            if self.on_end is not None:
                self.on_end(outcome)

    async def _respond(self, scope: Scope, receive: Receive, send: Send) -> str:
        frames = self.frames
        try:
            first = await anext(frames, None)
        except Exception as exc:
            await error_response(exc, self.redact)(scope, receive, send)
            return "error"
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS + self.extra})
        outcome = "done"
        if first is not None:
            await send({"type": "http.response.body", "body": first, "more_body": True})
            try:
                async for data in frames:
                    await send({"type": "http.response.body", "body": data, "more_body": True})
            except Exception as exc:
                outcome = "error"
                await send(
                    {
                        "type": "http.response.body",
                        "body": frame(error_payload(classify(exc, self.redact))),
                        "more_body": True,
                    }
                )
        await send(
            {"type": "http.response.body", "body": DONE if self.done else b"", "more_body": False}
        )
        return outcome


async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            scope.cancel()
            return


__all__ = ["DONE", "EventStream", "frame"]
