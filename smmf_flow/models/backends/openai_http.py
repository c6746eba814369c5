"""HTTP to an OpenAI-compatible server: JSON posted and read, server-sent events
parsed line by line, and every failure turned into a typed error.

One client per event loop (a connection kept alive from a loop that has ended
cannot carry the next loop's request): ``http1.Client``, a small HTTP/1.1 client
on asyncio and llhttp, or aiohttp (``proxied_http``) where the environment names
a proxy for the URL. JSON by orjson, events as plain dicts. Not the ``openai``
SDK: on a proxy's hot path its request options, typed responses and httpx
transport cost about 1.5 ms of CPU per call and half a millisecond per streamed
chunk, several times what the rest of the server costs
(``benchmarks/bench_server.py``); aiohttp itself was a quarter of the server's
CPU. The errors mean what the SDK's meant:

- a status of 429 is ``RateLimited`` (with ``retry-after-ms`` / ``retry-after``);
  400 or 413 naming the context window is ``ContextWindowExceeded``; any other
  400, 413 or 422 is ``RequestRefused`` (the upstream refuses this request); the
  rest is ``UpstreamError`` with its ``status``, saying what the status means
  (401: the upstream refused its credentials) and what the operator should check;
- no connection is a ``BackendConnectionError`` ("cannot connect"), one that breaks
  or ends early is one too ("the connection broke"), and a read or connect that
  takes longer than ``timeout_s`` is ``BackendTimeout``; an answer that is not
  HTTP/1.1, or an error reported mid-stream, is an ``UpstreamError`` ("the server
  sent ...").

The upstream's own words (an error body, which may be a whole HTML page) are
quoted on one bounded line by ``errors.upstream_said``: the operator reads them
in the error, and an HTTP server drops them from what its clients read.

The timeout is per step (connect, then each read), as the SDK's was, so a long
stream that keeps sending never times out. Proxies come from the environment
(``HTTPS_PROXY``, ``NO_PROXY``...), read once per client. While telemetry is
on, each request carries the model call's W3C ``traceparent``. Messages leave the
server's address out: they reach HTTP callers; the debug log of
``smmf_flow.models`` has it.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import orjson

from smmf_flow import telemetry
from smmf_flow.errors import (
    MAX_QUOTED_CHARS,
    BackendConnectionError,
    BackendError,
    BackendTimeout,
    ContextWindowExceeded,
    RateLimited,
    RequestRefused,
    UpstreamError,
    bounded_line,
    upstream_said,
)
from smmf_flow.models.backends.http1 import KEEPALIVE_S, Client, ConnectFailed, ProtocolError
from smmf_flow.models.backends.proxied_http import ProxiedClient, env_proxy

_CONTEXT_HINTS = (
    "context length",
    "context_length",
    "context window",
    "maximum context",
    "too many tokens",
    "reduce the length",
)
#: the longest line of a stream (one event) read before the stream is refused
MAX_EVENT_BYTES = 1 << 24
#: the most bytes of an upstream's answer read into an error message
MAX_QUOTED_BYTES = 4 * MAX_QUOTED_CHARS
#: what ``Upstream._event`` returns for ``data: [DONE]``
_DONE: Any = object()
#: what a call may raise besides our own errors (``http1``'s vocabulary)
_FAILURES = (OSError, TimeoutError, ProtocolError)
#: what an error status says of the upstream, and what the operator should check
_STATUS_WORDS = {
    401: ("the upstream refused its credentials", "; the operator should check `api_key`"),
    403: ("the upstream refused access", "; the operator should check `api_key`"),
    404: (
        "the upstream has no such model or endpoint",
        "; the operator should check `remote_model` and `api_base`",
    ),
}
logger = logging.getLogger("smmf_flow.models")


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` / ``retry-after`` (seconds or an HTTP date)."""
    if not headers:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(float(value) * scale, 0.0)
        except ValueError:
            parsed = email.utils.parsedate_tz(value)
            if parsed is not None:
                return max(email.utils.mktime_tz(parsed) - time.time(), 0.0)
    return None


