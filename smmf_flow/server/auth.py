"""API keys: who may call the server.

With keys configured, every path under ``/v1/`` and ``/metrics`` needs one, as
``Authorization: Bearer KEY`` (what OpenAI's SDKs send) or ``X-API-Key: KEY``;
a missing or wrong key is a 401 in OpenAI's error shape. The health probes
(``/healthz``, ``/readyz``) stay open so an orchestrator can check the server
without holding a secret. Keys are compared in constant time and never logged.

It is a plain ASGI middleware rather than a FastAPI dependency: the check is a
header scan and a digest comparison, and costs no dependency resolution.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from smmf_flow.server.errors import ApiError, error_payload

PROTECTED = ("/v1/", "/metrics")


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
    """Answers 401 to a protected path without an accepted key."""

    def __init__(self, app: ASGIApp, keys: ApiKeys) -> None:
        self.app, self.keys = app, keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or not self.keys
                or not scope["path"].startswith(PROTECTED)):
            await self.app(scope, receive, send)
            return
        key = presented_key(scope["headers"])
        if self.keys.accepts(key):
            await self.app(scope, receive, send)
            return
        what = "no API key was given" if key is None else "the API key is not valid"
        error = ApiError(401, f"{what}; send it as 'Authorization: Bearer KEY'",
                         code="invalid_api_key")
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"),
                                (b"www-authenticate", b"Bearer")]})
        await send({"type": "http.response.body", "body": orjson.dumps(error_payload(error))})


__all__ = ["ApiKeys", "RequireKey", "presented_key"]
