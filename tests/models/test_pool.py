"""Pools over the deterministic fake backend: slots, queue, strategies, health, life cycle."""

from __future__ import annotations

import gc
from collections import Counter
from dataclasses import dataclass
from typing import Any

import anyio
import pytest

from smmf_flow.errors import (
    BackendConnectionError,
    BackendError,
    BackendTimeout,
    ConfigError,
    ContextWindowExceeded,
    InvalidOutput,
    ModelLoadError,
    PoolBusy,
    PoolStopped,
    WorkerUnavailable,
)
from smmf_flow.models import ChatRequest, ModelConfig, Pool, PoolEvent
from smmf_flow.models.strategies import (
    LatencyEwma,
    LeastBusy,
    RoundRobin,
    Weighted,
    make_strategy,
)
from smmf_flow.scheduler.workers import PoolEmbeddingWorker

from .fakes import PROVIDER, FakeBackend

pytestmark = pytest.mark.anyio
REQUEST = ChatRequest.of("one two three")


def make_pool(events: list[PoolEvent] | None = None, **settings: Any) -> Pool:
    config = ModelConfig(name=settings.pop("name", "m"), provider=PROVIDER, **settings)
    return Pool(config, on_event=events.append if events is not None else None)


def backends(pool: Pool) -> list[FakeBackend]:
    return [i.backend for i in pool.instances]  # type: ignore[misc]


# --- strategies: pure choices --------------------------------------------------------


@dataclass
class C:
    index: int
    in_flight: int = 0
    assigned: int = 0
    latency_ewma: float | None = None
    weight: float = 1.0
    queued: int = 0


def test_round_robin_cycles_and_skips_unavailable() -> None:
    rr, all3 = RoundRobin(), [C(0), C(1), C(2)]
    assert [rr.choose(all3).index for _ in range(4)] == [0, 1, 2, 0]
    assert rr.choose([all3[0], all3[2]]).index == 2  # 1 is busy: it loses its turn
    assert rr.choose(all3).index == 0


def test_least_busy_prefers_fewest_in_flight_then_fewest_assigned() -> None:
    lb = LeastBusy()
    assert lb.choose([C(0, in_flight=2), C(1, in_flight=1), C(2, in_flight=3)]).index == 1
    assert lb.choose([C(0, 1, assigned=9), C(1, 1, assigned=4), C(2, 2)]).index == 1


def test_latency_ewma_measures_everyone_then_prefers_the_fastest() -> None:
    le = LatencyEwma()
    assert le.choose([C(0, latency_ewma=0.1), C(1, latency_ewma=None)]).index == 1
    fast, slow = C(0, latency_ewma=0.1), C(1, latency_ewma=0.25)
    assert le.choose([fast, slow]).index == 0
    fast.in_flight = 3  # 0.1 * 4 > 0.25 * 1
    assert le.choose([fast, slow]).index == 1


def test_weighted_spreads_in_proportion_smoothly() -> None:
    w = Weighted()
    heavy, light = C(0, weight=3), C(1, weight=1)
    picks = [w.choose([heavy, light]).index for _ in range(8)]
    assert picks == [0, 0, 1, 0, 0, 0, 1, 0]
    assert w.choose([light]).index == 1


def test_unknown_strategy_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"unknown strategy 'nope' .*round_robin"):
        make_strategy("nope")


@pytest.mark.parametrize(
    ("strategy", "weights", "expected"),
    [
        ("round_robin", None, ["m#0", "m#1", "m#2", "m#0", "m#1", "m#2"]),
        ("least_busy", None, ["m#0", "m#1", "m#2", "m#0", "m#1", "m#2"]),
        ("weighted", [4, 1, 1], ["m#0", "m#0", "m#1", "m#0", "m#2", "m#0"]),
    ],
)
async def test_pool_routes_sequential_calls_by_strategy(
    strategy: str, weights: list[float] | None, expected: list[str]
) -> None:
    pool = make_pool(instances=3, strategy=strategy, weights=weights)
    got = [(await pool.chat(REQUEST)).instance for _ in range(6)]
    assert got == expected
    await pool.aclose()


