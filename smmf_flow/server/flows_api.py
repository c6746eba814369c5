"""Flows as HTTP endpoints (AWEL's HTTP triggers).

- ``GET /v1/flows``: the flows this server offers, with their declared inputs.
- ``GET /v1/flows/{name}``: one of them.
- ``POST /v1/flows/{name}/run`` with ``{"inputs": {...}, "stream": false}``:
  runs the flow; answers ``{"flow": name, "output": ...}``. With ``stream``
  (default: the flow's own ``stream:``) the output comes as server-sent events,
  ``data: {"chunk": ...}`` per chunk, then ``data: [DONE]``; a failure midway is
  an error event, as on the chat endpoint, and a client that goes away cancels
  the run.

The input is checked against the flow's declared inputs before anything runs
(422 naming the input), and its size against ``max_flow_input_bytes``. A path
in the input may only name files inside the server's data root (or the flow's
folder); any other is a 422 that does not name the server's folders. A run
that fails answers with the status of the error that made its node fail: a
full pool queue is still a 429, an unreachable upstream a 502.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from smmf_flow.runner.values import jsonable
from smmf_flow.server.catalog import FlowCatalog
from smmf_flow.server.limits import check_flow_input
from smmf_flow.server.responses import body_doc, json_response
from smmf_flow.server.schemas import FlowRunBody, parse
from smmf_flow.server.sse import EventStream, frame
from smmf_flow.server.state import of

router = APIRouter(prefix="/v1/flows", tags=["flows"])


def _catalog(request: Request) -> FlowCatalog:
    state = of(request)
    return state.flows or FlowCatalog({}, state.registry)


@router.get("")
async def list_flows(request: Request) -> Response:
    catalog = _catalog(request)
    return json_response(
        {"object": "list", "data": [catalog.describe(f) for f in catalog.flows.values()]}
    )


@router.get("/{name}")
async def get_flow(name: str, request: Request) -> Response:
    catalog = _catalog(request)
    return json_response(catalog.describe(catalog.get(name)))


@router.post("/{name}/run", openapi_extra=body_doc(FlowRunBody))
async def run_flow(name: str, request: Request) -> Response:
    state = of(request)
    catalog = _catalog(request)
    flow = catalog.get(name)
    request.state.model = f"flow:{name}"
    raw = await request.body()
    check_flow_input(state.limits, len(raw))
    body = parse(FlowRunBody, raw)
    value = catalog.prepare(flow, body.inputs)
    streaming = flow.spec.stream if body.stream is None else body.stream
    if streaming:
        return EventStream(
            _frames(catalog.stream(flow, value)),
            on_end=state.metrics.stream_ended,
            redact=state.redact,
        )
    output = await catalog.run(flow, value)
    return json_response({"flow": flow.name, "output": jsonable(output)})


async def _frames(chunks: AsyncIterator[Any]) -> AsyncIterator[bytes]:
    try:
        async for chunk in chunks:
            yield frame({"chunk": jsonable(chunk)})
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()


__all__ = ["router"]
