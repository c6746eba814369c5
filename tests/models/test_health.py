"""Health over the fake backend: the breaker's cooldown expires, the health loop
re-probes without traffic, interrupted loads, and stalled streams."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from draining import drain

from smmf_flow.errors import (
    BackendConnectionError,
    BackendTimeout,
    ModelLoadError,
    WorkerUnavailable,
)
from smmf_flow.models import ChatChunk, ChatRequest, ModelConfig, ModelRegistry, Pool, PoolEvent
from smmf_flow.models.health import breaks_instance

from .fakes import PROVIDER, FakeBackend

pytestmark = pytest.mark.anyio
REQUEST = ChatRequest.of("one two three")


def make_pool(events: list[PoolEvent] | None = None, **settings: Any) -> Pool:
    config = ModelConfig(name=settings.pop("name", "m"), provider=PROVIDER, **settings)
    return Pool(config, on_event=events.append if events is not None else None)


def backend(pool: Pool, index: int = 0) -> FakeBackend:
    return pool.instances[index].backend  # type: ignore[return-value]


async def trip(pool: Pool) -> None:
    """Make the pool's only instance fail once (``failure_threshold = 1``)."""
    backend(pool).fail_with = BackendConnectionError("refused")
    with pytest.raises(BackendConnectionError):
        await pool.chat(REQUEST)
    backend(pool).fail_with = None
    assert pool.status == "cooling down"


async def wait_for(check: Any, limit: float = 5.0) -> None:
    with anyio.fail_after(limit):
        while not check():
            await anyio.sleep(0.01)


# --- the cooldown expires --------------------------------------------------------------


async def test_a_tripped_pool_is_in_cooldown_only_until_its_reprobe_is_due() -> None:
    pool = make_pool(failure_threshold=1, cooldown_s=0.5, health_interval_s=0)
    await pool.start()
    await trip(pool)
    assert pool.in_cooldown  # a fallback skips it now
    await anyio.sleep(0.55)
    assert not pool.in_cooldown  # due: the next caller probes it (half-open)
    assert pool.status == "cooling down"  # nothing has probed it yet
    assert (await pool.chat(REQUEST)).instance == "m#0"
    assert pool.status == "ready" and not pool.in_cooldown
    await pool.aclose()


async def test_a_due_reprobe_that_fails_starts_the_cooldown_again() -> None:
    pool = make_pool(failure_threshold=1, cooldown_s=0.5, health_interval_s=0)
    await pool.start()
    await trip(pool)
    backend(pool).unhealthy = True
    await anyio.sleep(0.55)
    assert not pool.in_cooldown
    with pytest.raises(WorkerUnavailable, match="no healthy instance"):
        await pool.chat(REQUEST)
    assert pool.in_cooldown
    await pool.aclose()


# --- the health loop ---------------------------------------------------------------------


async def test_the_health_loop_recovers_a_tripped_instance_without_traffic() -> None:
    events: list[PoolEvent] = []
    pool = make_pool(events, failure_threshold=1, cooldown_s=0.05, health_interval_s=0.02)
    await pool.start()
    await trip(pool)
    backend(pool).unhealthy = True  # still down at the first re-probes
    async with anyio.create_task_group() as group:
        group.start_soon(pool.watch_health)
        await wait_for(lambda: any(e.kind == "probe_failed" for e in events))
        assert pool.status == "cooling down"
        backend(pool).unhealthy = False
        await wait_for(lambda: pool.status == "ready")
        group.cancel_scope.cancel()
    assert events[-1].kind == "recovered"
    assert backend(pool).calls == 1  # only the call that tripped it: no traffic since
    await pool.aclose()


async def test_the_health_loop_checks_healthy_idle_instances() -> None:
    pool = make_pool(instances=2, health_interval_s=0.02, cooldown_s=60)
    await pool.start()
    backend(pool, 1).unhealthy = True
    async with anyio.create_task_group() as group:
        group.start_soon(pool.watch_health)
        await wait_for(lambda: pool.status == "degraded")
        group.cancel_scope.cancel()
    assert [i.state for i in pool.stats().instances] == ["healthy", "unhealthy"]
    assert pool.stats().instances[1].last_error == "m#1 is down"
    await pool.aclose()


async def test_the_health_loop_leaves_a_busy_pool_alone() -> None:
    """A check can disturb a call (llama_cpp.server interrupts a stream for any other
    request), so none is made while the pool has a call in flight."""
    pool = make_pool(instances=2, health_interval_s=0.02, cooldown_s=60)
    await pool.start()
    gate = backend(pool, 0).gate = anyio.Event()
    backend(pool, 1).unhealthy = True
    async with anyio.create_task_group() as group:
        group.start_soon(pool.chat, REQUEST)  # held in flight on m#0
        group.start_soon(pool.watch_health)
        await anyio.sleep(0.2)  # ten rounds of the loop
        assert pool.status == "ready"
        gate.set()
        await wait_for(lambda: pool.status == "degraded")  # idle again: checked
        group.cancel_scope.cancel()
    await pool.aclose()