class Upstream:
    """One OpenAI-compatible server at ``api_base``, called for the model ``model``
    (its instance ``instance``): the names its errors carry."""

    def __init__(
        self, api_base: str, api_key: str, timeout_s: float, *, model: str, instance: str
    ) -> None:
        self.api_base, self.model, self.instance = api_base, model, instance
        self._base = api_base.rstrip("/")
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        self._timeout_s = timeout_s
        self._client: Client | ProxiedClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        """POST ``body`` as JSON and return the JSON answer."""
        return await self._call("POST", path, orjson.dumps(body))

    async def get(self, path: str) -> Any:
        return await self._call("GET", path, None)

    async def events(self, path: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """POST ``body`` and yield each server-sent event's JSON until ``[DONE]`` or the
        end of the body (whether the answer is whole is the caller's to judge).

        The body is read as it arrives, whatever is there at once, and split into
        lines here (one C call) rather than by a read per line: a server sends
        several events per packet, and a read per line costs more than its JSON.
        After ``[DONE]`` the body's end (which servers often write apart) is awaited
        in the background, so that the connection can serve the next call."""
        client = await self._client_here()
        done = False  # [DONE] came: the rest of the body is of no interest
        try:
            response = await client.request(
                "POST", path, orjson.dumps(body), telemetry.outgoing_headers()
            )
            try:
                if response.status >= 400:
                    raise self.status_error(
                        response.status, response.headers, await response.read()
                    )
                partial: list[bytes] = []  # a line not yet ended
                size = 0
                async for data in response:
                    if b"\n" not in data:
                        size += len(data)
                        if size > MAX_EVENT_BYTES:
                            raise self._garbled(f"an event longer than {MAX_EVENT_BYTES} bytes")
                        partial.append(data)
                        continue
                    if partial:
                        partial.append(data)
                        data = b"".join(partial)
                    *lines, rest = data.split(b"\n")
                    partial, size = ([rest], len(rest)) if rest else ([], 0)
                    for line in lines:
                        event = self._event(line)
                        if event is _DONE:
                            done = True
                            return
                        if event is not None:
                            yield event
                if partial:  # the last line, without its newline
                    event = self._event(b"".join(partial))
                    if event is not None and event is not _DONE:
                        yield event
            finally:
                response.close(linger=done)
        except _FAILURES as exc:
            raise self.transport_error(exc) from exc

    def _event(self, line: bytes) -> Any:
        """The JSON of one ``data:`` line; ``_DONE`` for ``[DONE]``; None for any other
        line (blank lines between events, comments, event names) or a non-object."""
        if not line.startswith(b"data:"):
            return None
        data = line[5:].strip()
        if data == b"[DONE]":
            return _DONE
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            text = data[:MAX_QUOTED_BYTES].decode("utf-8", "replace")
            raise self._garbled(f"an event that is not JSON{upstream_said(text)}") from None
        if not isinstance(event, dict):
            return None
        if "error" in event:
            raise self._reported(event["error"])
        return event

    async def aclose(self) -> None:
        client, self._client = self._client, None
        loop, self._loop = self._loop, None
        if client is not None and loop is not None and _can_close_from_here(loop):
            await client.aclose()

    # --- the client --------------------------------------------------------------------

    async def _call(self, method: str, path: str, data: bytes | None) -> Any:
        client = await self._client_here()
        try:
            response = await client.request(method, path, data, telemetry.outgoing_headers())
            try:
                raw = await response.read()
            finally:
                response.close()
        except _FAILURES as exc:
            raise self.transport_error(exc) from exc
        if response.status >= 400:
            raise self.status_error(response.status, response.headers, raw)
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:  # a body cut short, or not an API's answer at all
            text = raw[:MAX_QUOTED_BYTES].decode("utf-8", "replace")
            raise BackendConnectionError(
                f"model '{self.model}': the server's answer to {path} is cut off or "
                f"not JSON{upstream_said(text)}",
                model=self.model,
                instance=self.instance,
            ) from None

    async def _client_here(self) -> Client | ProxiedClient:
        """The client of the running event loop (made afresh in another loop): direct,
        or through the proxy the environment names for the URL."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise BackendError(
                f"model '{self.model}' (proxy/openai) runs on asyncio; run it under "
                "asyncio (anyio's default backend)",
                model=self.model,
                instance=self.instance,
            ) from None
        client = self._client
        if client is not None and self._loop is loop:
            return client
        await self.aclose()
        proxy = env_proxy(self._base)
        try:
            if proxy is None:
                client = Client(self._base, self._headers, self._timeout_s)
            else:
                client = ProxiedClient(self._base, self._headers, self._timeout_s, proxy)
        except ImportError as exc:  # a proxy named after load(), which checked for aiohttp
            raise BackendError(
                f"model '{self.model}': the environment names a proxy for `api_base`, and "
                f"calls through it need the Python package 'aiohttp', which is not "
                f"importable ({exc}); install it with: pip install 'smmf-flow[openai]'",
                model=self.model,
                instance=self.instance,
            ) from exc
        except ValueError as exc:  # a line break in `api_key`, a URL that is not http(s)
            raise BackendError(
                f"model '{self.model}': `api_base` or `api_key` cannot be sent: "
                f"{self._scrub(str(exc))}",
                model=self.model,
                instance=self.instance,
            ) from None
        self._client, self._loop = client, loop
        return client

    # --- errors ------------------------------------------------------------------------

    def status_error(self, status: int, headers: Mapping[str, str], raw: bytes) -> BackendError:
        """The typed error for an HTTP error status (see the module docstring). The
        upstream's words are quoted where they are about the upstream itself; a
        refusal of the request keeps them plain, since they say what to change."""
        where, names = f"model '{self.model}'", {"model": self.model, "instance": self.instance}
        message = self._scrub(bounded_line(_error_message(raw, status)))
        logger.debug("model '%s' at %s: HTTP %d: %s", self.model, self.api_base, status, message)
        if status == 429:
            return RateLimited(
                f"{where}: rate limited (HTTP 429{upstream_said(message)})",
                retry_after=retry_after(headers),
                **names,
            )
        if status in (400, 413) and any(h in message.lower() for h in _CONTEXT_HINTS):
            return ContextWindowExceeded(
                f"{where}: the prompt does not fit the context window (HTTP {status}): {message}",
                **names,
            )
        if status in (400, 413, 422):  # the upstream refuses this request
            return RequestRefused(
                f"{where}: the upstream refused the request (HTTP {status}): {message}", **names
            )
        failed = "the upstream failed" if status >= 500 else "the upstream answered with an error"
        what, hint = _STATUS_WORDS.get(status, (failed, ""))
        return UpstreamError(
            f"{where}: {what} (HTTP {status}{upstream_said(message)}){hint}", status=status, **names
        )

    def transport_error(self, exc: BaseException) -> BackendError:
        """The typed error for a failure of the connection itself."""
        logger.debug("model '%s' at %s: %s: %s", self.model, self.api_base, type(exc).__name__, exc)
        where, names = f"model '{self.model}'", {"model": self.model, "instance": self.instance}
        if isinstance(exc, TimeoutError):
            return BackendTimeout(
                f"{where}: the request timed out; raise `timeout_s` or check the server's load",
                **names,
            )
        if isinstance(exc, ConnectFailed):
            return BackendConnectionError(
                f"{where}: cannot connect (ConnectError: {self._scrub(str(exc))}); "
                "check `api_base` and that the server is running",
                **names,
            )
        if isinstance(exc, OSError):
            return BackendConnectionError(
                f"{where}: the connection broke ({self._cause(exc)})", **names
            )
        if isinstance(exc, ProtocolError):
            return self._garbled(self._scrub(str(exc)))
        return BackendError(f"{where}: {self._cause(exc)}", **names)

    def _reported(self, error: Any) -> BackendError:
        """An error the server reports inside a stream (``data: {"error": ...}``)."""
        message = error.get("message") if isinstance(error, dict) else error
        return UpstreamError(
            f"model '{self.model}': the server reported an error mid-stream"
            f"{upstream_said(self._scrub(str(message)[:MAX_QUOTED_BYTES]))}",
            model=self.model,
            instance=self.instance,
        )

    def _garbled(self, what: str) -> BackendError:
        return UpstreamError(
            f"model '{self.model}': the server sent {what}",
            model=self.model,
            instance=self.instance,
        )

    def _cause(self, exc: BaseException) -> str:
        """``Type: message`` of ``exc``, without the server's address."""
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return self._scrub(text)

    def _scrub(self, text: str) -> str:
        """``text`` without the server's address (the upstream's own messages may hold it)."""
        split = urlsplit(self.api_base)
        names = {self.api_base, self._base, split.netloc, split.hostname or ""} - {""}
        for address in sorted(names, key=len, reverse=True):
            text = text.replace(address, "the server")
        return text


def _error_message(raw: bytes, status: int) -> str:
    """The message of an error body: OpenAI's ``error.message``, vLLM's ``message``,
    FastAPI's ``detail``, else the body's text."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        for value in (error, body.get("message"), body.get("detail")):
            if isinstance(value, str):
                return value
    text = raw[:MAX_QUOTED_BYTES].decode("utf-8", "replace").strip()
    return text or f"Error code: {status}"


def _can_close_from_here(loop: asyncio.AbstractEventLoop) -> bool:
    """A session's connections can be closed from its own loop, or from anywhere once
    its loop has ended (there is nothing left to close then but the bookkeeping)."""
    try:
        return loop.is_closed() or loop is asyncio.get_running_loop()
    except RuntimeError:
        return False


__all__ = ["KEEPALIVE_S", "MAX_EVENT_BYTES", "Upstream", "retry_after"]
