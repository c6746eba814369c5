"""Run-time control of a pool's instances on the fake backend: stop, start and
restart one instance, scale up and down, a rolling restart. What is checked is
the contract the admin endpoints rely on: a call in flight on an instance taken
out of service finishes there, no new call reaches it, scaling down removes the
instances that serve least, and counters and health checks keep working."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from smmf_flow.errors import ModelLoadError, UsageError, WorkerUnavailable
from smmf_flow.models import ChatRequest, ModelConfig, Pool, PoolEvent
from smmf_flow.models.registry import ModelRegistry

from .fakes import PROVIDER, FakeBackend

pytestmark = pytest.mark.anyio
REQUEST = ChatRequest.of("one two three")


def make_pool(events: list[PoolEvent] | None = None, **settings: Any) -> Pool:
    config = ModelConfig(name="m", provider=PROVIDER, **settings)
    return Pool(config, on_event=events.append if events is not None else None)


def fake(pool: Pool, index: int) -> FakeBackend:
    backend = pool.instance(index).backend
    assert isinstance(backend, FakeBackend)
    return backend


def states(pool: Pool) -> dict[str, str]:
    return {i.id: i.state for i in pool.stats().instances}


async def test_a_stopped_instance_finishes_its_call_and_gets_no_new_one() -> None:
    events: list[PoolEvent] = []
    pool = make_pool(events, instances=2, concurrency=4)
    await pool.start()
    busy = fake(pool, 0)
    busy.gate = anyio.Event()
    answers: list[str] = []

    async def call() -> None:
        answers.append((await pool.chat(REQUEST)).instance or "")

    async with anyio.create_task_group() as group:
        group.start_soon(call)  # round robin: the first call goes to m#0 and waits there
        await anyio.wait_all_tasks_blocked()
        group.start_soon(pool.stop_instance, 0)
        await anyio.wait_all_tasks_blocked()
        assert states(pool) == {"m#0": "draining", "m#1": "healthy"}
        assert not busy.closed  # its call is still running
        for _ in range(3):  # meanwhile every new call goes to the other instance
            assert (await pool.chat(REQUEST)).instance == "m#1"
        busy.gate.set()
    assert answers == ["m#0"]  # the call in flight finished where it was
    assert busy.closed and states(pool) == {"m#0": "stopped", "m#1": "healthy"}
    assert pool.status == "degraded"
    assert "stopped model 'm' instance 0" in [e.message for e in events]

    await pool.start_instance(0)
    assert not fake(pool, 0).closed and fake(pool, 0) is not busy  # a fresh backend
    assert {(await pool.chat(REQUEST)).instance for _ in range(4)} == {"m#0", "m#1"}
    assert pool.status == "ready"
    await pool.aclose()


async def test_a_stream_in_flight_on_a_stopped_instance_ends_whole() -> None:
    pool = make_pool()
    await pool.start()
    backend = fake(pool, 0)
    backend.gate = anyio.Event()
    text: list[str] = []

    async def consume() -> None:
        async with pool.stream_chat(ChatRequest.of("alpha beta gamma delta")) as stream:
            async for chunk in stream:
                text.append(chunk.text)

    async with anyio.create_task_group() as group:
        group.start_soon(consume)
        await anyio.wait_all_tasks_blocked()  # the first chunk is out; the rest waits
        assert text == ["alpha"]
        group.start_soon(pool.stop_instance, 0)
        await anyio.wait_all_tasks_blocked()
        with pytest.raises(WorkerUnavailable, match=r"1 of 1 stopped by an operator"):
            await pool.chat(REQUEST)  # nothing else serves: a fallback would move on
        backend.gate.set()
    assert "".join(text) == "alpha beta gamma delta"
    assert pool.status == "stopped" and pool.in_cooldown  # fallbacks skip it
    await pool.aclose()


async def test_waiters_fail_when_the_last_serving_instance_is_stopped() -> None:
    pool = make_pool(concurrency=1, max_queue=4)
    await pool.start()
    backend = fake(pool, 0)
    backend.gate = anyio.Event()
    outcome: list[str] = []

    async def call() -> None:
        try:
            outcome.append((await pool.chat(REQUEST)).instance or "")
        except WorkerUnavailable as exc:
            outcome.append(type(exc).__name__)

    async with anyio.create_task_group() as group:
        group.start_soon(call)
        group.start_soon(call)  # waits in the queue for m#0's slot
        await anyio.wait_all_tasks_blocked()
        group.start_soon(pool.stop_instance, 0)
        await anyio.wait_all_tasks_blocked()
        backend.gate.set()
    assert sorted(outcome) == ["WorkerUnavailable", "m#0"]
    await pool.aclose()


async def test_stopping_waits_no_longer_than_grace() -> None:
    pool = make_pool()
    await pool.start()
    backend = fake(pool, 0)
    backend.gate = anyio.Event()
    async with anyio.create_task_group() as group:
        group.start_soon(pool.chat, REQUEST)
        await anyio.wait_all_tasks_blocked()
        await pool.stop_instance(0, grace_s=0.05)  # returns though the call still runs
        assert backend.closed and states(pool) == {"m#0": "stopped"}
        backend.gate.set()
    assert pool.stats().instances[0].in_flight == 0  # its slot came back when it ended
    await pool.aclose()


async def test_scale_up_loads_new_instances_that_serve_at_once(
    fake_backend: type[FakeBackend],
) -> None:
    pool = make_pool(strategy="least_busy")
    await pool.start()
    await pool.scale(3)
    assert states(pool) == {"m#0": "healthy", "m#1": "healthy", "m#2": "healthy"}
    assert fake_backend.loads == ["m#0", "m#1", "m#2"]
    served = {(await pool.chat(REQUEST)).instance for _ in range(6)}
    assert served == {"m#0", "m#1", "m#2"}
    assert sum(i.done for i in pool.stats().instances) == 6
    await pool.aclose()


async def test_scale_down_removes_idle_instances_first_and_drains_busy_ones() -> None:
    pool = make_pool(instances=3, concurrency=2)
    await pool.start()
    busy = fake(pool, 0)
    busy.gate = anyio.Event()
    async with anyio.create_task_group() as group:
        group.start_soon(pool.chat, REQUEST)  # round robin: on m#0
        await anyio.wait_all_tasks_blocked()
        removed = [fake(pool, 1), fake(pool, 2)]
        await pool.scale(1)  # m#1 and m#2 are idle: they go, m#0 keeps its call
        assert [i.id for i in pool.instances] == ["m#0"]
        assert all(b.closed for b in removed) and not busy.closed
        busy.gate.set()

    await pool.scale(2)  # the lowest free index comes back
    assert [i.id for i in pool.instances] == ["m#0", "m#1"]
    fake(pool, 0).gate = anyio.Event()
    fake(pool, 1).gate = anyio.Event()
    async with anyio.create_task_group() as group:
        group.start_soon(pool.chat, REQUEST)
        group.start_soon(pool.chat, REQUEST)
        group.start_soon(pool.chat, REQUEST)  # m#0 and m#1 busy; m#0 has one more
        await anyio.wait_all_tasks_blocked()
        in_flight = {i.id: i.in_flight for i in pool.stats().instances}
        leaving = min(in_flight, key=lambda k: (in_flight[k], k))
        group.start_soon(pool.scale, 1)
        await anyio.wait_all_tasks_blocked()
        assert states(pool)[leaving] == "draining"  # the less busy one leaves
        fake(pool, 0).gate.set()
        fake(pool, 1).gate.set()
    assert len(pool.instances) == 1 and pool.instances[0].id != leaving
    assert pool.status == "ready"
    await pool.aclose()


async def test_scale_down_takes_the_unhealthy_instance_first() -> None:
    pool = make_pool(instances=3, cooldown_s=60)
    await pool.start()
    fake(pool, 2).unhealthy = True
    await pool.check_health()  # the health check still trips instances
    assert states(pool)["m#2"] == "unhealthy"
    await pool.scale(2)
    assert [i.id for i in pool.instances] == ["m#0", "m#1"]
    assert pool.status == "ready"
    await pool.aclose()


async def test_rolling_restart_keeps_a_two_instance_model_serving(
    fake_backend: type[FakeBackend],
) -> None:
    pool = make_pool(instances=2)
    await pool.start()
    old = [fake(pool, 0), fake(pool, 1)]
    fake_backend.load_delay = 0.05
    served: list[str] = []
    failed: list[BaseException] = []

    async def traffic(done: anyio.Event) -> None:
        while not done.is_set():
            try:
                served.append((await pool.chat(REQUEST)).instance or "")
            except WorkerUnavailable as exc:
                failed.append(exc)
            await anyio.sleep(0.005)

    done = anyio.Event()
    async with anyio.create_task_group() as group:
        group.start_soon(traffic, done)
        await pool.restart()
        done.set()
    assert not failed and len(served) > 5
    assert all(b.closed for b in old)
    assert not {id(fake(pool, 0)), id(fake(pool, 1))} & set(map(id, old))
    assert pool.status == "ready"
    await pool.aclose()


async def test_a_restart_that_fails_to_load_stops_there(fake_backend: type[FakeBackend]) -> None:
    pool = make_pool(instances=2, cooldown_s=60)
    await pool.start()
    fake_backend.load_errors["m#0"] = RuntimeError("weights gone")
    with pytest.raises(ModelLoadError, match="m#0"):
        await pool.restart()
    assert states(pool) == {"m#0": "unhealthy", "m#1": "healthy"}  # m#1 was left alone
    assert (await pool.chat(REQUEST)).instance == "m#1"
    await pool.aclose()


async def test_scaling_an_idle_pool_changes_what_loads_on_first_use(
    fake_backend: type[FakeBackend],
) -> None:
    pool = make_pool()
    await pool.scale(2)
    assert fake_backend.loads == [] and pool.status == "not loaded"
    await pool.chat(REQUEST)
    assert sorted(fake_backend.loads) == ["m#0", "m#1"]
    await pool.aclose()


async def test_bad_requests_are_usage_errors_naming_what_exists() -> None:
    pool = make_pool(instances=2)
    with pytest.raises(UsageError, match=r"model 'm' has no instance 5 \(instances: 0, 1\)"):
        await pool.stop_instance(5)
    with pytest.raises(UsageError, match="cannot scale to 0 instances"):
        await pool.scale(0)
    await pool.aclose()


async def test_the_health_loop_leaves_stopped_instances_alone() -> None:
    pool = make_pool(instances=2, health_interval_s=0.01, cooldown_s=0.01)
    await pool.start()
    await pool.stop_instance(1)
    fake(pool, 1).unhealthy = True
    async with anyio.create_task_group() as group:
        group.start_soon(pool.watch_health)
        await anyio.sleep(0.1)
        group.cancel_scope.cancel()
    assert states(pool) == {"m#0": "healthy", "m#1": "stopped"}  # not probed, not tripped
    await pool.start()  # start() brings back whatever is stopped
    assert states(pool) == {"m#0": "healthy", "m#1": "healthy"}
    await pool.aclose()


async def test_the_registry_lists_the_instances_a_model_runs_now() -> None:
    registry = ModelRegistry.from_dict({"models": {"llms": [{"name": "m", "provider": PROVIDER}]}})
    [row] = registry.list()
    assert (row.instances, row.status) == (1, "not loaded")
    await registry.pool("m").scale(3)
    [row] = registry.list()
    assert (row.instances, row.status) == (3, "not loaded")
    await registry.aclose()
