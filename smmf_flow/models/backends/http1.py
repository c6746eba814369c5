"""A small HTTP/1.1 client for the proxy backend's calls to its upstream.

Why not aiohttp: on a proxy's hot path its request and response machinery was
about a quarter of the server's CPU (``benchmarks/bench_server.py --part
gateway``). Here a request is one ``transport.write`` of a head encoded once per
path plus the body, and the answer is parsed by llhttp in C (``httptools``, which
uvicorn already uses): status, headers, Content-Length and chunked bodies.

- ``Client`` is one origin's pool of kept-alive connections in one event loop. A
  connection idle for ``KEEPALIVE_S`` is not reused (servers keep them about 5 s);
  one the server closed just as it was reused, before any byte of the answer, is
  retried once on a new connection, as browsers do.
- A connection goes back to the pool only when its answer was read to its end and
  the server did not say ``Connection: close``; one abandoned mid-body is closed.
- Timeouts are per step: the connect, then each wait for bytes, so a stream that
  keeps sending never times out (``TimeoutError``).
- A body read as it arrives is flow-controlled: past ``MAX_BUFFERED_BYTES`` not yet
  taken, the socket is not read until the reader catches up.
- Failures are ``ConnectFailed`` (no connection), other ``OSError``s (the connection
  broke), ``TimeoutError`` and ``ProtocolError`` (bytes that are not HTTP/1.1).
  Messages leave the server's address out: they reach HTTP callers.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import cast
from urllib.parse import quote, urlsplit

import httptools

#: seconds an idle connection is kept for reuse (less than common servers' 5)
KEEPALIVE_S = 4.0
#: the most bytes of status line and headers read before the answer is refused
MAX_HEAD_BYTES = 1 << 16
#: body bytes received but not yet taken by the reader before reading pauses
MAX_BUFFERED_BYTES = 1 << 20


class ProtocolError(ValueError):
    """The server sent something that is not an HTTP/1.1 answer."""


class ConnectFailed(ConnectionError):
    """No connection could be made; the message says why, never where."""


class Client:
    """Connections to the origin of ``base_url`` (scheme, host, port) for one event
    loop; every request carries ``headers`` (encoded once)."""

    def __init__(self, base_url: str, headers: Mapping[str, str], timeout_s: float) -> None:
        split = urlsplit(base_url)
        if split.scheme not in ("http", "https") or not split.hostname:
            raise ValueError("the URL is not http:// or https:// with a host")
        self._base_path = split.path.rstrip("/")
        self._query = f"?{split.query}" if split.query else ""  # e.g. Azure's api-version
        self._host = split.hostname
        self._port = split.port or (443 if split.scheme == "https" else 80)
        self._ssl = ssl.create_default_context() if split.scheme == "https" else None
        netloc = split.netloc.rpartition("@")[2]  # no user:password in the Host header
        lines = {"Host": netloc, "Accept-Encoding": "identity", **headers}
        self._common = _encode_headers(lines)
        self._timeout_s = timeout_s
        self._heads: dict[tuple[str, str], bytes] = {}
        self._idle: list[_Connection] = []
        self._closed = False
        self._loop = asyncio.get_running_loop()

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Send ``method`` to the base URL's path plus ``path`` (and the base URL's
        query, if any); the answer's status and headers have arrived, its body is the
        ``Response``'s to read."""
        head = self._heads.get((method, path))
        if head is None:
            target = quote(self._base_path + path + self._query, safe="/%:@!$&'()*+,;=-._~?")
            head = self._heads[method, path] = (
                f"{method} {target} HTTP/1.1\r\n".encode("ascii") + self._common
            )
        parts = [head]
        if headers:
            parts.append(_encode_headers(headers))
        if body is not None:
            parts.append(b"Content-Length: %d\r\n\r\n" % len(body))
            parts.append(body)
        else:
            parts.append(b"\r\n")
        message = b"".join(parts)
        connection = self._reusable()
        if connection is not None:
            try:
                return await self._exchange(connection, message)
            except OSError as exc:
                if connection.got_bytes or isinstance(exc, TimeoutError):
                    raise
                # closed by the server as it was reused, before answering: once more
        return await self._exchange(await self._connect(), message)

    async def _exchange(self, connection: _Connection, message: bytes) -> Response:
        try:
            connection.send(message)
            await connection.head()
        except BaseException:
            connection.close()
            raise
        return Response(connection, self)

    async def aclose(self) -> None:
        """Close the idle connections now, the busy ones when their answers end (of a
        loop that has ended there is nothing left to close)."""
        self._closed = True
        idle, self._idle = self._idle, []
        if not self._loop.is_closed():
            for connection in idle:
                connection.close()

    def _reusable(self) -> _Connection | None:
        """The most recently used idle connection that is still open and fresh."""
        idle = self._idle
        while idle:
            connection = idle.pop()
            if connection.closed:
                continue
            if self._loop.time() - connection.idle_since < KEEPALIVE_S:
                return connection
            connection.close()  # and the rest are older still
            for older in idle:
                older.close()
            idle.clear()
        return None

    async def _connect(self) -> _Connection:
        loop = self._loop
        try:
            async with asyncio.timeout(self._timeout_s):
                _, connection = await loop.create_connection(
                    lambda: _Connection(loop, self._timeout_s),
                    self._host,
                    self._port,
                    ssl=self._ssl,
                    server_hostname=self._host if self._ssl else None,
                )
        except TimeoutError:
            raise
        except OSError as exc:
            raise ConnectFailed(failure_reason(exc)) from exc
        return connection

    def _release(self, connection: _Connection) -> None:
        """Back to the pool if its answer ended cleanly and the server keeps it open."""
        if self._closed or not connection.reusable():
            connection.close()
            return
        connection.drop()  # a caller done before the last bytes: they go, reading resumes
        connection.idle_since = self._loop.time()
        self._idle.append(connection)


