"""``http1.Client`` against real servers on loopback: raw asyncio servers that write
exactly the bytes a test wants (cut anywhere, closed early, stalled, garbled), and
uvicorn for a real server's keep-alive and chunked streams. Each raw server counts
the connections it accepts, which is how reuse is seen."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from smmf_flow.models.backends import http1
from smmf_flow.models.backends.http1 import Client, ConnectFailed, ProtocolError

from .conftest import free_port

pytestmark = pytest.mark.anyio
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"


class Served:
    """Where a raw server listens, and how many connections it accepted."""

    def __init__(self) -> None:
        self.url = ""
        self.accepts = 0


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[Served]:
    """A server running ``handler`` on each connection it accepts."""
    served = Served()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served.accepts += 1
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    served.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
    try:
        yield served
    finally:
        server.close()
        await server.wait_closed()


@asynccontextmanager
async def client_of(served: Served, timeout_s: float = 5) -> AsyncIterator[Client]:
    client = Client(served.url, {"Authorization": "Bearer k"}, timeout_s)
    try:
        yield client
    finally:
        await client.aclose()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One request's head (its body, by Content-Length, read and dropped)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = re.search(rb"(?i)content-length:\s*(\d+)", head)
    await reader.readexactly(int(length.group(1)) if length else 0)
    return head


def whole(body: bytes, *extra: bytes) -> bytes:
    return OK_HEAD + b"".join(extra) + b"content-length: %d\r\n\r\n" % len(body) + body


def chunked(body: bytes, size: int) -> bytes:
    """``body`` as a chunked HTTP/1.1 answer, in chunks of ``size`` bytes."""
    chunks = [body[at : at + size] for at in range(0, len(body), size)]
    encoded = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks)
    return OK_HEAD + b"transfer-encoding: chunked\r\n\r\n" + encoded + b"0\r\n\r\n"


def answering(*answers: bytes, cut: int = 0) -> Handler:
    """Answers each request on a connection with the next of ``answers`` (the last one
    again once they run out), written ``cut`` bytes at a time (0: at once)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for n in range(1_000):
            await read_request(reader)
            answer = answers[min(n, len(answers) - 1)]
            for at in range(0, len(answer), cut or len(answer)):
                writer.write(answer[at : at + (cut or len(answer))])
                await writer.drain()
                if cut:
                    await asyncio.sleep(0)

    return handler


BODY = b'{"choices": [{"text": "' + b"x" * 300 + b'"}]}'


# --- answers, whole and cut anywhere -------------------------------------------------------


@pytest.mark.parametrize("cut", [0, 1, 7, 64])
@pytest.mark.parametrize("form", ["content-length", "chunked"])
async def test_answers_come_out_whole_however_they_are_cut(cut: int, form: str) -> None:
    answer = whole(BODY) if form == "content-length" else chunked(BODY, 50)
    async with serving(answering(answer, cut=cut)) as served, client_of(served) as client:
        response = await client.request("POST", "/chat/completions", b"{}")
        assert (response.status, await response.read()) == (200, BODY)
        response = await client.request("POST", "/chat/completions", b"{}")
        pieces = [piece async for piece in response]
        assert b"".join(pieces) == BODY
        if cut == 1:
            assert len(pieces) > 10  # as it arrives, not all at the end
    assert served.accepts == 1


async def test_the_request_is_one_well_formed_message() -> None:
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        seen.append(await reader.readexactly(7))
        writer.write(whole(b"{}"))

    async with serving(handler) as served, client_of(served) as client:
        response = await client.request("POST", "/chat/completions", b'{"a":1}', {"X-Trace": "t"})
        assert await response.read() == b"{}"
    head, body = seen
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v1/chat/completions HTTP/1.1"
    assert {b"Host: " + served.url.split("/")[2].encode(), b"Authorization: Bearer k"} <= set(lines)
    assert {b"X-Trace: t", b"Content-Length: 7", b"Accept-Encoding: identity"} <= set(lines)
    assert body == b'{"a":1}'


async def test_headers_are_read_with_lower_case_names_and_interim_answers_skipped() -> None:
    early = b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n"
    answer = early + whole(b"{}", b"Retry-After: 7\r\n", b"X-Twice: 1\r\nx-twice: 2\r\n")
    async with serving(answering(answer)) as served, client_of(served) as client:
        response = await client.request("GET", "/models")
        assert response.status == 200 and await response.read() == b"{}"
        assert response.headers["retry-after"] == "7" and response.headers["x-twice"] == "1"
        assert "link" not in response.headers


