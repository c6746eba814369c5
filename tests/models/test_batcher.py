"""``EmbeddingBatcher``: concurrent embedding calls coalesce into backend batches, each
caller gets its own vectors, and one caller's bad input fails only that caller.

The backend here is a deterministic function (the logic needs no model);
``tests/operators/test_embedding.py`` checks the same on MiniLM.
"""

from __future__ import annotations

import threading

import anyio
import pytest

from smmf_flow.errors import BackendError, PoolBusy
from smmf_flow.models.batcher import EmbeddingBatcher, counting_tokens

pytestmark = pytest.mark.anyio


class Embedder:
    """Embeds ``text`` as ``[len(text), sum of code points]``; fails on 'BAD'."""

    def __init__(self, delay: float = 0.0) -> None:
        self.batches: list[list[str]] = []
        self.delay = delay
        self.gate: anyio.Event | None = None  # when set, every batch waits for it
        self.active = self.max_active = 0

    async def __call__(self, texts: list[str]) -> list[list[float]]:
        self.batches.append(list(texts))
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            if self.gate is not None:
                await self.gate.wait()
            await anyio.sleep(self.delay)
        finally:
            self.active -= 1
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
    assert embed.batches[1:] == [["good one"], ["BAD"], ["good two", "good three"], ["good four"]]


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


@pytest.mark.parametrize("slots", [1, 3])
async def test_up_to_max_concurrent_batches_run_at_once(slots: int) -> None:
    embed = Embedder(delay=0.02)
    batcher = EmbeddingBatcher(embed, max_batch=4, max_wait_ms=0, max_concurrent=slots)
    calls = [[f"text {i}"] for i in range(24)]
    assert await gather(batcher, calls) == [[vector(c[0])] for c in calls]
    assert embed.max_active == slots  # a pool of `slots` instances is kept busy
    assert batcher.texts == 24 and all(len(b) <= 4 for b in embed.batches)


async def test_callers_arriving_while_the_last_batch_runs_are_not_stranded() -> None:
    embed = Embedder(delay=0.05)
    call = Calls(EmbeddingBatcher(embed, max_batch=8, max_wait_ms=0, max_concurrent=2))
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(call, "first")
            await anyio.sleep(0.01)  # the queue is empty, one batch is in flight
            tg.start_soon(call, "late")
    assert call == {"first": [vector("first")], "late": [vector("late")]}
    assert embed.max_active == 2  # the late one did not wait for the first batch


async def test_the_first_caller_returns_with_its_batch_while_others_keep_coming() -> None:
    embed = Embedder(delay=0.02)
    batcher = EmbeddingBatcher(embed, max_batch=2, max_wait_ms=0)
    started: list[int] = []
    seen_when_done: dict[int, int] = {}

    async def call(i: int) -> None:
        await batcher.embed([str(i)])
        seen_when_done[i] = len(started)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for i in range(30):  # a steady stream: the queue is never empty for long
                started.append(i)
                tg.start_soon(call, i)
                await anyio.sleep(0.01)
    assert len(seen_when_done) == 30
    assert seen_when_done[0] < 10  # not held back until the stream of callers ends


async def test_a_collector_cancelled_while_waiting_passes_its_role_on() -> None:
    embed = Embedder()
    call = Calls(EmbeddingBatcher(embed, max_batch=8, max_wait_ms=50))
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg, anyio.create_task_group() as first:
            first.start_soon(call, "gives up")
            await anyio.sleep(0)  # it collects: waits for its batch to fill
            tg.start_soon(call, "stays")
            await anyio.sleep(0)
            first.cancel_scope.cancel()
    assert call == {"stays": [vector("stays")]}
    assert embed.batches == [["stays"]]  # the one who left is not embedded


async def test_a_batch_once_sent_serves_everyone_in_it_even_if_its_sender_goes() -> None:
    embed = Embedder(delay=0.05)
    call = Calls(EmbeddingBatcher(embed, max_batch=2, max_wait_ms=50))
    async with anyio.create_task_group() as tg, anyio.create_task_group() as sender:
        sender.start_soon(call, "sender")
        await anyio.sleep(0)
        tg.start_soon(call, "passenger")  # fills the batch: it is sent at once
        await anyio.sleep(0.02)  # the batch is at the backend now
        sender.cancel_scope.cancel()
    assert call["passenger"] == [vector("passenger")]  # the batch came back all the same
    assert embed.batches == [["sender", "passenger"]]


# --- the queue bound -------------------------------------------------------------------