async def test_latency_strategy_follows_the_faster_instance() -> None:
    pool = make_pool(instances=2, strategy="latency_ewma")
    await pool.start()
    slow, fast = backends(pool)
    slow.delay, fast.delay = 0.03, 0.0
    got = Counter([(await pool.chat(REQUEST)).instance for _ in range(10)])
    assert got["m#1"] >= 9  # after one measurement each, the fast one takes everything
    await pool.aclose()


# --- slots and the queue ---------------------------------------------------------------


async def test_concurrency_limit_holds_under_200_concurrent_calls() -> None:
    pool = make_pool(instances=3, concurrency=2, max_queue=200)
    await pool.start()
    for backend in backends(pool):
        backend.delay = 0.002
    results = []

    async def call(i: int) -> None:
        results.append(await pool.chat(ChatRequest.of(f"call {i}")))

    async with anyio.create_task_group() as group:
        for i in range(200):
            group.start_soon(call, i)
    assert len(results) == 200
    assert all(b.max_active <= 2 for b in backends(pool))
    assert sum(b.calls for b in backends(pool)) == 200
    assert all(b.max_active == 2 for b in backends(pool))  # and it was used fully
    stats = pool.stats()
    assert sum(i.done for i in stats.instances) == 200
    assert all(i.in_flight == 0 for i in stats.instances) and stats.waiting == 0
    await pool.aclose()


async def test_full_queue_raises_pool_busy_with_retry_after() -> None:
    pool = make_pool(concurrency=1, max_queue=2)
    await pool.start()
    gate = backends(pool)[0].gate = anyio.Event()
    done: list[str] = []

    async def call() -> None:
        done.append((await pool.chat(REQUEST)).text)

    async with anyio.create_task_group() as group:
        for _ in range(3):  # one runs, two wait
            group.start_soon(call)
        await anyio.wait_all_tasks_blocked()
        assert pool.stats().waiting == 2
        with pytest.raises(
            PoolBusy,
            match=r"model 'm' is busy: all 1 slots in use and 2 "
            r"callers waiting \(max_queue = 2\)",
        ) as info:
            await pool.chat(REQUEST)
        assert info.value.retry_after > 0
        gate.set()
    assert len(done) == 3
    await pool.aclose()


@pytest.mark.parametrize(("delay", "low", "high"), [(None, 1.0, 1.0), (0.05, 0.04, 0.5)])
async def test_no_queue_means_busy_at_once_and_retry_after_follows_latency(
    delay: float | None, low: float, high: float
) -> None:
    pool = make_pool(concurrency=1, max_queue=0)
    await pool.start()
    if delay is not None:  # one timed call: retry_after comes from its latency
        backends(pool)[0].delay = delay
        await pool.chat(REQUEST)
    gate = backends(pool)[0].gate = anyio.Event()
    async with anyio.create_task_group() as group:
        group.start_soon(pool.chat, REQUEST)
        await anyio.wait_all_tasks_blocked()
        with pytest.raises(PoolBusy) as info:
            await pool.chat(REQUEST)
        assert low <= info.value.retry_after <= high
        gate.set()
    await pool.aclose()


async def test_cancelled_waiter_leaves_no_slot_behind() -> None:
    pool = make_pool(concurrency=1, max_queue=5)
    await pool.start()
    gate = backends(pool)[0].gate = anyio.Event()
    async with anyio.create_task_group() as group:
        group.start_soon(pool.chat, REQUEST)
        await anyio.wait_all_tasks_blocked()
        with anyio.move_on_after(0.01):
            await pool.chat(REQUEST)  # waits, then is cancelled
        assert pool.stats().waiting == 0
        gate.set()
    assert (await pool.chat(REQUEST)).text == "m#0: one two three"
    assert pool.instances[0].in_flight == 0
    await pool.aclose()


# --- streams ---------------------------------------------------------------------------


