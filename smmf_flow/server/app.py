"""``create_app``: one model registry (and optionally a flow catalog) behind HTTP.

The app is assembled here and nowhere else: the routers (OpenAI API, flows,
operations), the exception handlers that turn every error into OpenAI's error
JSON (its message redacted, ``redact.py``), and plain ASGI middlewares, outside
Starlette's own (``_Gateway``), from the outside in:

0. while telemetry is on, a span per request that continues the caller's W3C
   trace context (``trace_context.py``);
1. the access log with request metrics, so refused requests are logged and
   counted too (``access_log.py``);
2. the browser guard: ``Host``, ``Origin`` and ``Content-Type`` checks
   (``browser.py``), then, for origins given in ``cors_origins``, Starlette's
   ``CORSMiddleware``;
3. the API-key check, deny by default, and the admin keys of ``/admin``
   (``auth.py``, ``admin_api.py``);
4. the body guard: the body read under ``limits.max_body_bytes``, and a client
   that disconnects cancels its request (``body_guard.py``);
5. the OpenAI POST endpoints, served without the router's layers
   (``direct_routes.py``); everything else goes on to FastAPI.

Models load in the background once the server is up (``warmup=True``): the
health probe answers at once, ``/readyz`` says "warming up" until every pool has
started, and a request that arrives meanwhile simply waits for its model's
load. A model that fails to load is reported by ``/readyz`` and retried by its
pool after ``cooldown_s``. On shutdown every pool is stopped (the app owns the
registry it is given).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from smmf_flow import telemetry
from smmf_flow.errors import ServeError, SmmfError, describe
from smmf_flow.models.registry import ModelRegistry
from smmf_flow.server import admin_api, flows_api, openai_api, ops
from smmf_flow.server.access_log import AccessLog
from smmf_flow.server.auth import ApiKeys, RequireKey
from smmf_flow.server.body_guard import BodyGuard
from smmf_flow.server.browser import BrowserGuard
from smmf_flow.server.catalog import FlowCatalog
from smmf_flow.server.direct_routes import DirectRoutes
from smmf_flow.server.errors import ApiError, error_response
from smmf_flow.server.limits import ServerLimits
from smmf_flow.server.metrics import ServerMetrics
from smmf_flow.server.redact import Redactor
from smmf_flow.server.state import ServerState, of

logger = logging.getLogger("smmf_flow.server")


def create_app(
    registry: ModelRegistry,
    *,
    flows: FlowCatalog | None = None,
    api_keys: Iterable[str] = (),
    warmup: bool = True,
    limits: ServerLimits | None = None,
    allowed_hosts: Iterable[str] = (),
    cors_origins: Iterable[str] = (),
    admin_keys: Iterable[str] = (),
) -> FastAPI:
    """The ASGI app serving ``registry`` (and ``flows``); keys, if any, are required.

    ``allowed_hosts`` are ``Host`` names answered besides IP addresses and
    ``localhost``; ``cors_origins`` the web origins whose pages may call it;
    ``admin_keys`` open the admin API (``/admin``, off without them), and must
    not be tenant keys too (``ServeError``)."""
    limits = limits or ServerLimits()
    api_keys, admin_keys = list(api_keys), list(admin_keys)
    if set(api_keys) & set(admin_keys):
        raise ServeError("a key is given both as an API key and as an admin key; keep them apart")
    cors_origins = list(cors_origins)
    state = ServerState(
        registry=registry,
        metrics=ServerMetrics(registry),
        flows=flows,
        limits=limits,
        redact=Redactor.for_server(registry, _folders(flows)),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with anyio.create_task_group() as group:
            if warmup:
                group.start_soon(_warm_up, state)
            else:
                state.warmed = True
            group.start_soon(registry.watch_health)  # tripped models recover without traffic
            try:
                yield
            finally:
                group.cancel_scope.cancel()
                with anyio.CancelScope(shield=True):
                    await registry.aclose()

    app = _Gateway(
        title="smmf-flow", summary="OpenAI-compatible API and flow endpoints", lifespan=lifespan
    )
    app.state.smmf = state
    app.include_router(openai_api.router)
    app.include_router(flows_api.router)
    app.include_router(ops.router)
    app.include_router(admin_api.router)
    app.add_exception_handler(ApiError, _error)
    app.add_exception_handler(SmmfError, _error)
    app.add_exception_handler(ExceptionGroup, _error)  # task groups' errors, unwrapped
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _error)
    middleware = []  # outermost first
    tracing = telemetry.active()
    if tracing is not None:  # outermost: refused requests are traced too
        from smmf_flow.server.trace_context import TraceContext

        middleware.append(Middleware(TraceContext, tracer=tracing.tracer))
    middleware += [
        Middleware(AccessLog, metrics=state.metrics),
        Middleware(BrowserGuard, allowed_hosts=allowed_hosts, cors_origins=cors_origins),
    ]
    if cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=cors_origins,
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type", "X-API-Key", "X-Request-Id"],
                expose_headers=["X-Request-Id", "Retry-After"],
                max_age=600,
            )
        )
    app.outer_middleware = [
        *middleware,
        Middleware(RequireKey, keys=ApiKeys(api_keys), admin_keys=ApiKeys(admin_keys)),
        Middleware(BodyGuard, limits=limits),
        Middleware(DirectRoutes, routes=openai_api.DIRECT_ROUTES),
    ]
    return app


class _Gateway(FastAPI):
    """FastAPI with the server's middlewares (``outer_middleware``, outermost first)
    outside Starlette's own error and exception middlewares rather than inside them,
    so a request ``DirectRoutes`` answers (which turns its handlers' errors into
    answers itself) passes no Starlette layer at all: each cost a call and a wrapped
    ``send`` per request. An exception that escapes a middleware is still logged and
    answered with a 500, by uvicorn."""

    outer_middleware: Sequence[Middleware] = ()  # set by create_app

    def build_middleware_stack(self) -> ASGIApp:
        app = super().build_middleware_stack()
        for cls, args, kwargs in reversed(self.outer_middleware):
            app = cls(app, *args, **kwargs)
        return app


def _folders(flows: FlowCatalog | None) -> list[Path]:
    """The folders of the flows (and their data root): never named to a client."""
    if flows is None:
        return []
    found = {Path(flow.file).resolve().parent for flow in flows.flows.values()}
    return [*found, *([flows.data_root] if flows.data_root else [])]


async def _warm_up(state: ServerState) -> None:
    """Start every model's pool, concurrently; a failure is recorded, not fatal."""

    async def start(name: str) -> None:
        try:
            await state.registry.pool(name).start()
        except Exception as exc:  # the pool retries after its cooldown; /readyz tells
            logger.warning("model '%s' did not load: %s", name, describe(exc))

    async with anyio.create_task_group() as group:
        for row in state.registry.list():
            if row.kind != "group":
                group.start_soon(start, row.name)
    state.warmed = True
    logger.info(
        "models loaded: %s",
        ", ".join(f"{r.name} ({r.status})" for r in state.registry.list() if r.kind != "group"),
    )


async def _error(request: Request, exc: Exception) -> Response:
    return error_response(exc, of(request).redact)


async def _invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0]
    param = ".".join(str(p) for p in first.get("loc", ()))
    return error_response(
        ApiError(
            422,
            f"'{param}': {first.get('msg', 'invalid')}",
            code="invalid_value",
            param=param or None,
        ),
        of(request).redact,
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    headers = dict(exc.headers or {})
    if exc.status_code == 404:
        message = f"no endpoint {request.method} {request.url.path}"
    elif exc.status_code == 405:  # the path exists: say which methods it takes
        allowed = [m.strip() for m in headers.get("Allow", "").split(",") if m.strip()]
        use = f"; use {' or '.join(allowed)}" if allowed else ""
        message = f"method {request.method} is not allowed on {request.url.path}{use}"
    else:
        message = str(exc.detail)
    return error_response(
        ApiError(exc.status_code, message, code=code, headers=headers), of(request).redact
    )


__all__ = ["create_app"]
