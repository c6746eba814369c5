"""Saved KV-cache sequences on the real SmolLM2 GGUF: several conversations stay warm
on one llama.cpp instance."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import numpy as np
import pytest

from smmf_flow.models.backends.llama_cpp import LlamaCppBackend
from smmf_flow.models.backends.llama_cpp_sequences import SavedSequences, shared_prefix
from smmf_flow.models.types import ChatMessage, ChatRequest

from .checks import assert_sane_answer
from .conftest import GGUF, config, start

pytestmark = [pytest.mark.anyio, pytest.mark.models]

T = TypeVar("T")
WORDS = ("river", "harbour", "lantern", "orchard", "granite", "meadow", "compass", "ledger")


@pytest.fixture(scope="module")
async def llama_saving() -> AsyncIterator[LlamaCppBackend]:
    backend = await start(config("smollm2-saving", "llama.cpp", GGUF, threads=1))
    assert isinstance(backend, LlamaCppBackend)
    yield backend
    await backend.aclose()


async def on_engine(backend: LlamaCppBackend, work: Callable[[Any], T]) -> T:
    """Run ``work(llm)`` on the thread that owns the backend's ``Llama``."""
    return await backend._engine.call(lambda stop: work(backend._llm))


def notes(seed: int, words: int = 90) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(words))


def evaluate(llm: Any, saved: SavedSequences, prompt: list[int]) -> tuple[int, np.ndarray]:
    """What a call does before sampling, as ``Llama.generate`` does it: prepare, keep
    the shared prefix, evaluate the rest. Returns how many tokens were reused and the
    next-token logits."""
    saved.prepare(prompt)
    reused = shared_prefix(llm.input_ids[: llm.n_tokens], np.asarray(prompt, dtype=np.intc))
    reused = min(reused, len(prompt) - 1)
    llm.n_tokens = reused
    llm.eval(prompt[reused:])
    lib = saved._lib
    logits = np.ctypeslib.as_array(lib.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),))
    return reused, logits.copy()


def tokens(llm: Any, text: str) -> list[int]:
    return list(llm.tokenize(text.encode(), add_bos=False, special=False))


async def test_a_conversation_restored_after_another_continues_from_its_own_cache(
    llama_saving: LlamaCppBackend,
) -> None:
    """Conversation A, then B (which overwrites the context), then A again: A's cache
    comes back from RAM, one token is evaluated, and the logits are those of a fresh
    evaluation of A (not B's, not garbage)."""

    def scenario(llm: Any) -> tuple[int, float, float, SavedSequences]:
        saved = SavedSequences(llama_saving._lib, llm, 64 * 2**20)
        a, b = tokens(llm, notes(1)), tokens(llm, notes(2))
        llm.reset()
        _, fresh_a = evaluate(llm, saved, a)
        _, fresh_b = evaluate(llm, saved, b)
        reused, restored_a = evaluate(llm, saved, a)
        drift = float(np.max(np.abs(restored_a - fresh_a)))
        other = float(np.max(np.abs(fresh_b - fresh_a)))
        return reused, drift, other, saved

    reused, drift, other, saved = await on_engine(llama_saving, scenario)
    assert (saved.saves, saved.restores) == (2, 1)
    assert reused > 64
    assert drift < 0.1 * other, (drift, other)  # the same state, not merely a state


async def test_saved_sequences_stay_within_their_byte_budget(
    llama_saving: LlamaCppBackend,
) -> None:
    def scenario(llm: Any) -> tuple[list[int], int]:
        probe = SavedSequences(llama_saving._lib, llm, 2**40)
        llm.reset()
        evaluate(llm, probe, tokens(llm, notes(10)))
        one = int(llama_saving._lib.llama_state_seq_get_size(llm.ctx, 0))
        saved = SavedSequences(llama_saving._lib, llm, one * 3 // 2)  # room for one
        held = []
        for seed in range(11, 15):
            evaluate(llm, saved, tokens(llm, notes(seed)))
            assert saved.held_bytes <= saved.capacity_bytes
            held.append(len(saved))
        return held, saved.saves

    held, saves = await on_engine(llama_saving, scenario)
    assert held == [1, 1, 1, 1]  # the probe's sequence first, then each one before
    assert saves == 4


async def test_a_full_budget_still_restores_what_the_call_needs(
    llama_saving: LlamaCppBackend,
) -> None:
    """Room for one saved sequence: going back to A must save B (evicting the oldest)
    without losing A, which is the one the call restores."""

    def scenario(llm: Any) -> tuple[int, int, int, int]:
        a, b = tokens(llm, notes(50)), tokens(llm, notes(51))
        llm.reset()
        one = SavedSequences(llama_saving._lib, llm, 2**40)
        evaluate(llm, one, a)
        size = int(llama_saving._lib.llama_state_seq_get_size(llm.ctx, 0))
        saved = SavedSequences(llama_saving._lib, llm, size * 3 // 2)
        evaluate(llm, saved, b)  # saves A
        reused, _ = evaluate(llm, saved, a)  # saves B, restores A
        return reused, len(a), saved.restores, len(saved)

    reused, length, restores, held = await on_engine(llama_saving, scenario)
    assert (restores, held) == (1, 1)
    assert reused == length - 1


async def test_a_grown_conversation_replaces_its_saved_prefix(
    llama_saving: LlamaCppBackend,
) -> None:
    """Two conversations taking turns, each turn extending its own history: RAM holds
    at most the one that is not live, never stale copies of earlier turns."""

    def scenario(llm: Any) -> tuple[list[int], int]:
        saved = SavedSequences(llama_saving._lib, llm, 2**30)
        llm.reset()
        histories = [tokens(llm, notes(20)), tokens(llm, notes(21))]
        held = []
        for turn in range(3):
            for who in (0, 1):
                if turn:
                    histories[who] = histories[who] + tokens(llm, " " + notes(30 + turn, 20))
                evaluate(llm, saved, histories[who])
                held.append(len(saved))
        return held, saved.restores

    held, restores = await on_engine(llama_saving, scenario)
    assert max(held) == 1
    assert restores == 4  # every turn after the first two came back from RAM


async def test_interleaved_chats_through_the_backend_restore_and_answer_sanely(
    llama_saving: LlamaCppBackend,
) -> None:
    saved = llama_saving.saved
    assert saved is not None
    before = saved.restores
    system = ChatMessage(role="system", content="You are a concise assistant.")
    chats = [[system], [system]]
    for turn in range(2):
        for who, chat in enumerate(chats):
            chat.append(
                ChatMessage(role="user", content=f"Notes: {notes(40 + 2 * turn + who)}. Summarise.")
            )
            answer = await assert_sane_answer(
                llama_saving, ChatRequest(messages=list(chat), max_tokens=12)
            )
            chat.append(ChatMessage(role="assistant", content=answer.text))
    assert saved.restores - before >= 1


async def test_no_saved_sequences_in_the_deterministic_mode_or_at_zero_budget() -> None:
    for fields in ({"prefix_cache": False}, {"prompt_cache_mb": 0}):
        backend = await start(config("smollm2-plain", "llama.cpp", GGUF, threads=1, **fields))
        try:
            assert isinstance(backend, LlamaCppBackend)
            assert backend.saved is None, fields
        finally:
            await backend.aclose()
