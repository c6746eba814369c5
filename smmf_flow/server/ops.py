"""Operations: liveness, readiness, metrics.

- ``GET /healthz``: the process answers HTTP; always 200 while it runs.
- ``GET /readyz``: 200 when the start-up warm-up has finished and every model
  has a healthy instance (its pool is "ready" or "degraded") or was stopped by
  an admin (out of service on purpose, ``admin_api.py``); 503 otherwise.
  Either way the body lists each model's status and, for each group, whether a
  member can serve it, so a failed probe says which model holds it back. It
  says nothing else: why a model failed to load names files and addresses of
  the configuration, so that goes to the server log only.
- ``GET /metrics``: Prometheus text (see ``metrics.py``); behind the API key when
  the server has keys.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from smmf_flow.server.responses import json_response
from smmf_flow.server.state import ServerState, of

router = APIRouter(tags=["operations"])
SERVING = ("ready", "degraded")
STOPPED = "stopped"  # by an admin: it holds readiness back no more than a missing model


@router.get("/healthz")
async def healthz() -> Response:
    return json_response({"status": "ok"})


def readiness(state: ServerState) -> tuple[bool, dict[str, str]]:
    """Whether the server is ready, and each model's and group's status."""
    status: dict[str, str] = {}
    groups: dict[str, list[str]] = {}
    for row in state.registry.list():
        if row.kind == "group":
            groups[row.name] = list(state.registry.group(row.name).members)
        else:
            status[row.name] = row.status
    serving = {name for name, s in status.items() if s in SERVING}
    for name, members in groups.items():
        if any(m in serving for m in members):
            status[name] = "ready"
        elif all(status[m] == STOPPED for m in members):
            status[name] = STOPPED
        else:
            status[name] = "no member can serve"
    ready = state.warmed and all(s in SERVING or s == STOPPED for s in status.values())
    return ready, status


@router.get("/readyz")
async def readyz(request: Request) -> Response:
    state = of(request)
    ready, models = readiness(state)
    body = {
        "status": "ready" if ready else ("not ready" if state.warmed else "warming up"),
        "models": models,
    }
    return json_response(body, 200 if ready else 503)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    text, content_type = of(request).metrics.render()
    return Response(text, media_type=content_type)


__all__ = ["readiness", "router"]
