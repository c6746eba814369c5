"""``DirectRoutes``: the hot POST endpoints served without Starlette's routing layers.

Each request to ``/v1/chat/completions`` (and the other OpenAI POSTs) would pass
Starlette's exception middleware, FastAPI's exit-stack middleware, the router
(which tries every route's pattern in turn), the route and its exception
wrapper: about a tenth of the server's CPU per proxied request, for a lookup
that is one dictionary read here. This plain ASGI middleware sits innermost,
after every guard (``body_guard.py`` included), takes the POSTs whose path is in
its table, and passes everything else on to FastAPI unchanged (``/docs``, the
other routes, a GET to the same path and its 405).

A handler's exception becomes the error answer the app's exception handlers
would give (``errors.error_response``, redacted; an unexpected one logged with
its traceback by ``errors.classify``). ``scope["route"]`` is set as the router
sets it, so the access log and the metrics name the route.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from smmf_flow.server.auth import route_path
from smmf_flow.server.errors import error_response
from smmf_flow.server.state import of


class DirectRoutes:
    """See the module docstring; ``routes`` maps a path inside the app to its route."""

    def __init__(self, app: ASGIApp, routes: Mapping[str, Route]) -> None:
        self.app, self.routes = app, dict(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = (
            self.routes.get(route_path(scope))
            if scope["type"] == "http" and scope["method"] == "POST"
            else None
        )
        if route is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = route
        request = Request(scope, receive, send)
        try:
            response = await route.endpoint(request)
        except Exception as exc:
            response = error_response(exc, of(request).redact)
        await response(scope, receive, send)


__all__ = ["DirectRoutes"]
