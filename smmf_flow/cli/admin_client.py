"""A small client of a running server's admin API (``smmf_flow/server/admin_api.py``),
for ``smmf-flow models start|stop|restart|scale``.

The standard library's HTTP client is enough for a handful of JSON requests, so
the command works without the server's extra installed. Every failure is an
``AdminError`` carrying the exit code it deserves: 2 when the request itself is
wrong (a bad URL, no or a wrong key, an unknown model or instance, a value over
a limit), 1 when the server could not do it (unreachable, a model that failed to
load). Its message says which server answered what; never the key.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from smmf_flow.errors import SmmfError

#: the environment variable a key may come from instead of ``--admin-key``
KEY_ENV = "SMMF_ADMIN_KEY"


class AdminError(SmmfError):
    """An admin request failed; ``exit_code`` says whose fault it was."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def check_server_url(url: str) -> str:
    """``url`` without a trailing slash, if it is an http(s) URL with a host."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise AdminError(
            f"--server {url!r}: give the server's http:// or https:// URL, "
            "e.g. http://127.0.0.1:8000",
            2,
        )
    return url.rstrip("/")


def admin_request(
    server: str,
    key: str | None,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    timeout: float,
) -> dict[str, Any]:
    """Send one admin request; the JSON answer, or an ``AdminError``."""
    url = check_server_url(server) + path
    headers = {"Accept": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            answer: dict[str, Any] = json.loads(response.read() or b"{}")
            return answer
    except urllib.error.HTTPError as exc:
        raise _refused(server, exc.code, exc.read()) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AdminError(f"cannot reach the server at {server}: {reason}", 1) from None
    except ValueError as exc:  # not JSON: not an smmf-flow server, or not its admin API
        raise AdminError(
            f"{server} did not answer JSON ({exc}); is it smmf-flow serve?", 1
        ) from None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is answered as the error it is: following it would send the key
    to wherever the redirect points."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def model_path(name: str, action: str | None = None) -> str:
    path = "/admin/models/" + urllib.parse.quote(name, safe="")
    return f"{path}/{action}" if action else path


def _refused(server: str, status: int, raw: bytes) -> AdminError:
    try:
        message = str(json.loads(raw)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        message = raw.decode("utf-8", "replace").strip()[:200] or "no message"
    hint = ""
    if status == 401:
        hint = f" (give the admin key with --admin-key or ${KEY_ENV})"
    elif status == 403:
        hint = " (that is a tenant's API key; the admin API takes admin keys only)"
    code = 2 if 400 <= status < 500 and status != 429 else 1
    return AdminError(f"{server} answered {status}: {message}{hint}", code)


__all__ = ["KEY_ENV", "AdminError", "admin_request", "check_server_url", "model_path"]