async def test_stream_chunks_name_model_and_instance() -> None:
    pool = make_pool(name="s")
    chunks = [c async for c in pool.stream_chat(REQUEST)]
    assert "".join(c.text for c in chunks) == "one two three"
    assert {(c.model, c.instance) for c in chunks} == {("s", "s#0")}
    assert chunks[-1].finish_reason == "stop"
    stats = pool.stats().instances[0]
    assert stats.done == 1 and stats.in_flight == 0 and stats.tokens_per_s
    await pool.aclose()


async def test_stream_holds_its_slot_until_it_ends() -> None:
    pool = make_pool(concurrency=1, max_queue=0)
    stream = pool.stream_chat(REQUEST)
    await stream.__anext__()
    with pytest.raises(PoolBusy):
        await pool.chat(REQUEST)
    async for _ in stream:
        pass
    assert (await pool.chat(REQUEST)).text.endswith("one two three")
    await pool.aclose()


async def test_stream_closed_early_releases_its_slot() -> None:
    pool = make_pool(concurrency=1, max_queue=0)
    async with pool.stream_chat(REQUEST) as stream:
        async for _ in stream:
            break
    assert pool.instances[0].in_flight == 0
    assert backends(pool)[0].streams_closed == 1
    assert (await pool.chat(REQUEST)).instance == "m#0"
    await pool.aclose()


async def test_stream_cancelled_mid_way_releases_its_slot() -> None:
    pool = make_pool(concurrency=1, max_queue=0)
    await pool.start()
    backends(pool)[0].gate = anyio.Event()  # the stream blocks after its first word
    got: list[str] = []

    async def consume() -> None:
        async for chunk in pool.stream_chat(REQUEST):
            got.append(chunk.text)

    with anyio.move_on_after(0.05):
        await consume()
    assert got == ["one"]
    assert pool.instances[0].in_flight == 0
    assert backends(pool)[0].streams_closed == 1
    stats = pool.stats().instances[0]
    assert stats.failed == 0 and stats.consecutive_failures == 0
    await pool.aclose()


async def test_stream_dropped_without_close_releases_its_slot() -> None:
    pool = make_pool(concurrency=1, max_queue=0)
    stream = pool.stream_chat(REQUEST)
    await stream.__anext__()
    assert pool.instances[0].in_flight == 1
    del stream
    gc.collect()
    assert pool.instances[0].in_flight == 0
    await pool.aclose()


async def test_stream_failure_is_typed_and_counted() -> None:
    pool = make_pool(failure_threshold=1)
    await pool.start()
    backends(pool)[0].fail_with = BackendConnectionError("connection refused")
    with pytest.raises(BackendConnectionError, match="connection refused") as info:
        async for _ in pool.stream_chat(REQUEST):
            pass
    assert info.value.model == "m" and info.value.instance == "m#0"
    assert pool.instances[0].in_flight == 0
    assert pool.in_cooldown
    await pool.aclose()


# --- health: circuit breaker -----------------------------------------------------------


async def test_cooldown_after_failures_then_recovery_after_reprobe() -> None:
    events: list[PoolEvent] = []
    pool = make_pool(events, failure_threshold=2, cooldown_s=0.05)
    await pool.start()
    backend = backends(pool)[0]
    backend.fail_with = BackendTimeout("no answer in 1s")
    for _ in range(2):
        with pytest.raises(BackendTimeout):
            await pool.chat(REQUEST)
    assert pool.in_cooldown and pool.status == "cooling down"
    assert pool.stats().instances[0].state == "unhealthy"
    with pytest.raises(
        WorkerUnavailable,
        match=r"model 'm': no healthy instance, all 1 are "
        r"cooling down \(last error: no answer in "
        r"1s\); next re-probe in 0\.0\ds",
    ):
        await pool.chat(REQUEST)

    backend.fail_with = None
    backend.unhealthy = True  # still down: the re-probe fails and the cooldown restarts
    await anyio.sleep(0.06)
    with pytest.raises(WorkerUnavailable):
        await pool.chat(REQUEST)
    assert [e.kind for e in events if e.kind != "loading"][-2:] == ["unhealthy", "probe_failed"]

    backend.unhealthy = False
    await anyio.sleep(0.06)
    assert (await pool.chat(REQUEST)).instance == "m#0"
    assert not pool.in_cooldown and pool.status == "ready"
    assert events[-1].kind == "recovered"
    await pool.aclose()


