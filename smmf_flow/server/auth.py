"""API keys: who may call the server.

With keys configured, every request needs one, as ``Authorization: Bearer KEY``
(what OpenAI's SDKs send) or ``X-API-Key: KEY``; a missing or wrong key is a 401
in OpenAI's error shape. Deny by default: the only exceptions are the health
probes (``PUBLIC``: ``/healthz``, ``/readyz``), so an orchestrator can check the
server without holding a secret. A route added later, ``/docs`` and
``/openapi.json`` are protected without anyone remembering to. The probes are
matched on the path *inside* the app (``root_path`` stripped), so mounting the
app under a prefix in a bigger one protects it the same way. Keys are compared
in constant time and never logged.

The admin API (``/admin/...``, ``admin_api.py``) has keys of its own, which
are no tenant keys: with no admin key configured it answers 404 to everyone;
otherwise an admin key is needed (no key or an unknown one: 401, a tenant's
key: 403), and an admin key opens nothing else.

It is a plain ASGI middleware rather than a FastAPI dependency: the check is a
header scan and a digest comparison, and costs no dependency resolution.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from smmf_flow.server.errors import ApiError, error_response

#: the only routes that answer without a key
PUBLIC = frozenset({"/healthz", "/readyz"})
#: the routes under it take admin keys only
ADMIN_PREFIX = "/admin"


class ApiKeys:
    """The accepted keys; empty means the server is open."""

    def __init__(self, keys: Iterable[str] = ()) -> None:
        self._keys = [k.encode("utf-8") for k in keys if k]

    def __bool__(self) -> bool:
        return bool(self._keys)

    def accepts(self, presented: bytes | None) -> bool:
        if presented is None:
            return False
        # compare against every key, so the time taken does not say which one matched
        return sum(hmac.compare_digest(presented, key) for key in self._keys) > 0


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """The key a request carries, if any."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            if scheme.lower() == b"bearer":
                return token.strip()
        elif name == b"x-api-key":
            return value.strip()
    return None


class RequireKey:
    """Answers 401 to any request but a public probe without an accepted key, and
    guards the admin routes with the admin keys (see the module docstring)."""

    def __init__(self, app: ASGIApp, keys: ApiKeys, admin_keys: ApiKeys | None = None) -> None:
        self.app, self.keys = app, keys
        self.admin_keys = admin_keys or ApiKeys()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = route_path(scope)
        if is_admin_path(path):
            error = self.admin_refusal(presented_key(scope["headers"]))
        elif not self.keys or path in PUBLIC:
            error = None
        else:
            error = _refusal(presented_key(scope["headers"]), self.keys.accepts, "API key")
        if error is None:
            await self.app(scope, receive, send)
        else:
            await error_response(error)(scope, receive, send)

    def admin_refusal(self, key: bytes | None) -> ApiError | None:
        """Why a request to the admin API is refused, or None."""
        if not self.admin_keys:
            return ApiError(
                404,
                "the admin API is off on this server (start it with --admin-key)",
                code="not_found",
            )
        if key is not None and not self.admin_keys.accepts(key) and self.keys.accepts(key):
            return ApiError(
                403, "this key may not use the admin API: it needs an admin key", code="forbidden"
            )
        return _refusal(key, self.admin_keys.accepts, "admin key")


def _refusal(
    key: bytes | None, accepts: Callable[[bytes | None], bool], what: str
) -> ApiError | None:
    if accepts(key):
        return None
    why = f"no {what} was given" if key is None else f"the {what} is not valid"
    return ApiError(
        401,
        f"{why}; send it as 'Authorization: Bearer KEY'",
        code="invalid_api_key",
        headers={"WWW-Authenticate": "Bearer"},
    )


def is_admin_path(path: str) -> bool:
    """Whether ``path`` (inside the app) is one of the admin API's."""
    return path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/")


def route_path(scope: Scope) -> str:
    """The path inside this app: ``path`` without the ``root_path`` it is mounted at."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        return path[len(root) :] or "/"
    return path


__all__ = [
    "ADMIN_PREFIX",
    "PUBLIC",
    "ApiKeys",
    "RequireKey",
    "is_admin_path",
    "presented_key",
    "route_path",
]