async def test_a_full_queue_refuses_with_pool_busy_and_loses_no_queued_caller() -> None:
    embedder = Embedder()
    embedder.gate = anyio.Event()
    batcher = EmbeddingBatcher(embedder, max_batch=2, max_wait_ms=0, max_queue=1, model="mini")
    calls = Calls(batcher)
    async with anyio.create_task_group() as group:
        group.start_soon(calls, "a")  # its batch is sent and held at the gate
        await anyio.wait_all_tasks_blocked()
        group.start_soon(calls, "b")  # forms the next batch, waits for the slot
        group.start_soon(calls, "c")  # waits behind it: max_queue = 1
        await anyio.wait_all_tasks_blocked()
        with pytest.raises(
            PoolBusy,
            match=r"embedding model 'mini' is busy: 2 callers are "
            r"waiting for a batch \(max_queue = 1\); retry "
            r"later or raise max_queue",
        ) as info:
            await batcher.embed(["d", "e", "f"])  # a caller counts once, however long
        assert info.value.retry_after == 2.0  # 2 batches ahead, ~1 s each before any timing
        assert info.value.model == "mini"
        embedder.gate.set()
    assert calls == {t: [vector(t)] for t in "abc"}
    assert embedder.batches == [["a"], ["b", "c"]]
    assert await batcher.embed(["d"]) == [vector("d")]  # room again


async def test_retry_after_follows_how_long_batches_take() -> None:
    embedder = Embedder(delay=0.05)
    batcher = EmbeddingBatcher(embedder, max_batch=1, max_wait_ms=0, max_queue=0)
    await batcher.embed(["timed"])
    embedder.gate = anyio.Event()
    async with anyio.create_task_group() as group:
        group.start_soon(batcher.embed, ["a"])
        await anyio.wait_all_tasks_blocked()
        group.start_soon(batcher.embed, ["b"])  # no queue: only the next batch's caller
        await anyio.wait_all_tasks_blocked()
        with pytest.raises(PoolBusy) as info:
            await batcher.embed(["c"])
        assert 0.05 <= info.value.retry_after < 1.0  # about 2 batches of ~0.05 s
        embedder.gate.set()


async def test_without_max_queue_the_queue_is_unbounded() -> None:
    batcher = EmbeddingBatcher(Embedder(delay=0.01), max_batch=4, max_wait_ms=1)
    results = await gather(batcher, [[str(i)] for i in range(100)])
    assert results == [[vector(str(i))] for i in range(100)]


# --- token counts for usage: per batch, for the callers that ask ---------------------------


class Counter:
    """Counts a text's tokens as its words, noting the thread and every text counted."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.threads: set[int] = set()

    def __call__(self, text: str) -> int:
        if text == "UNCOUNTABLE":
            raise ValueError("cannot count 'UNCOUNTABLE'")
        self.texts.append(text)
        self.threads.add(threading.get_ident())
        return len(text.split())


async def test_callers_counting_tokens_get_their_own_count_from_their_batch() -> None:
    embed, count = Embedder(), Counter()
    batcher = EmbeddingBatcher(embed, max_batch=8, max_wait_ms=20, count=count)
    counts: dict[int, int] = {}

    async def counting(i: int, texts: list[str]) -> None:
        with counting_tokens() as tokens:
            assert await batcher.embed(texts) == [vector(t) for t in texts]
        counts[i] = tokens[0]

    async with anyio.create_task_group() as tg:
        tg.start_soon(counting, 0, ["one two", "three"])
        tg.start_soon(counting, 1, ["four five six"])
        tg.start_soon(batcher.embed, ["not counted at all"])  # a flow's call: no usage
    assert counts == {0: 3, 1: 3}
    assert len(embed.batches) == 1  # one batch for all three callers
    assert sorted(count.texts) == ["four five six", "one two", "three"]
    assert count.threads and threading.get_ident() not in count.threads  # off the loop


async def test_a_batch_nobody_counts_is_not_counted() -> None:
    embed, count = Embedder(), Counter()
    batcher = EmbeddingBatcher(embed, max_batch=8, max_wait_ms=0, count=count)
    assert await batcher.embed(["a b c"]) == [vector("a b c")]
    with counting_tokens() as tokens:
        await EmbeddingBatcher(embed, max_batch=8, max_wait_ms=0).embed(["no count here"])
    assert count.texts == [] and tokens[0] == 0


async def test_a_failure_while_counting_keeps_its_type_and_fails_only_its_caller() -> None:
    """The backend's error comes through as it is (not wrapped in an exception group),
    and a batch that fails is split as for any other failure."""
    embed, count = Embedder(), Counter()
    batcher = EmbeddingBatcher(embed, max_batch=8, max_wait_ms=20, count=count)

    async def counted(texts: list[str]) -> object:
        with counting_tokens() as tokens:
            try:
                await batcher.embed(texts)
            except Exception as error:
                return error
        return tokens[0]

    results: list[object] = [None] * 3

    async def one(i: int, texts: list[str]) -> None:
        results[i] = await counted(texts)

    async with anyio.create_task_group() as tg:
        tg.start_soon(one, 0, ["fine words"])
        tg.start_soon(one, 1, ["BAD"])
        tg.start_soon(one, 2, ["UNCOUNTABLE"])
    assert results[0] == 2
    assert isinstance(results[1], BackendError) and "cannot embed 'BAD'" in str(results[1])
    assert isinstance(results[2], ValueError) and "UNCOUNTABLE" in str(results[2])