@pytest.mark.parametrize(
    "error",
    [
        ContextWindowExceeded("prompt too long"),
        InvalidOutput("not JSON"),
        BackendError("cannot embed"),
    ],
)
async def test_request_errors_do_not_trip_the_breaker(error: BackendError) -> None:
    pool = make_pool(failure_threshold=1)
    await pool.start()
    backends(pool)[0].fail_with = error
    for _ in range(3):
        with pytest.raises(type(error)):
            await pool.chat(REQUEST)
    stats = pool.stats().instances[0]
    assert stats.state == "healthy" and stats.failed == 3 and stats.consecutive_failures == 0
    await pool.aclose()


async def test_unexpected_exception_is_wrapped_and_counts() -> None:
    pool = make_pool(failure_threshold=1)
    await pool.start()
    backends(pool)[0].fail_with = RuntimeError("engine crashed")
    with pytest.raises(
        BackendError,
        match=r"model 'm' instance 'm#0' failed: RuntimeError: "
        r"engine crashed",
    ) as info:
        await pool.chat(REQUEST)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert pool.in_cooldown
    await pool.aclose()


async def test_an_unhealthy_instance_is_skipped_while_others_serve() -> None:
    pool = make_pool(instances=2, failure_threshold=1, cooldown_s=60)
    await pool.start()
    backends(pool)[0].fail_with = BackendConnectionError("refused")
    with pytest.raises(BackendConnectionError):
        await pool.chat(REQUEST)
    assert pool.status == "degraded" and not pool.in_cooldown
    assert {(await pool.chat(REQUEST)).instance for _ in range(4)} == {"m#1"}
    await pool.aclose()


async def test_waiters_fail_fast_when_the_last_instance_trips() -> None:
    pool = make_pool(concurrency=1, max_queue=5, failure_threshold=1, cooldown_s=60)
    await pool.start()
    backend = backends(pool)[0]
    backend.gate = anyio.Event()
    backend.fail_with = BackendConnectionError("refused")
    errors: list[type[Exception]] = []

    async def call() -> None:
        try:
            await pool.chat(REQUEST)
        except Exception as exc:
            errors.append(type(exc))

    async with anyio.create_task_group() as group:
        for _ in range(3):
            group.start_soon(call)
        await anyio.wait_all_tasks_blocked()
        backend.gate.set()
    assert sorted(e.__name__ for e in errors) == [
        "BackendConnectionError",
        "WorkerUnavailable",
        "WorkerUnavailable",
    ]
    await pool.aclose()


async def test_check_health_marks_a_dead_instance() -> None:
    pool = make_pool(instances=2)
    await pool.start()
    backends(pool)[1].unhealthy = True
    await pool.check_health()
    assert [i.state for i in pool.stats().instances] == ["healthy", "unhealthy"]
    await pool.aclose()


# --- loading and the life cycle ----------------------------------------------------------


async def test_lazy_load_happens_once_for_many_first_callers(
    fake_backend: type[FakeBackend],
) -> None:
    events: list[PoolEvent] = []
    pool = make_pool(events, instances=2, concurrency=4)
    assert pool.status == "not loaded" and fake_backend.loads == []
    async with anyio.create_task_group() as group:
        for _ in range(50):
            group.start_soon(pool.chat, REQUEST)
    assert sorted(fake_backend.loads) == ["m#0", "m#1"]
    kinds = [(e.kind, e.instance) for e in events]
    assert sorted(kinds) == [
        ("loaded", "m#0"),
        ("loaded", "m#1"),
        ("loading", "m#0"),
        ("loading", "m#1"),
    ]
    loaded = [e for e in events if e.kind == "loaded"]
    assert all(e.seconds is not None and "loaded model 'm' instance" in e.message for e in loaded)
    await pool.aclose()


