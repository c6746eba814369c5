"""``EmbeddingBatcher``: concurrent embedding calls coalesce into backend batches, each
caller gets its own vectors, and one caller's bad input fails only that caller.

The backend here is a deterministic function (the logic needs no model);
``tests/operators/test_embedding.py`` checks the same on MiniLM.
"""

from __future__ import annotations

import anyio
import pytest

from smmf_flow.errors import BackendError
from smmf_flow.models.batcher import EmbeddingBatcher

pytestmark = pytest.mark.anyio


class Embedder:
    """Embeds ``text`` as ``[len(text), sum of code points]``; fails on 'BAD'."""

    def __init__(self, delay: float = 0.0) -> None:
        self.batches: list[list[str]] = []
        self.delay = delay

    async def __call__(self, texts: list[str]) -> list[list[float]]:
        self.batches.append(list(texts))
        await anyio.sleep(self.delay)
        if "BAD" in texts:
            raise BackendError("cannot embed 'BAD'", model="fake")
        return [vector(t) for t in texts]


def vector(text: str) -> list[float]:
    return [float(len(text)), float(sum(map(ord, text)))]


class Calls(dict[str, object]):
    """``await calls(text)`` embeds ``[text]`` and keeps the result under ``text``."""

    def __init__(self, batcher: EmbeddingBatcher) -> None:
        super().__init__()
        self.batcher = batcher

    async def __call__(self, text: str) -> None:
        self[text] = await self.batcher.embed([text])


async def gather(batcher: EmbeddingBatcher, calls: list[list[str]]) -> list[object]:
    """Run every call concurrently; each slot gets vectors or the exception raised."""
    out: list[object] = [None] * len(calls)

    async def one(i: int) -> None:
        try:
            out[i] = await batcher.embed(calls[i])
        except Exception as exc:
            out[i] = exc

    async with anyio.create_task_group() as tg:
        for i in range(len(calls)):
            tg.start_soon(one, i)
    return out


async def test_concurrent_calls_share_batches_and_get_their_own_vectors() -> None:
    embed = Embedder()
    batcher = EmbeddingBatcher(embed, max_batch=8, max_wait_ms=20)
    calls = [[f"sentence number {i}"] for i in range(20)]
    results = await gather(batcher, calls)
    assert results == [[vector(c[0])] for c in calls]
    assert [len(b) for b in embed.batches] == [8, 8, 4]
    assert batcher.batches == 3 < len(calls) and batcher.texts == 20


async def test_a_callers_list_stays_whole_and_in_order() -> None:
    embed = Embedder()
    batcher = EmbeddingBatcher(embed, max_batch=4, max_wait_ms=20)
    calls = [["a", "bb", "ccc"], ["dddd"], ["e", "ff"], ["g"]]
    results = await gather(batcher, calls)
    assert results == [[vector(t) for t in c] for c in calls]
    assert embed.batches == [["a", "bb", "ccc", "dddd"], ["e", "ff", "g"]]


async def test_a_list_longer_than_the_batch_goes_in_one_piece() -> None:
    embed = Embedder()
    batcher = EmbeddingBatcher(embed, max_batch=2, max_wait_ms=0)
    texts = ["a", "b", "c", "d", "e"]
    assert await batcher.embed(texts) == [vector(t) for t in texts]
    assert embed.batches == [texts]


async def test_one_bad_input_fails_only_its_caller() -> None:
    embed = Embedder()
    batcher = EmbeddingBatcher(embed, max_batch=16, max_wait_ms=20)
    calls = [["good one"], ["BAD"], ["good two", "good three"], ["good four"]]
    results = await gather(batcher, calls)
    assert results[0] == [vector("good one")]
    assert isinstance(results[1], BackendError) and "cannot embed 'BAD'" in str(results[1])
    assert results[2] == [vector("good two"), vector("good three")]
    assert results[3] == [vector("good four")]
    # the failed batch was split to find the culprit: one try together, then one each
    assert embed.batches[0] == ["good one", "BAD", "good two", "good three", "good four"]
    assert embed.batches[1:] == [["good one"], ["BAD"], ["good two", "good three"],
                                 ["good four"]]


async def test_input_that_is_not_text_is_refused_before_any_batch() -> None:
    embed = Embedder()
    batcher = EmbeddingBatcher(embed, max_batch=4, model="minilm")
    with pytest.raises(BackendError, match="embedding input 1 is int, not a string") as err:
        await batcher.embed(["fine", 3])  # type: ignore[list-item]
    assert err.value.model == "minilm"
    assert await batcher.embed([]) == []
    assert embed.batches == []


async def test_a_full_batch_does_not_wait_for_max_wait() -> None:
    batcher = EmbeddingBatcher(Embedder(), max_batch=4, max_wait_ms=60_000)
    with anyio.fail_after(5):
        results = await gather(batcher, [[str(i)] for i in range(4)])
    assert results == [[vector(str(i))] for i in range(4)]


async def test_a_lone_caller_waits_at_most_max_wait() -> None:
    embed = Embedder()
    batcher = EmbeddingBatcher(embed, max_batch=64, max_wait_ms=30)
    with anyio.fail_after(5):  # not stuck waiting for a batch that never fills
        assert await batcher.embed(["alone"]) == [vector("alone")]
    assert embed.batches == [["alone"]]


async def test_callers_arriving_during_a_batch_form_the_next_one() -> None:
    embed = Embedder(delay=0.05)
    call = Calls(EmbeddingBatcher(embed, max_batch=8, max_wait_ms=0))
    async with anyio.create_task_group() as tg:
        tg.start_soon(call, "first")
        await anyio.sleep(0.01)  # the first batch is now running
        for text in ("second", "third"):
            tg.start_soon(call, text)
    assert call == {t: [vector(t)] for t in ("first", "second", "third")}
    assert embed.batches == [["first"], ["second", "third"]]


async def test_a_cancelled_leader_still_serves_the_callers_it_collected() -> None:
    embed = Embedder(delay=0.05)
    call = Calls(EmbeddingBatcher(embed, max_batch=8, max_wait_ms=20))
    async with anyio.create_task_group() as tg:
        async with anyio.create_task_group() as leader_group:
            leader_group.start_soon(call, "leader")
            await anyio.sleep(0)  # the leader now waits for its batch to fill
            tg.start_soon(call, "follower")
            await anyio.sleep(0)
            leader_group.cancel_scope.cancel()
    assert "leader" not in call  # its caller went away...
    assert call["follower"] == [vector("follower")]  # ...but the batch it led still ran
    assert embed.batches == [["leader", "follower"]]