async def test_a_body_that_runs_to_the_close_is_whole_and_the_connection_not_kept() -> None:
    answer = OK_HEAD + b"connection: close\r\n\r\n" + BODY

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer)

    async with serving(handler) as served, client_of(served) as client:
        for _ in range(2):
            response = await client.request("GET", "/models")
            assert await response.read() == BODY
    assert served.accepts == 2


# --- keep-alive ---------------------------------------------------------------------------


async def test_sequential_calls_share_one_connection() -> None:
    async with serving(answering(whole(BODY))) as served, client_of(served) as client:
        for _ in range(5):
            response = await client.request("POST", "/chat/completions", b"{}")
            assert await response.read() == BODY
    assert served.accepts == 1


async def test_connection_close_is_honoured() -> None:
    answer = whole(BODY, b"Connection: close\r\n")
    async with serving(answering(answer)) as served, client_of(served) as client:
        for _ in range(3):
            response = await client.request("POST", "/chat/completions", b"{}")
            assert await response.read() == BODY
    assert served.accepts == 3


async def test_a_connection_idle_past_keepalive_is_not_reused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http1, "KEEPALIVE_S", 0.05)
    async with serving(answering(whole(BODY))) as served, client_of(served) as client:
        for _ in range(2):
            response = await client.request("GET", "/models")
            assert await response.read() == BODY
            await asyncio.sleep(0.1)
    assert served.accepts == 2


