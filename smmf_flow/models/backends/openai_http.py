"""HTTP to an OpenAI-compatible server: JSON posted and read, server-sent events
parsed line by line, and every failure turned into a typed error.

One aiohttp session per event loop (a connection kept alive from a loop that has
ended cannot carry the next loop's request), with JSON by orjson and events as
plain dicts. Not the ``openai`` SDK: on a proxy's hot path its request options,
typed responses and httpx transport cost about 1.5 ms of CPU per call and half a
millisecond per streamed chunk, several times what the rest of the server costs
(``benchmarks/bench_server.py``). The errors mean what the SDK's meant:

- a status of 429 is ``RateLimited`` (with ``retry-after-ms`` / ``retry-after``);
  400 or 413 naming the context window is ``ContextWindowExceeded``; any other
  400, 413 or 422 is ``RequestRefused`` (the upstream refuses this request); the
  rest is ``BackendError`` with a hint for 401, 403 and 404;
- no connection is a ``BackendConnectionError`` ("cannot connect"), one that breaks
  or ends early is one too ("the connection broke"), and a read or connect that
  takes longer than ``timeout_s`` is ``BackendTimeout``.

The timeout is per step (connect, then each read), as the SDK's was, so a long
stream that keeps sending never times out. Proxies come from the environment
(``HTTPS_PROXY``, ``NO_PROXY``...), read once per session. While telemetry is
on, each request carries the model call's W3C ``traceparent``. Messages leave the
server's address out: they reach HTTP callers; the debug log of
``smmf_flow.models`` has it.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import socket
import time
import urllib.request
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson

from smmf_flow import telemetry
from smmf_flow.errors import (
    BackendConnectionError,
    BackendError,
    BackendTimeout,
    ContextWindowExceeded,
    RateLimited,
    RequestRefused,
)

if TYPE_CHECKING:
    import aiohttp
    import yarl

_CONTEXT_HINTS = (
    "context length",
    "context_length",
    "context window",
    "maximum context",
    "too many tokens",
    "reduce the length",
)
#: seconds an idle connection is kept for reuse (less than common servers' 5)
KEEPALIVE_S = 4.0
#: the longest line of a stream (one event) read before the stream is refused
MAX_EVENT_BYTES = 1 << 24
#: what ``Upstream._event`` returns for ``data: [DONE]``
_DONE: Any = object()
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
        self._urls: dict[str, yarl.URL] = {}  # parsed once per path, not per request
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._proxy: str | None = None

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
        several events per packet, and a read per line costs more than its JSON."""
        session = await self._session_here()
        try:
            async with await self._open(session, "POST", path, orjson.dumps(body)) as response:
                if response.status >= 400:
                    raise self.status_error(
                        response.status, response.headers, await response.read()
                    )
                partial: list[bytes] = []  # a line not yet ended
                size = 0
                async for data in response.content.iter_any():
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
                            return
                        if event is not None:
                            yield event
                if partial:  # the last line, without its newline
                    event = self._event(b"".join(partial))
                    if event is not None and event is not _DONE:
                        yield event
        except _failures() as exc:
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
            raise self._garbled(f"an event that is not JSON: {data[:80]!r}") from None
        if not isinstance(event, dict):
            return None
        if "error" in event:
            raise self._reported(event["error"])
        return event

    async def aclose(self) -> None:
        session, self._session = self._session, None
        loop, self._loop = self._loop, None
        if session is not None and loop is not None and _can_close_from_here(loop):
            await session.close()

    # --- the session -----------------------------------------------------------------

    async def _call(self, method: str, path: str, data: bytes | None) -> Any:
        session = await self._session_here()
        try:
            async with await self._open(session, method, path, data) as response:
                raw = await response.read()
                if response.status >= 400:
                    raise self.status_error(response.status, response.headers, raw)
        except _failures() as exc:
            raise self.transport_error(exc) from exc
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:  # a body cut short, or not an API's answer at all
            raise BackendConnectionError(
                f"model '{self.model}': the server's answer to {path} is cut off or "
                f"not JSON: {raw[:80]!r}",
                model=self.model,
                instance=self.instance,
            ) from None

    async def _open(
        self, session: aiohttp.ClientSession, method: str, path: str, data: bytes | None
    ) -> aiohttp.ClientResponse:
        """Send a request; its answer's status and headers have arrived. A kept-alive
        connection the server closed as it was reused (its idle timeout ran out at that
        moment) fails before any answer: the request is sent once more, on a new
        connection, as browsers do. Connections idle for ``KEEPALIVE_S`` are not reused
        at all, which makes that rare against servers that keep them 5 s (uvicorn's)."""
        import aiohttp
        import yarl

        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = yarl.URL(self._base + path)
        # the session sends self._headers; the trace (None while telemetry is off) adds
        trace = telemetry.outgoing_headers()
        try:
            return await session.request(method, url, data=data, headers=trace, proxy=self._proxy)
        except aiohttp.ServerDisconnectedError:
            return await session.request(method, url, data=data, headers=trace, proxy=self._proxy)

    async def _session_here(self) -> aiohttp.ClientSession:
        """The session of the running event loop (made afresh in another loop)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise BackendError(
                f"model '{self.model}' (proxy/openai) runs on asyncio; run it under "
                "asyncio (anyio's default backend)",
                model=self.model,
                instance=self.instance,
            ) from None
        session = self._session
        if session is not None and self._loop is loop:
            return session
        await self.aclose()
        import aiohttp

        self._session = aiohttp.ClientSession(
            # no limit: the pool's slots bound the calls
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEPALIVE_S),
            timeout=aiohttp.ClientTimeout(
                total=None, connect=self._timeout_s, sock_read=self._timeout_s
            ),
            cookie_jar=aiohttp.DummyCookieJar(),  # one tenant's cookies are no other's
            headers=self._headers,
            read_bufsize=MAX_EVENT_BYTES // 2,
        )
        self._loop = loop
        self._proxy = _env_proxy(self._base)
        return self._session

    # --- errors ------------------------------------------------------------------------

    def status_error(self, status: int, headers: Mapping[str, str], raw: bytes) -> BackendError:
        """The typed error for an HTTP error status (see the module docstring)."""
        where, names = f"model '{self.model}'", {"model": self.model, "instance": self.instance}
        message = self._scrub(_error_message(raw, status))
        logger.debug("model '%s' at %s: HTTP %d: %s", self.model, self.api_base, status, message)
        if status == 429:
            return RateLimited(
                f"{where}: rate limited (HTTP 429): {message}",
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
        hint = {
            401: "; check `api_key`",
            403: "; check `api_key`",
            404: "; check `remote_model` and `api_base`",
        }.get(status, "")
        return BackendError(f"{where}: HTTP {status}: {message}{hint}", **names)

    def transport_error(self, exc: BaseException) -> BackendError:
        """The typed error for a failure of the connection itself."""
        import aiohttp

        logger.debug("model '%s' at %s: %s: %s", self.model, self.api_base, type(exc).__name__, exc)
        where, names = f"model '{self.model}'", {"model": self.model, "instance": self.instance}
        if isinstance(exc, TimeoutError):
            return BackendTimeout(
                f"{where}: the request timed out; raise `timeout_s` or check the server's load",
                **names,
            )
        if isinstance(exc, aiohttp.ClientConnectorError):
            return BackendConnectionError(
                f"{where}: cannot connect (ConnectError: {self._scrub(_reason(exc.os_error))}); "
                "check `api_base` and that the server is running",
                **names,
            )
        if isinstance(exc, (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, OSError)):
            return BackendConnectionError(
                f"{where}: the connection broke ({self._cause(exc)})", **names
            )
        if isinstance(exc, ValueError):  # an event past MAX_EVENT_BYTES
            return self._garbled(f"an event longer than {MAX_EVENT_BYTES} bytes")
        return BackendError(f"{where}: {self._cause(exc)}", **names)

    def _reported(self, error: Any) -> BackendError:
        """An error the server reports inside a stream (``data: {"error": ...}``)."""
        message = error.get("message") if isinstance(error, dict) else error
        return BackendError(
            f"model '{self.model}': the server reported an error mid-stream: "
            f"{self._scrub(str(message)[:500])}",
            model=self.model,
            instance=self.instance,
        )

    def _garbled(self, what: str) -> BackendError:
        return BackendError(
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


def _failures() -> tuple[type[BaseException], ...]:
    """What a call may raise besides our own errors: aiohttp's, the socket's, a timeout,
    and ``ValueError`` for a line past the read buffer."""
    import aiohttp

    return (aiohttp.ClientError, OSError, TimeoutError, ValueError)


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
    text = raw.decode("utf-8", "replace").strip()
    return text[:1000] or f"Error code: {status}"


def _reason(error: OSError) -> str:
    """Why a connection failed, without the address asyncio puts in the message."""
    if isinstance(error, socket.gaierror):
        return error.strerror or "the host name does not resolve"
    if error.errno is not None and error.errno > 0:
        return os.strerror(error.errno)
    return type(error).__name__


def _env_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url`` (``HTTPS_PROXY``, ``NO_PROXY``...)."""
    split = urlsplit(url)
    proxies = urllib.request.getproxies()
    if not proxies or urllib.request.proxy_bypass(split.hostname or ""):
        return None
    return proxies.get(split.scheme)


def _can_close_from_here(loop: asyncio.AbstractEventLoop) -> bool:
    """A session's connections can be closed from its own loop, or from anywhere once
    its loop has ended (there is nothing left to close then but the bookkeeping)."""
    try:
        return loop.is_closed() or loop is asyncio.get_running_loop()
    except RuntimeError:
        return False


__all__ = ["KEEPALIVE_S", "MAX_EVENT_BYTES", "Upstream", "retry_after"]
