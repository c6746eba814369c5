"""The ``models`` mark: which tests load a real model, so that ``make test-quick``
(``pytest -m "not models"``) runs the rest in seconds and ``make test`` runs all.

A test is marked when it loads a real model (llama.cpp, sentence-transformers,
hf, vLLM, MLX, a real ``llama_cpp.server``) or runs a subprocess that does:

- a module whose every test needs models says so with ``pytestmark``;
- a test that uses one of ``MODEL_FIXTURES`` (directly or through another
  fixture) is marked here, when the tests are collected;
- any other test that does, by its own ``@pytest.mark.models``.

The rule keeps itself: an unmarked test during which a real backend loads fails
(``check_unmarked_tests_load_no_model``), naming the backend. Loads in a
subprocess are not seen; such tests are marked by hand.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

#: fixtures that load a real model or start something that does (a server over
#: real models, a ``llama_cpp.server``), by name, in whichever test folder
MODEL_FIXTURES = frozenset(
    {
        "real_registry",  # tests/conftest.py: SmolLM2 and MiniLM for the session
        "llama",  # tests/backends/conftest.py: each real backend, started
        "llama_cached",
        "minilm",  # (tests/reliability/test_rag_hostile.py: MiniLM too)
        "hf",
        "hf_dir",  # exports the HF folder through transformers when it is missing
        "vllm",
        "mlx",
        "llama_server",  # a real llama_cpp.server
        "live",  # tests/server/conftest.py: the shared server warms its models up
        "registries",  # tests/flowfile/test_flows.py
        "indexed",  # tests/flows/test_rag_flows.py
        "hostile",  # tests/reliability/test_server_hostile.py
        "fuzzed",  # tests/reliability/test_fuzz_server.py
        "upstream",  # tests/reliability/test_chaos.py, test_recovery.py: llama_cpp.server
        "minilm_copies",  # tests/reliability/test_vectorstore_integrity.py
        "greedy",  # tests/scheduler/test_fallback.py
        "greedy_whole",
        "server_port",  # tests/test_readme_samples.py: `smmf-flow serve` on the default
    }
)

#: the backends whose successful ``load`` is a real model loading
REAL_BACKENDS = (
    ("smmf_flow.models.backends.llama_cpp", "LlamaCppBackend"),
    ("smmf_flow.models.backends.sentence_transformers", "SentenceTransformersBackend"),
    ("smmf_flow.models.backends.hf", "HFBackend"),
    ("smmf_flow.models.backends.vllm", "VLLMBackend"),
    ("smmf_flow.models.backends.mlx", "MLXBackend"),
)


def mark_model_tests(items: list[pytest.Item]) -> None:
    """Mark every test whose fixtures include one of ``MODEL_FIXTURES``."""
    for item in items:
        if MODEL_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.models)


def _counting(
    load: Callable[[Any], Coroutine[Any, Any, None]], loaded: list[str]
) -> Callable[[Any], Coroutine[Any, Any, None]]:
    @functools.wraps(load)
    async def counted(self: Any) -> None:
        await load(self)
        loaded.append(f"{type(self).__name__} ({self.config.name})")

    return counted


@pytest.fixture(autouse=True)
def check_unmarked_tests_load_no_model(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Fail a test without the ``models`` mark during which a real model loads."""
    if request.node.get_closest_marker("models") is not None:
        yield
        return
    loaded: list[str] = []
    for module, name in REAL_BACKENDS:
        backend = getattr(importlib.import_module(module), name)
        monkeypatch.setattr(backend, "load", _counting(backend.load, loaded))
    yield
    if loaded:
        pytest.fail(
            f"{request.node.nodeid} loaded a real model ({', '.join(loaded)}) without the "
            "`models` mark: mark it (tests/model_marks.py says how)",
            pytrace=False,
        )
