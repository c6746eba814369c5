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

It is a plain ASGI middleware rather than a FastAPI dependency: the check is a
header scan and a digest comparison, and costs no dependency resolution.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from smmf_flow.server.errors import ApiError, error_response

#: the only routes that answer without a key
PUBLIC = frozenset({"/healthz", "/readyz"})


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
    """Answers 401 to any request but a public probe without an accepted key."""

    def __init__(self, app: ASGIApp, keys: ApiKeys) -> None:
        self.app, self.keys = app, keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys or route_path(scope) in PUBLIC:
            await self.app(scope, receive, send)
            return
        key = presented_key(scope["headers"])
        if self.keys.accepts(key):
            await self.app(scope, receive, send)
            return
        what = "no API key was given" if key is None else "the API key is not valid"
        error = ApiError(
            401,
            f"{what}; send it as 'Authorization: Bearer KEY'",
            code="invalid_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )
        await error_response(error)(scope, receive, send)


def route_path(scope: Scope) -> str:
    """The path inside this app: ``path`` without the ``root_path`` it is mounted at."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        return path[len(root) :] or "/"
    return path


__all__ = ["PUBLIC", "ApiKeys", "RequireKey", "presented_key", "route_path"]
