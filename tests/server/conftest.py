"""A real smmf-flow server on a free loopback port, shared by the server tests.

The server runs uvicorn in a thread of the test process (its own event loop), so
the tests talk to it over real HTTP with real clients and can still read its
pools' counters directly. Its models: the default config's SmolLM2 and MiniLM
(``configs/default.toml``), plus entries over the same GGUF that the error tests
need:

- ``tight``: one slot and no queue (``concurrency = 1``, ``max_queue = 0``), so a
  second caller gets a 429 for certain;
- ``dying``: a real llama.cpp backend whose stream breaks after 3 chunks, and
  ``dead``: one that breaks before its first chunk;
- ``chat`` = fallback [dying, smollm2]: the break is survived mid-stream;
  ``fragile`` = fallback [dying, dead]: every member fails, after fallback.

Requests use the API key ``KEY``; flows come from ``FLOWS`` written to a
temporary folder.
"""

from __future__ import annotations

import socket
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from smmf_flow.models.registry import ModelRegistry
from smmf_flow.server import FlowCatalog, create_app

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-test-0123456789"
ROBUST = {"failure_threshold": 1000}  # failing on purpose must not trip the breaker

FLOWS = {
    "ask.yaml": """
version: 1
name: ask
description: Answer briefly.
inputs:
  question: str
  words: {type: int, default: 5}
nodes:
  prompt: {type: prompt, template: "In {{ words }} words: {{ question }}"}
  answer: {type: llm, model: smollm2, max_tokens: 6, temperature: 0}
edges: ["prompt >> answer"]
output: answer
""",
    "ask-stream.yaml": """
version: 1
name: ask-stream
inputs:
  question: str
nodes:
  prompt: {type: prompt, template: "{{ question }}"}
  answer: {type: llm, stream: true, model: smollm2, max_tokens: 6, temperature: 0}
edges: ["prompt >> answer"]
output: answer
stream: true
""",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    """A running server: its base URL, its registry and the uvicorn handle."""

    url: str
    registry: ModelRegistry
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def v1(self) -> str:
        return f"{self.url}/v1"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def start_server(
    registry: ModelRegistry,
    *,
    flows: FlowCatalog | None = None,
    api_keys: tuple[str, ...] = (),
    ready_s: float = 300,
    ready: bool = True,
    **options: Any,
) -> LiveServer:
    """Run ``create_app(registry, ...)`` under uvicorn in a thread (``options`` go to
    ``create_app``); return once /readyz is 200, or with ``ready=False`` once the
    warm-up has ended either way."""
    app = create_app(registry, flows=flows, api_keys=api_keys, **options)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, name=f"uvicorn:{port}", daemon=True)
    thread.start()
    live = LiveServer(f"http://127.0.0.1:{port}", registry, server, thread)
    deadline = time.monotonic() + ready_s
    while time.monotonic() < deadline:
        if server.started:
            probe = httpx.get(f"{live.url}/readyz")
            if probe.status_code == 200 or (not ready and probe.json()["status"] != "warming up"):
                return live
        if not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.1)
    live.stop()
    raise RuntimeError(f"the test server was not ready after {ready_s}s")


def server_config(llama: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    """configs/default.toml (SmolLM2 in llama.cpp's deterministic mode), plus the
    entries described in the module docstring."""
    data = tomllib.loads((ROOT / "configs" / "default.toml").read_text())
    # llama.cpp's deterministic mode: tests compare greedy answers across requests
    data["models"]["llms"][0]["prefix_cache"] = False
    small = {"context_length": 512}
    data["models"]["llms"] += [
        llama("tight", concurrency=1, max_queue=0, **small),
        llama("dying", provider="test/llama-dies-after-3", **small, **ROBUST),
        llama("dead", provider="test/llama-dies-after-0", **small, **ROBUST),
    ]
    data["models"]["groups"] = [
        {"name": "chat", "strategy": "fallback", "members": ["dying", "smollm2"]},
        {"name": "fragile", "strategy": "fallback", "members": ["dying", "dead"]},
    ]
    return data


@pytest.fixture(scope="session")
def live(
    llama_entry: Callable[..., dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """The shared test server (see the module docstring)."""
    registry = ModelRegistry.from_dict(server_config(llama_entry), base_dir=ROOT / "configs")
    folder = tmp_path_factory.mktemp("flows")
    for name, text in FLOWS.items():
        (folder / name).write_text(text)
    server = start_server(registry, flows=FlowCatalog.from_dir(folder, registry), api_keys=(KEY,))
    yield server
    server.stop()


@pytest.fixture
def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def http(live: LiveServer) -> Iterator[httpx.Client]:
    """A plain HTTP client on the test server, with the key."""
    with httpx.Client(
        base_url=live.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=120
    ) as client:
        yield client


def wait_until(check: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()