class Response:
    """An answer: ``status``, ``headers`` (lower-cased names) and the body, by
    ``read()`` or piece by piece (``async for``). ``close()`` when done with it."""

    __slots__ = ("_client", "_connection", "_done", "_raw_headers", "status")

    def __init__(self, connection: _Connection, client: Client) -> None:
        self._connection, self._client = connection, client
        self.status = connection.status
        self._raw_headers = connection.raw_headers  # this answer's, whatever comes next
        self._done = False

    @property
    def headers(self) -> dict[str, str]:
        return {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in reversed(self._raw_headers)  # the first one wins
        }

    async def read(self) -> bytes:
        """The whole body."""
        connection = self._connection
        if connection.complete and not self._done:  # the usual case: it came with the head
            body = connection.take()
            self.close()
            return body
        return b"".join([piece async for piece in self])

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        """Whatever body bytes have arrived (at least one), as they arrive."""
        if self._done:  # its connection may carry another answer by now
            raise RuntimeError("the answer was read after close()")
        connection = self._connection
        while True:
            if connection.pieces:
                return connection.take()
            if connection.complete:
                self.close()
                raise StopAsyncIteration
            if connection.error is not None:
                raise connection.error
            await connection.wait()

    def close(self, *, linger: bool = False) -> None:
        """Done with the answer: its connection goes back to the pool if the whole body
        came, else it is closed. ``linger`` (the rest of the body is of no interest,
        but the server is about to end it): the rest is read and dropped while the
        caller goes on, and the connection pooled if it ends soon and small."""
        if self._done:
            return
        self._done = True
        connection = self._connection
        if connection.complete:
            self._client._release(connection)
        elif linger and connection.error is None:
            connection.drain(self._client)
        else:
            connection.close()