async def test_a_health_interval_of_zero_runs_no_loop_and_a_closed_pool_ends_it() -> None:
    idle = make_pool(health_interval_s=0)
    with anyio.fail_after(1):
        await idle.watch_health()  # returns at once
    pool = make_pool(health_interval_s=0.01)
    await pool.start()
    async with anyio.create_task_group() as group:
        group.start_soon(pool.watch_health)
        await wait_for(lambda: pool.watching)
        await pool.aclose()
        await wait_for(lambda: not pool.watching)  # the loop ended by itself
    assert not pool.watching


async def test_the_registry_watches_every_pool_including_ones_made_later() -> None:
    registry = ModelRegistry.from_dict(
        {
            "models": {
                "llms": [
                    {
                        "name": "a",
                        "provider": PROVIDER,
                        "failure_threshold": 1,
                        "cooldown_s": 0.02,
                        "health_interval_s": 0.02,
                    },
                    {
                        "name": "b",
                        "provider": PROVIDER,
                        "failure_threshold": 1,
                        "cooldown_s": 0.02,
                        "health_interval_s": 0.02,
                    },
                ]
            }
        }
    )
    a = registry.pool("a")
    await a.start()
    async with anyio.create_task_group() as group:
        group.start_soon(registry.watch_health)
        await wait_for(lambda: a.watching)
        b = registry.pool("b")  # made while the registry watches
        await b.start()
        for pool in (a, b):
            await trip(pool)
        await wait_for(lambda: a.status == b.status == "ready")
        group.cancel_scope.cancel()
    await registry.aclose()


# --- interrupted loads ---------------------------------------------------------------------


async def test_a_load_cancelled_during_a_reprobe_leaves_the_instance_unhealthy(
    fake_backend: type[FakeBackend],
) -> None:
    fake_backend.load_errors["m#0"] = FileNotFoundError("weights.gguf")
    pool = make_pool(cooldown_s=0.02, health_interval_s=0)
    with pytest.raises(ModelLoadError):
        await pool.start()
    del fake_backend.load_errors["m#0"]
    fake_backend.load_delay = 10.0  # the re-probe's load hangs ...
    await anyio.sleep(0.03)
    with anyio.move_on_after(0.1):  # ... and its caller gives up
        await pool.chat(REQUEST)
    [instance] = pool.stats().instances
    assert instance.state == "unhealthy" and instance.last_error == "loading was interrupted"
    fake_backend.load_delay = 0.0
    assert not pool.in_cooldown  # an interrupted load may be tried again at once
    assert (await pool.chat(REQUEST)).instance == "m#0"
    assert pool.status == "ready"
    await pool.aclose()


async def test_a_lazy_start_cancelled_by_its_caller_can_start_again(
    fake_backend: type[FakeBackend],
) -> None:
    fake_backend.load_delay = 10.0
    pool = make_pool(health_interval_s=0)
    with anyio.move_on_after(0.05):
        await pool.chat(REQUEST)
    assert [i.state for i in pool.stats().instances] == ["unhealthy"]
    fake_backend.load_delay = 0.0
    assert (await pool.chat(REQUEST)).instance == "m#0"
    await pool.aclose()


# --- streams that stall -----------------------------------------------------------------


async def test_a_stream_that_stalls_past_chunk_timeout_fails_and_counts() -> None:
    events: list[PoolEvent] = []
    pool = make_pool(events, failure_threshold=2, cooldown_s=60)
    await pool.start()
    backend(pool).gate = anyio.Event()  # every stream stalls after its first word
    for attempt in (1, 2):
        got: list[ChatChunk] = []
        with (
            anyio.fail_after(5),
            pytest.raises(BackendTimeout, match=r"model 'm' sent no chunk for 0\.2s") as info,
        ):
            await drain(pool.stream_chat(REQUEST, chunk_timeout=0.2), into=got)
        assert [chunk.text for chunk in got] == ["one"]
        assert info.value.instance == "m#0" and breaks_instance(info.value)
        [stats] = pool.stats().instances
        assert stats.in_flight == 0 and stats.failed == attempt
    assert backend(pool).streams_closed == 2  # the backend's stream was closed each time
    assert pool.status == "cooling down"  # two stalls in a row tripped the breaker
    assert [e.kind for e in events][-1] == "unhealthy"
    await pool.aclose()


async def test_chunk_timeout_does_not_count_the_wait_for_a_slot() -> None:
    pool = make_pool(concurrency=1, max_queue=1)
    await pool.start()
    gate = backend(pool).gate = anyio.Event()
    async with anyio.create_task_group() as group:
        group.start_soon(pool.chat, REQUEST)  # holds the only slot until the gate opens
        await anyio.wait_all_tasks_blocked()

        async def open_later() -> None:
            await anyio.sleep(0.3)
            gate.set()

        group.start_soon(open_later)
        chunks = [c async for c in pool.stream_chat(REQUEST, chunk_timeout=0.2)]
    assert "".join(c.text for c in chunks) == "one two three"
    await pool.aclose()
