"""``BrowserGuard``: a web page the user visits must not reach the server.

A server on the loopback address is still reachable from any page open in the
user's browser, in three ways this plain ASGI middleware closes:

- **DNS rebinding**: a page at ``http://attacker.example:8000`` points that name
  at 127.0.0.1 and its requests then reach this server with
  ``Host: attacker.example:8000``. The ``Host`` header must name an allowed
  host: an IP address (a page can only make a browser send one as its own
  origin), ``localhost`` (and ``*.localhost``), the address the server binds,
  or a name given with ``--allowed-host`` (``*`` allows any). Otherwise 421.
- **cross-site requests**: a request carrying an ``Origin`` header comes from a
  page. It is served only when that page is the server's own origin (``/docs``)
  or an origin given with ``--cors-origin``; otherwise 403. For the configured
  origins Starlette's ``CORSMiddleware`` (added next to this one by the app)
  answers preflights and adds the CORS headers.
- **"simple" cross-site POSTs**: a form or ``text/plain`` POST is sent by a
  browser without a preflight; every POST with a body must say
  ``Content-Type: application/json``, which a page can only send after a
  preflight the server would refuse. Otherwise 415. A POST without a body
  (``Content-Length: 0``, or HTTP/1 with neither a length nor chunks, as
  ``curl -X POST`` sends it) carries nothing to check: it may omit the type, and
  only an endpoint whose body is optional takes it (``schemas.parse``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from smmf_flow.server.errors import ApiError, error_response

#: names that always mean this machine
LOOPBACK_NAMES = ("localhost",)


class BrowserGuard:
    """See the module docstring."""

    def __init__(
        self, app: ASGIApp, *, allowed_hosts: Iterable[str] = (), cors_origins: Iterable[str] = ()
    ) -> None:
        self.app = app
        hosts = {_name(h) for h in allowed_hosts if h}
        self.any_host = "*" in hosts
        self.hosts = {*LOOPBACK_NAMES, *hosts}
        self.origins = {o.rstrip("/").lower() for o in cors_origins if o}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        error = self.refusal(scope)
        if error is not None:
            await error_response(error)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def refusal(self, scope: Scope) -> ApiError | None:
        """Why the request is refused, or None."""
        headers = _headers(scope)
        host = headers.get("host")
        if host is not None and not self.host_allowed(host):
            return ApiError(
                421,
                f"this server does not answer for host '{host[:100]}'; "
                "start it with --allowed-host NAME to allow that name",
                code="host_not_allowed",
            )
        origin = headers.get("origin")
        if origin is not None and not self.origin_allowed(origin, host):
            return ApiError(
                403,
                f"cross-origin requests from '{origin[:100]}' are refused; "
                "start the server with --cors-origin ORIGIN to allow a web "
                "page at that origin",
                code="origin_not_allowed",
            )
        if scope["method"] == "POST" and not _bodiless(scope, headers):
            media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if media != "application/json":
                got = f"'{media[:60]}'" if media else "none"
                return ApiError(
                    415,
                    f"a POST body must be JSON sent as 'Content-Type: "
                    f"application/json' (got {got})",
                    code="unsupported_media_type",
                )
        return None

    def host_allowed(self, host: str) -> bool:
        name = _name(host)
        if self.any_host or name in self.hosts or name.endswith(".localhost"):
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True

    def origin_allowed(self, origin: str, host: str | None) -> bool:
        origin = origin.rstrip("/").lower()
        if origin in self.origins or "*" in self.origins:
            return True
        # the server's own pages (/docs) send their own origin on POSTs
        return host is not None and urlsplit(origin).netloc == host.lower()


def _headers(scope: Scope) -> dict[str, str]:
    return {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in scope["headers"]
        if name in (b"host", b"origin", b"content-type", b"content-length", b"transfer-encoding")
    }


def _bodiless(scope: Scope, headers: dict[str, str]) -> bool:
    """Whether the request surely has no body: ``Content-Length: 0``, or HTTP/1
    without a length or a transfer coding (HTTP/1.1 reads that as no body; HTTP/2
    need not say a body's length, so there it must say 0)."""
    length = headers.get("content-length")
    if length is not None:
        return length.strip() == "0"
    http1 = scope.get("http_version", "1.1") in ("1.0", "1.1")
    return http1 and "transfer-encoding" not in headers


def _name(host: str) -> str:
    """The host name of a ``Host`` header or an address, lower case, without port or
    IPv6 brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host  # a name, or a bare IPv6 address


__all__ = ["LOOPBACK_NAMES", "BrowserGuard"]