class _Connection(asyncio.Protocol):
    """One connection and the answer it is reading (one at a time)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout_s: float) -> None:
        self._loop, self._timeout_s = loop, timeout_s
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self._busy = False  # an answer is expected or being read
        self._timer: asyncio.TimerHandle | None = None
        self._since = 0.0  # the last bytes or the start of the wait, for the timeout
        self._waiter: asyncio.Future[None] | None = None
        self._draining: Client | None = None
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.pieces: list[bytes] = []
        self.buffered = 0
        self.error: BaseException | None = None
        self.complete = False
        self.got_bytes = False
        self._head_done = False
        self._head_bytes = 0
        self._header_bytes = 0
        self._keep_alive = True
        self._informational = False
        self._paused = False

    # --- the caller's side -----------------------------------------------------------

    def send(self, message: bytes) -> None:
        self._reset()
        if self.closed or self._transport is None or self._transport.is_closing():
            raise ConnectionResetError("the server closed the connection unanswered")
        self._busy = True
        self._since = self._loop.time()
        if self._timer is None:
            self._timer = self._loop.call_at(self._since + self._timeout_s, self._check_time)
        self._transport.write(message)

    async def head(self) -> None:
        while not self._head_done:
            if self.error is not None:
                raise self.error
            await self.wait()

    async def wait(self) -> None:
        """Until more happens on the connection (bytes, the end, an error)."""
        self._since = self._loop.time()
        waiter = self._waiter = self._loop.create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    def take(self) -> bytes:
        """All the body bytes that have arrived, and reading resumes."""
        pieces = self.pieces
        data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        self.drop()
        return data

    def drop(self) -> None:
        """Forget the body bytes not taken, and read on."""
        self.pieces, self.buffered = [], 0
        if self._paused and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()

    def reusable(self) -> bool:
        return self.complete and self._keep_alive and not self.closed

    def drain(self, client: Client) -> None:
        """Read the rest of the answer and drop it; pooled by ``client`` once it ends."""
        self._draining = client
        self.drop()

    def close(self) -> None:
        self._busy = False
        self._stop_timer()
        if self._transport is not None and not self.closed:
            self.closed = True
            self._transport.close()

    def _done(self) -> None:
        """The answer ended: stop timing until the next request."""
        self._busy = False
        self._stop_timer()
        client, self._draining = self._draining, None
        if client is not None:
            client._release(self)

    def _fail(self, error: BaseException) -> None:
        if self.error is None and not self.complete:
            self.error = error
        self._keep_alive = False
        self._stop_timer()
        if self._transport is not None and not self.closed:
            self.closed = True
            self._transport.abort()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _check_time(self) -> None:
        """The one timer of an answer: fails a wait with no bytes for ``timeout_s``."""
        self._timer = None
        if not self._busy:
            return
        now = self._loop.time()
        if self._waiter is None and self._draining is None:  # the reader is busy elsewhere
            self._since = now
        due = self._since + self._timeout_s
        if now < due:
            self._timer = self._loop.call_at(due, self._check_time)
            return
        if self._draining is not None:
            self._draining = None
            self.close()
            return
        self._fail(TimeoutError(f"no answer within {self._timeout_s:g}s"))

    # --- asyncio's side --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if not self._busy:  # bytes nobody asked for: the connection is not usable
            self._keep_alive = False
            self.close()
            return
        self.got_bytes = True
        self._since = self._loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            self._fail(cause if isinstance(cause, ProtocolError) else _garbled(exc))
            return
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._fail(_garbled(exc))
            return
        if not self._head_done:  # then all bytes so far are head
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._fail(_too_long())
                return
        if self._draining is not None and self.buffered > MAX_BUFFERED_BYTES:
            self.close()  # not worth reading on
            return
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._stop_timer()
        if self._busy and not self.complete and self.error is None:
            if self._head_done and exc is None and self._ends_at_close():
                self.complete, self._keep_alive = True, False
            elif isinstance(exc, OSError):
                self.error = exc
            elif self.got_bytes:
                self.error = ConnectionResetError(
                    "the server closed the connection before the answer ended"
                )
            else:
                self.error = ConnectionResetError("the server closed the connection unanswered")
        self._busy = False
        self._draining = None
        self._wake()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _ends_at_close(self) -> bool:
        """Whether the body runs to the end of the connection (no length, not chunked)."""
        names = {name.lower(): value.lower() for name, value in self.raw_headers}
        return b"content-length" not in names and b"chunked" not in names.get(
            b"transfer-encoding", b""
        )

    # --- llhttp's callbacks ----------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.complete:  # more after the answer: nothing a client asked for
            raise ProtocolError("bytes after the end of the answer")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > MAX_HEAD_BYTES:  # a long head that came in one read
            raise _too_long()
        self.raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:  # 1xx: an interim answer; the real one follows
            self._informational = True
            self.raw_headers = []
            return
        self.status = status
        self._keep_alive = self._parser.should_keep_alive()
        self._head_done = True

    def on_body(self, body: bytes) -> None:
        if self._draining is not None:
            self.buffered += len(body)  # counted, to give up on a long tail
            return
        self.pieces.append(body)
        self.buffered += len(body)
        if self.buffered > MAX_BUFFERED_BYTES and not self._paused and self._transport:
            self._paused = True
            self._transport.pause_reading()

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        self.complete = True
        self._done()


def _encode_headers(headers: Mapping[str, str]) -> bytes:
    """``Name: value`` lines; a line break in a name or value would start a header of
    its own (or a new request), so it is refused."""
    text = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    if text.count("\n") != len(headers) or text.count("\r") != len(headers):
        raise ValueError("a header name or value holds a line break")
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError("a header name or value holds a character outside Latin-1") from None


def _too_long() -> ProtocolError:
    return ProtocolError(f"a status line and headers over {MAX_HEAD_BYTES} bytes")


def _garbled(exc: Exception) -> ProtocolError:
    reason = str(exc) or type(exc).__name__
    return ProtocolError(f"an answer that is not HTTP/1.1 ({reason})")


def failure_reason(error: OSError) -> str:
    """Why a connection failed, without the address asyncio puts in the message."""
    if isinstance(error, ssl.SSLError):
        return f"TLS: {error.reason or type(error).__name__}"
    if isinstance(error, socket.gaierror):
        return error.strerror or "the host name does not resolve"
    if error.errno is not None and error.errno > 0:
        return os.strerror(error.errno)
    return type(error).__name__


__all__ = [
    "KEEPALIVE_S",
    "MAX_BUFFERED_BYTES",
    "MAX_HEAD_BYTES",
    "Client",
    "ConnectFailed",
    "ProtocolError",
    "Response",
    "failure_reason",
]