async def test_failed_load_raises_then_reloads_after_cooldown(
    fake_backend: type[FakeBackend],
) -> None:
    fake_backend.load_errors["m#0"] = FileNotFoundError("weights.gguf")
    pool = make_pool(cooldown_s=0.05)
    with pytest.raises(
        ModelLoadError,
        match=r"model 'm' instance 'm#0' could not load: "
        r"FileNotFoundError: weights\.gguf",
    ):
        await pool.chat(REQUEST)
    with pytest.raises(WorkerUnavailable, match="could not load"):
        await pool.chat(REQUEST)
    del fake_backend.load_errors["m#0"]
    await anyio.sleep(0.06)
    assert (await pool.chat(REQUEST)).instance == "m#0"
    assert fake_backend.loads == ["m#0", "m#0"]
    await pool.aclose()


async def test_stop_start_and_restart(fake_backend: type[FakeBackend]) -> None:
    events: list[PoolEvent] = []
    pool = make_pool(events, instances=2)
    await pool.start()
    first = backends(pool)
    await pool.chat(REQUEST)

    await pool.stop()
    assert pool.status == "stopped" and all(b.closed for b in first)
    with pytest.raises(PoolStopped, match="model 'm' is stopped; start it first"):
        await pool.chat(REQUEST)

    await pool.start()
    assert (await pool.chat(REQUEST)).text.endswith("one two three")

    await pool.restart()
    second = backends(pool)
    assert not any(b.closed for b in second)
    assert not set(map(id, second)) & set(map(id, first))
    assert len(fake_backend.loads) == 6
    assert pool.status == "ready"
    assert [e.kind for e in events].count("stopped") == 3  # the pool, then each instance

    await pool.aclose()
    with pytest.raises(PoolStopped, match="closed"):
        await pool.start()


async def test_stop_waits_for_calls_in_flight_and_fails_waiters() -> None:
    pool = make_pool(concurrency=1, max_queue=5)
    await pool.start()
    backend = backends(pool)[0]
    backend.gate = anyio.Event()
    outcome: list[str] = []

    async def call() -> None:
        try:
            outcome.append((await pool.chat(REQUEST)).instance)
        except PoolStopped as exc:
            outcome.append(str(exc))

    async with anyio.create_task_group() as group:
        group.start_soon(call)
        group.start_soon(call)
        await anyio.wait_all_tasks_blocked()
        group.start_soon(pool.stop)
        await anyio.wait_all_tasks_blocked()
        assert not backend.closed  # the call in flight is still running
        backend.gate.set()
    assert sorted(outcome) == ["m#0", "model 'm' was stopped while this call waited"]
    assert backend.closed
    await pool.aclose()


async def test_embed_counts_texts_and_stats_snapshot() -> None:
    pool = make_pool(name="e")
    assert await pool.embed(["ab", "abcd"]) == [[2.0, 1.0], [4.0, 1.0]]
    stats = pool.stats()
    assert stats.model == "e" and stats.provider == PROVIDER and stats.status == "ready"
    only = stats.instances[0]
    assert only.done == 1 and only.latency_ewma_s is not None and only.tokens_per_s
    assert pool.count_tokens("a b c") == 3
    assert pool.capabilities.embed
    await pool.aclose()


# --- which weights ----------------------------------------------------------------------


async def test_a_pool_and_its_embedding_worker_name_the_weights_without_loading() -> None:
    """What a vector store records beside its vectors: the backend's fingerprint, the
    same for every instance of one config, asked for through public methods."""
    pool = make_pool(instances=2, path="/models/m.gguf")
    first, second = backends(pool)
    assert pool.fingerprint() == first.fingerprint() == second.fingerprint()
    assert "/models/m.gguf" not in pool.fingerprint()  # a digest, not the path
    worker = PoolEmbeddingWorker("m", pool, max_batch=4, max_wait_ms=1)
    assert await worker.fingerprint() == pool.fingerprint()
    assert FakeBackend.loads == []
    assert make_pool(path="/models/other.gguf").fingerprint() != pool.fingerprint()
