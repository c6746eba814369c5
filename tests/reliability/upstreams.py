"""Real OpenAI-compatible upstreams for the reliability tests, on loopback.

``ScriptedUpstream`` is a few lines of asyncio speaking HTTP/1.1: every chat
request gets a streamed answer of fixed pieces, then the ending a test asks for:
``finish`` (a finish reason and ``[DONE]``), ``eof`` (a complete HTTP body with no
finish reason and no ``[DONE]``, as ``llama_cpp.server`` sends when another
request interrupts a stream), ``drop`` (the connection closed mid-body), ``reset``
(aborted: the pieces may be lost with it) or ``stall`` (nothing more, until the
server closes). ``LlamaServer`` is ``python -m llama_cpp.server`` on the
bundled GGUF at a fixed port, so a test can take it down and bring it back.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Literal

Ending = Literal["finish", "eof", "drop", "reset", "stall"]


def _sse(data: Any) -> bytes:
    """One server-sent event, as one HTTP/1.1 chunk."""
    event = f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()
    return f"{len(event):x}\r\n".encode() + event + b"\r\n"


def _delta(text: str | None, finish: str | None = None) -> dict[str, Any]:
    delta = {"content": text} if text is not None else {}
    return {
        "id": "cut",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "scripted",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


class ScriptedUpstream:
    """``async with ScriptedUpstream(pieces, ending) as up:`` serves at ``up.url``."""

    def __init__(self, pieces: list[str], ending: Ending) -> None:
        self.pieces, self.ending = pieces, ending
        self.url = ""
        self.chats = 0  # chat requests answered
        self._server: asyncio.Server | None = None
        self._closing = asyncio.Event()  # ends stalled answers

    async def __aenter__(self) -> ScriptedUpstream:
        self._server = await asyncio.start_server(self._answer, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/v1"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._closing.set()
        self._server.close()
        await self._server.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)content-length:\s*(\d+)", head)
            await reader.readexactly(int(length.group(1)) if length else 0)
            if not head.startswith(b"POST"):  # the health check: GET /v1/models
                body = b'{"object": "list", "data": []}'
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"content-length: %d\r\n\r\n%s" % (len(body), body)
                )
                await writer.drain()
                return
            self.chats += 1
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
            )
            for piece in self.pieces:
                writer.write(_sse(_delta(piece)))
                await writer.drain()
            await self._end(writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _end(self, writer: asyncio.StreamWriter) -> None:
        if self.ending == "finish":
            writer.write(_sse(_delta(None, "stop")) + _sse("[DONE]"))
        elif self.ending == "drop":
            return  # closed by the caller, the chunked body never ended
        elif self.ending == "reset":
            writer.transport.abort()
            return
        elif self.ending == "stall":
            await self._closing.wait()
        writer.write(b"0\r\n\r\n")  # a complete HTTP body, whatever the SSE said
        await writer.drain()


class LlamaServer:
    """``python -m llama_cpp.server`` serving SmolLM2 at ``url``; ``start()`` and
    ``stop()`` as often as a test likes (the port stays the same)."""

    def __init__(self, gguf: Path, port: int, log: Path, *extra: str) -> None:
        self.gguf, self.port, self.log = gguf, port, log
        self.extra = list(extra)  # more llama_cpp.server options
        self.url = f"http://127.0.0.1:{port}/v1"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, limit: float = 120.0) -> None:
        with self.log.open("ab") as out:
            self._proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "smmf_flow.models.backends.llama_cpp_server",
                    "--model",
                    str(self.gguf),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--n_ctx",
                    "1024",
                    "--n_threads",
                    "1",
                    "--n_threads_batch",
                    "1",
                    *self.extra,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited:\n{self.log.read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=2):
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"llama_cpp.server not ready after {limit:g}s")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()  # down at once, as a crash would be
            proc.wait(30)
