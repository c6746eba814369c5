"""The admin API: control a model's instances while the server runs.

Reached only with an admin key (``auth.py``: separate from the tenant keys; with
no admin key configured these routes answer 404), and left out of the tenant's
``/openapi.json``:

- ``GET /admin/models``: every model with its pool's status and each instance's
  state and counters; ``GET /admin/models/{name}``: one of them.
- ``POST /admin/models/{name}/start|stop|restart`` with an optional
  ``{"instance": N, "grace_s": S}``: the whole model, or its instance ``N``.
  Stopping drains: no new call reaches what is stopped, calls in flight finish
  (up to ``grace_s``, default 30) and a caller of a fallback group moves on to
  the next model. A model-wide restart is rolling (one instance at a time).
- ``POST /admin/models/{name}/scale`` with ``{"instances": N}``: add or remove
  instances, the idle ones first; at most ``max_instances`` (a server limit).

Each POST answers the model's state once the action is done. The body may be
left out (``curl -X POST``): it is then ``{}``. An unknown model is a 404
naming it, an unknown instance a 404 naming those there are, a bad body a 422
naming the field. Everything goes through the pool's instance
interface, so it works for any placement.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from smmf_flow.models.pool import Pool
from smmf_flow.server.errors import ApiError
from smmf_flow.server.limits import over
from smmf_flow.server.responses import json_response
from smmf_flow.server.schemas import parse
from smmf_flow.server.state import ServerState, of

router = APIRouter(prefix="/admin/models", tags=["admin"], include_in_schema=False)
#: the longest an action may wait for calls in flight to finish
MAX_GRACE_S = 600.0


class InstanceBody(BaseModel):
    """``start|stop|restart``: one instance (by index) or, without it, the model."""

    model_config = ConfigDict(extra="forbid")
    instance: int | None = Field(default=None, ge=0)
    grace_s: float = Field(default=30.0, ge=0, le=MAX_GRACE_S)


class ScaleBody(BaseModel):
    """``scale``: how many instances the model should run."""

    model_config = ConfigDict(extra="forbid")
    instances: int = Field(ge=1)
    grace_s: float = Field(default=30.0, ge=0, le=MAX_GRACE_S)


@router.get("")
async def list_models(request: Request) -> Response:
    state = of(request)
    rows = [r for r in state.registry.list() if r.kind != "group"]
    return json_response({"models": [describe_model(state, r.name) for r in rows]})


@router.get("/{name}")
async def get_model(name: str, request: Request) -> Response:
    state = of(request)
    _pool(state, name)
    return json_response(describe_model(state, name))


@router.post("/{name}/{action}")
async def control(name: str, action: str, request: Request) -> Response:
    state = of(request)
    pool = _pool(state, name)
    raw = await request.body()
    if action == "scale":  # without a body: a 422 naming `instances`
        scale = parse(ScaleBody, raw, optional=True)
        limit = state.limits.max_instances
        if scale.instances > limit:
            raise over("max_instances", scale.instances, limit, "instances", param="instances")
        await pool.scale(scale.instances, grace_s=scale.grace_s)
    elif action in ("start", "stop", "restart"):
        body = parse(InstanceBody, raw, optional=True)
        await _act(pool, action, body)
    else:
        raise ApiError(
            404,
            f"no admin action '{action}' (actions: start, stop, restart, scale)",
            code="not_found",
        )
    return json_response({"action": action, **describe_model(state, name)})


async def _act(pool: Pool, action: str, body: InstanceBody) -> None:
    index, grace = body.instance, body.grace_s
    if index is not None:
        _check_instance(pool, index)
    if action == "start":
        await (pool.start() if index is None else pool.start_instance(index))
    elif action == "stop":
        if index is None:
            await pool.stop(grace_s=grace)
        else:
            await pool.stop_instance(index, grace_s=grace)
    elif index is None:
        await pool.restart(grace_s=grace)
    else:
        await pool.restart_instance(index, grace_s=grace)


def describe_model(state: ServerState, name: str) -> dict[str, Any]:
    """A model's pool as JSON: status, queue, and each instance (errors redacted)."""
    stats = state.registry.pool(name).stats()
    return {
        "model": name,
        "kind": state.registry.kind_of(name),
        "provider": stats.provider,
        "placement": state.registry.model(name).placement,
        "status": stats.status,
        "waiting": stats.waiting,
        "instances": [_instance(asdict(i), state.redact) for i in stats.instances],
    }


def _instance(row: dict[str, Any], redact: Callable[[str], str]) -> dict[str, Any]:
    if row.get("last_error"):
        row["last_error"] = redact(row["last_error"])
    return row


def _pool(state: ServerState, name: str) -> Pool:
    """The pool of model ``name``: 404 naming it if unknown, 400 for a group."""
    state.registry.model(name)  # ModelNotFound (404) / ModelKindMismatch (400)
    return state.registry.pool(name)


def _check_instance(pool: Pool, index: int) -> None:
    if all(i.index != index for i in pool.instances):
        have = ", ".join(str(i.index) for i in pool.instances)
        raise ApiError(
            404,
            f"model '{pool.name}' has no instance {index} (instances: {have})",
            code="instance_not_found",
            param="instance",
        )


__all__ = ["MAX_GRACE_S", "InstanceBody", "ScaleBody", "describe_model", "router"]