async def test_a_kept_alive_connection_closed_as_it_is_reused_is_retried_once() -> None:
    """The server answers each connection's first request and closes at the second,
    unanswered (its idle timeout ran out just then): the client asks again, anew."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(whole(BODY))
        await read_request(reader)  # and close without a byte of answer

    async with serving(handler) as served, client_of(served) as client:
        for _ in range(3):
            response = await client.request("POST", "/chat/completions", b"{}")
            assert await response.read() == BODY
    assert served.accepts == 3


async def test_a_new_connection_closed_unanswered_is_not_retried() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    async with serving(handler) as served, client_of(served) as client:
        with pytest.raises(ConnectionResetError, match="closed the connection unanswered"):
            await client.request("POST", "/chat/completions", b"{}")
    assert served.accepts == 1


# --- answers that break --------------------------------------------------------------------


@pytest.mark.parametrize("form", ["content-length", "chunked"])
async def test_a_server_that_closes_mid_body_is_an_error_not_a_short_answer(form: str) -> None:
    answer = whole(BODY) if form == "content-length" else chunked(BODY, 50)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer[: len(answer) - 40])
        await writer.drain()

    async with serving(handler) as served, client_of(served) as client:
        response = await client.request("POST", "/chat/completions", b"{}")
        with pytest.raises(ConnectionResetError, match="before the answer ended"):
            await response.read()
        response = await client.request("POST", "/chat/completions", b"{}")
        with pytest.raises(ConnectionResetError):
            async for _ in response:
                pass
    assert served.accepts == 2


async def test_a_stall_is_a_timeout_after_timeout_s() -> None:
    release = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_request(reader)
        if b"/models" not in head:  # the head, part of the body, then nothing
            writer.write(whole(BODY)[:-10])
            await writer.drain()
        await release.wait()

    async with serving(handler) as served, client_of(served, timeout_s=0.3) as client:
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(TimeoutError):
            await client.request("GET", "/models")  # no head
        response = await client.request("POST", "/chat/completions", b"{}")
        with pytest.raises(TimeoutError):
            await response.read()  # no end of body
        assert 0.5 <= loop.time() - start < 5
        release.set()


async def test_a_slow_stream_that_keeps_sending_does_not_time_out() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK_HEAD + b"transfer-encoding: chunked\r\n\r\n")
        for _ in range(8):
            writer.write(b"1\r\nx\r\n")
            await writer.drain()
            await asyncio.sleep(0.1)
        writer.write(b"0\r\n\r\n")

    async with serving(handler) as served, client_of(served, timeout_s=0.3) as client:
        response = await client.request("POST", "/chat/completions", b"{}")
        assert await response.read() == b"x" * 8


async def test_connection_refused_is_typed_and_names_no_address() -> None:
    port = free_port()
    served = Served()
    served.url = f"http://127.0.0.1:{port}/v1"
    async with client_of(served) as client:
        with pytest.raises(ConnectFailed) as info:
            await client.request("GET", "/models")
    assert str(info.value) == "Connection refused"
    assert "127.0.0.1" not in str(info.value) and str(port) not in str(info.value)


async def test_https_to_a_server_that_speaks_no_tls_fails_to_connect_nameless() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()

    async with serving(handler) as served:
        served.url = served.url.replace("http://", "https://")
        async with client_of(served) as client:
            with pytest.raises(ConnectFailed, match=r"^TLS: ") as info:
                await client.request("GET", "/models")
    assert "127.0.0.1" not in str(info.value)


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 2x0 OK\r\ncontent-length: 0\r\n\r\n",
        b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
        OK_HEAD + b"x-huge: " + b"a" * 70_000 + b"\r\ncontent-length: 0\r\n\r\n",
        OK_HEAD + b"".join(b"x-%d: 1\r\n" % i for i in range(10_000)) + b"\r\n",
        OK_HEAD + b"transfer-encoding: chunked\r\n\r\nzz\r\nx\r\n0\r\n\r\n",
    ],
    ids=["status", "not-http", "huge-header", "many-headers", "bad-chunk"],
)
@pytest.mark.parametrize("cut", [0, 1000])
async def test_garbage_is_a_protocol_error(answer: bytes, cut: int) -> None:
    async with serving(answering(answer, cut=cut)) as served, client_of(served) as client:
        with pytest.raises(ProtocolError):
            await fetched(client)


async def fetched(client: Client) -> bytes:
    return await (await client.request("GET", "/models")).read()


async def test_bytes_after_the_answer_keep_the_answer_but_not_the_connection() -> None:
    answer = whole(BODY) + b"HTTP/1.1 200 OK\r\n"
    async with serving(answering(answer)) as served, client_of(served) as client:
        for _ in range(2):
            response = await client.request("GET", "/models")
            assert await response.read() == BODY
    assert served.accepts == 2


# --- streams the caller stops reading ----------------------------------------------------------


async def test_an_abandoned_stream_s_connection_is_not_reused() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK_HEAD + b"transfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()
        await reader.read()  # until the client closes

    async with serving(handler) as served, client_of(served) as client:
        for _ in range(2):
            response = await client.request("POST", "/chat/completions", b"{}")
            async for piece in response:
                assert piece == b"first"
                break
            response.close()
    assert served.accepts == 2


async def test_a_lingering_stream_is_reused_once_its_end_comes() -> None:
    """``close(linger=True)``: the caller is done ([DONE] came) before the chunked body
    ended; the end follows and the connection serves the next call."""
    go_on = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(OK_HEAD + b"transfer-encoding: chunked\r\n\r\n4\r\ndone\r\n")
            await writer.drain()
            await go_on.wait()
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    async with serving(handler) as served, client_of(served) as client:
        for _ in range(2):
            go_on.clear()
            response = await client.request("POST", "/chat/completions", b"{}")
            assert await response.__anext__() == b"done"
            response.close(linger=True)
            go_on.set()
            await asyncio.sleep(0.05)
    assert served.accepts == 1


async def test_a_lagging_reader_holds_at_most_the_bound_plus_one_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fast server, a slow reader: the body passes through with at most
    ``MAX_BUFFERED_BYTES`` (plus the one socket read that crossed it) held here."""
    bound, block, blocks = 64 * 1024, 1 << 20, 16
    monkeypatch.setattr(http1, "MAX_BUFFERED_BYTES", bound)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK_HEAD + b"content-length: %d\r\n\r\n" % (block * blocks))
        for i in range(blocks):
            writer.write(bytes([65 + i]) * block)
            await writer.drain()

    async with serving(handler) as served, client_of(served) as client:
        response = await client.request("POST", "/chat/completions", b"{}")
        sizes, total = [], bytearray()
        async for piece in response:  # each piece is everything buffered at the time
            sizes.append(len(piece))
            total += piece
            await asyncio.sleep(0.001)
    assert bytes(total) == b"".join(bytes([65 + i]) * block for i in range(blocks))
    assert max(sizes) <= bound + 256 * 1024  # a socket read is at most 256 KiB
    assert len(sizes) > blocks * block / (bound + 256 * 1024)


# --- a real server --------------------------------------------------------------------------


async def test_against_uvicorn_whole_and_streamed_on_one_connection() -> None:
    import uvicorn

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        stream = scope["path"].endswith("/stream")
        headers = [(b"content-type", b"application/json")]
        if not stream:
            headers.append((b"content-length", str(len(BODY)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if stream:
            for i in range(20):
                await send({"type": "http.response.body", "body": b"%d;" % i, "more_body": True})
                await asyncio.sleep(0.001)
        await send({"type": "http.response.body", "body": b"" if stream else BODY})

    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="error")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    served = Served()
    served.url = f"http://127.0.0.1:{config.port}/v1"
    try:
        async with client_of(served) as client:
            for _ in range(3):
                response = await client.request("POST", "/whole", b"{}")
                assert await response.read() == BODY
                response = await client.request("POST", "/stream", b"{}")
                pieces = [piece async for piece in response]
                assert b"".join(pieces) == b"".join(b"%d;" % i for i in range(20))
            assert len(server.server_state.connections) == 1
    finally:
        server.should_exit = True
        await task
