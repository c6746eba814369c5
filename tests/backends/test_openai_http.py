"""``openai_http.Upstream.events`` reads server-sent events from whatever arrives:
an event cut across network writes at any byte, ``\\r\\n`` line ends, several
events in one write, a last line without its newline; a line past
``MAX_EVENT_BYTES`` and one that is not JSON are refused with a clear error.
A real HTTP/1.1 server on loopback writes the given pieces one by one."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from smmf_flow.errors import BackendError
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
    with pytest.raises(BackendError, match=r"an event that is not JSON: b'\{nope'"):
        await read_all([event(1) + b"\n\n", b"data: {nope\n\n"])
