"""A registry of the bundled models for the adapter tests: SmolLM2 on llama.cpp
(deterministic mode), MiniLM, ``offline`` (an OpenAI-compatible model nothing
serves), ``dying`` (SmolLM2 whose streams break after 3 chunks), and two fallback
groups: ``chat`` tries ``offline`` first, ``resilient`` tries ``dying`` first."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from smmf_flow.models import ModelRegistry

DOCS = [
    "The Varnholm lighthouse was designed by the engineer Ilse Brandt in 1887.",
    "A bicycle chain should be cleaned and oiled every 300 kilometres.",
    "A sourdough starter needs flour and water once a day to stay alive.",
]
QUESTION = "How often should a bicycle chain be oiled?"


def config(
    llama_entry: Callable[..., dict[str, Any]],
    unreachable_entry: Callable[..., dict[str, Any]],
    minilm_entry: dict[str, Any],
) -> dict[str, Any]:
    return {
        "models": {
            "default_llm": "smollm2",
            "default_embedding": "minilm",
            "llms": [
                llama_entry("smollm2"),
                unreachable_entry("offline", failure_threshold=1000),
                # SmolLM2 whose streams break after 3 chunks (tests/conftest.py)
                llama_entry("dying", provider="test/llama-dies-after-3", failure_threshold=1000),
            ],
            "embeddings": [{**minilm_entry, "batch_size": 64, "max_batch_wait_ms": 5}],
            "groups": [
                {"name": "chat", "strategy": "fallback", "members": ["offline", "smollm2"]},
                {"name": "resilient", "strategy": "fallback", "members": ["dying", "smollm2"]},
            ],
        }
    }


@pytest.fixture(scope="module")
def models(
    llama_entry: Callable[..., dict[str, Any]],
    unreachable_entry: Callable[..., dict[str, Any]],
    minilm_entry: dict[str, Any],
) -> Iterator[ModelRegistry]:
    """The registry, closed at the end of the module from a thread of its own (an
    anyio test runner may claim the main thread as running asyncio)."""
    registry = ModelRegistry.from_dict(config(llama_entry, unreachable_entry, minilm_entry))
    yield registry
    closer = threading.Thread(target=registry.close)
    closer.start()
    closer.join()
