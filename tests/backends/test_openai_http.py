"""``openai_http.Upstream.events`` reads server-sent events from whatever arrives:
an event cut across network writes at any byte, ``\\r\\n`` line ends, several
events in one write, a last line without its newline; a line past
``MAX_EVENT_BYTES`` and one that is not JSON are refused with a clear error.
A real HTTP/1.1 server on loopback writes the given pieces one by one."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from smmf_flow.errors import BackendError, UpstreamError
from smmf_flow.models.backends import openai_http
from smmf_flow.models.backends.openai_http import Upstream

pytestmark = pytest.mark.anyio
HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"


@asynccontextmanager
async def serving(pieces: list[bytes]) -> AsyncIterator[Upstream]:
    """An upstream whose answer body is ``pieces``, each written and flushed alone."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        await reader.readexactly(length)
        writer.write(HEAD)
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.01)  # each piece its own read on the other side
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    upstream = Upstream(f"http://127.0.0.1:{port}/v1", "k", 5, model="m", instance="m-0")
    try:
        yield upstream
    finally:
        await upstream.aclose()
        server.close()
        await server.wait_closed()


def event(i: int) -> bytes:
    return b"data: " + json.dumps({"i": i, "text": "x" * i}).encode()


async def read_all(pieces: list[bytes]) -> list[int]:
    async with serving(pieces) as upstream:
        return [e["i"] async for e in upstream.events("/chat/completions", {})]


async def test_events_cut_anywhere_come_out_whole() -> None:
    body = b"".join(event(i) + b"\n\n" for i in range(6)) + b"data: [DONE]\n\n"
    for size in (1, 3, 7, 50):
        pieces = [body[at : at + size] for at in range(0, len(body), size)]
        assert await read_all(pieces) == list(range(6)), size


async def test_crlf_comments_and_many_events_in_one_write() -> None:
    body = b": a comment\r\n" + b"".join(event(i) + b"\r\n\r\n" for i in range(4))
    assert await read_all([body, b"data: [DONE]\r\n\r\n"]) == [0, 1, 2, 3]


async def test_a_last_event_without_its_newline_still_counts() -> None:
    assert await read_all([event(1) + b"\n\n", event(2)]) == [1, 2]


async def test_nothing_after_done_is_read() -> None:
    assert await read_all([event(1) + b"\n\ndata: [DONE]\n\n" + event(2) + b"\n\n"]) == [1]


async def test_an_event_past_the_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(openai_http, "MAX_EVENT_BYTES", 1000)
    with pytest.raises(BackendError, match=r"^model 'm': the server sent an event longer than"):
        await read_all([b"data: " + b"x" * 600, b"y" * 600, b"\n\n"])


async def test_an_event_that_is_not_json_is_refused() -> None:
    with pytest.raises(UpstreamError, match=r'an event that is not JSON; upstream said: "\{nope"'):
        await read_all([event(1) + b"\n\n", b"data: {nope\n\n"])


# --- the client under Upstream: kept alive, garbled answers, the environment's proxy ----


class Counted:
    """A keep-alive upstream that streams each chat as chunks, ``[DONE]`` first and
    the body's end a moment later (as a model server's last write often comes);
    ``accepts`` counts its connections, ``lines`` the request lines it saw."""

    def __init__(self) -> None:
        self.accepts = 0
        self.lines: list[bytes] = []

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepts += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.lines.append(head.split(b"\r\n")[0])
                length = re.search(rb"(?i)content-length:\s*(\d+)", head)
                await reader.readexactly(int(length.group(1)) if length else 0)
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                    b"transfer-encoding: chunked\r\n\r\n"
                )
                for data in (event(1) + b"\n\n", event(2) + b"\n\ndata: [DONE]\n\n"):
                    writer.write(b"%x\r\n%s\r\n" % (len(data), data))
                    await writer.drain()
                await asyncio.sleep(0.01)
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def test_streams_ended_by_done_leave_their_connection_for_the_next() -> None:
    counted = Counted()
    server = await asyncio.start_server(counted, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    upstream = Upstream(f"http://127.0.0.1:{port}/v1", "k", 5, model="m", instance="m-0")
    try:
        for _ in range(3):
            assert [e["i"] async for e in upstream.events("/chat/completions", {})] == [1, 2]
            await asyncio.sleep(0.05)  # the body's end arrives after [DONE]
    finally:
        await upstream.aclose()
        server.close()
        await server.wait_closed()
    assert counted.accepts == 1


async def test_an_answer_that_is_not_http_is_a_clear_error() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    upstream = Upstream(f"http://127.0.0.1:{port}/v1", "k", 5, model="m", instance="m-0")
    try:
        with pytest.raises(
            BackendError, match=r"^model 'm': the server sent an answer that is not HTTP/1\.1"
        ) as info:
            await upstream.get("/models")
        assert str(port) not in str(info.value)
    finally:
        await upstream.aclose()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    ("key", "why"), [("k\r\nX-Evil: 1", "a line break"), ("k\u2019ey", "outside Latin-1")]
)
async def test_a_key_that_cannot_be_a_header_is_refused_before_sending(key: str, why: str) -> None:
    upstream = Upstream("http://127.0.0.1:9/v1", key, 5, model="m", instance="m-0")
    with pytest.raises(
        BackendError, match=r"^model 'm': `api_base` or `api_key` cannot be sent"
    ) as info:
        await upstream.get("/models")
    assert why in str(info.value) and "\u2019" not in str(info.value)
    assert "Evil" not in str(info.value)  # the key stays out of the message


async def test_the_query_of_api_base_goes_with_every_call() -> None:
    """An ``api_base`` with a query (Azure OpenAI's ``api-version``): each call keeps
    it after its own path, not glued inside the path."""
    counted = Counted()
    server = await asyncio.start_server(counted, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    base = f"http://127.0.0.1:{port}/openai/v1/?api-version=2024-10-21"
    upstream = Upstream(base, "k", 5, model="m", instance="m-0")
    try:
        assert [e["i"] async for e in upstream.events("/chat/completions", {})] == [1, 2]
    finally:
        await upstream.aclose()
        server.close()
        await server.wait_closed()
    assert counted.lines == [b"POST /openai/v1/chat/completions?api-version=2024-10-21 HTTP/1.1"]


@pytest.mark.parametrize("query", ["", "?api-version=2024-10-21"])
async def test_a_proxy_named_by_the_environment_carries_the_calls(
    monkeypatch: pytest.MonkeyPatch, query: str
) -> None:
    """``HTTP_PROXY`` set: requests go to the proxy, in absolute form with the
    ``api_base``'s query if it has one (here the proxy answers itself); the
    upstream's own port has nothing listening."""
    counted = Counted()
    proxy = await asyncio.start_server(counted, "127.0.0.1", 0)
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.sockets[0].getsockname()[1]}")
    monkeypatch.delenv("http_proxy", raising=False)
    upstream = Upstream(f"http://127.0.0.1:9/v1{query}", "k", 5, model="m", instance="m-0")
    try:
        for _ in range(2):
            assert [e["i"] async for e in upstream.events("/chat/completions", {})] == [1, 2]
    finally:
        await upstream.aclose()
        proxy.close()
        await proxy.wait_closed()
    target = f"http://127.0.0.1:9/v1/chat/completions{query}".encode()
    assert counted.lines[0] == b"POST " + target + b" HTTP/1.1"
    assert len(counted.lines) == 2
