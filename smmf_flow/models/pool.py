"""A pool: the instances serving one model, and who gets a slot next.

Each instance takes up to ``concurrency`` calls at once. A caller that finds no
free slot waits in a FIFO queue of at most ``max_queue`` callers; beyond that it
gets ``PoolBusy`` with a ``retry_after`` estimated from the latency average. A
freed slot is handed straight to the first waiter, so the limit holds exactly
and no newcomer jumps the queue. Which instance a call goes to is the
``strategy``'s choice among the healthy instances with a free slot (a
``KeyedStrategy`` also gets the call's key, computed once from its request). A call that
outlives one await (a stream, ``chat_stream.py``) holds its slot through the
public pair ``acquire_slot`` / ``release_slot``.

Weights load lazily on the first call (once, however many callers arrive
together), or up front with ``start()``. ``stop()``, ``start()`` and
``restart()`` work at run time; ``aclose()`` ends the pool for good. Health, the
circuit breaker and the health loop (``watch_health``) follow ``health.py``.

Run-time control of single instances (what the server's ``/admin`` endpoints
call): ``stop_instance``, ``start_instance``, ``restart_instance`` and
``scale(count)``. An instance taken out of service is ``draining``: no new call
reaches it, its calls in flight finish (up to ``grace_s``), then its backend is
freed. Scaling down drains the instances that serve least first (stopped or
unhealthy, then idle). ``restart()`` goes one instance at a time, so a model
with several instances keeps serving. These go through the ``Instance``
interface only, so they work the same for any placement.

The hot path does a few attribute updates per call and nothing per streamed
chunk beyond stamping the chunk with the model and instance: the pool must cost
next to nothing next to the engine it wraps.
"""

from __future__ import annotations

import enum
import itertools
import math
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from time import perf_counter
from typing import TypeVar

import anyio

from smmf_flow.errors import (
    ModelLoadError,
    PoolBusy,
    PoolStopped,
    UsageError,
    WorkerUnavailable,
    describe,
)
from smmf_flow.models.backends import Backend, Capabilities
from smmf_flow.models.chat_stream import ChatStream
from smmf_flow.models.config import ModelConfig, ModelKind
from smmf_flow.models.events import EventHook, EventKind, PoolEvent, emit
from smmf_flow.models.health import Breaker, breaks_instance, reraise
from smmf_flow.models.instance import Instance, InstanceState, InstanceStats, backend_factory
from smmf_flow.models.strategies import KeyedStrategy, PrefixKey, make_strategy
from smmf_flow.models.types import ChatRequest, ChatResult

HEALTHY = InstanceState.HEALTHY
DRAINING = InstanceState.DRAINING
STOPPED = InstanceState.STOPPED
DEFAULT_LATENCY_S = 1.0  # retry_after guess before any call has been timed
T = TypeVar("T")


class Phase(enum.StrEnum):
    """The pool's life: idle until first use, then running until stopped or closed."""

    IDLE = "not loaded"
    STARTING = "loading"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class PoolStats:
    """A snapshot of a pool: its status, its queue and each instance's counters."""

    model: str
    provider: str
    status: str
    waiting: int
    instances: list[InstanceStats]


class _Waiter:
    """A queued caller: woken with an instance already reserved for it, or an error.
    ``prefers``: the busy instance a keyed strategy has it wait for (its cache is
    there); later callers may pass it for other instances meanwhile."""

    __slots__ = ("error", "event", "instance", "key", "prefers")

    def __init__(self, key: PrefixKey | None) -> None:
        self.key = key
        self.event = anyio.Event()
        self.instance: Instance | None = None
        self.error: Exception | None = None
        self.prefers: Instance | None = None


class Pool:
    """The instances of one model behind one call interface."""

    def __init__(
        self, config: ModelConfig, *, kind: ModelKind = "llm", on_event: EventHook | None = None
    ) -> None:
        self.config, self.name, self.kind = config, config.name, kind
        self.on_event = on_event
        self._factory = backend_factory(config)
        #: the instances in service or on their way in or out (the list object is
        #: shared with the breaker: changed in place, never replaced)
        self._instances = [self._new_instance(i) for i in range(config.instances)]
        self._single = self._instances[0] if len(self._instances) == 1 else None
        self._strategy = make_strategy(config.strategy, config)
        self._keyed = self._strategy if isinstance(self._strategy, KeyedStrategy) else None
        self._capacity = config.concurrency
        self._waiters: deque[_Waiter] = deque()
        self._phase = Phase.IDLE
        self._lock: anyio.Lock | None = None  # made on first use, inside an event loop
        self._busy = 0
        self._drained: anyio.Event | None = None
        self._drains: dict[Instance, anyio.Event] = {}  # set when that instance is idle
        self._breaker = Breaker(config, self._instances, self._emit, self._dispatch)
        #: whether a health loop (``watch_health``) runs for this pool
        self.watching = False

    # --- calls ---------------------------------------------------------------------

    async def chat(self, request: ChatRequest) -> ChatResult:
        """Answer ``request`` on one instance; the result names the model and instance."""
        instance, result = await self._call(
            lambda backend: backend.chat(request),
            lambda result: result.usage.completion_tokens,
            request,
        )
        result.model, result.instance = self.name, instance.id
        return result

    def stream_chat(
        self, request: ChatRequest, *, chunk_timeout: float | None = None
    ) -> ChatStream:
        """Stream an answer. The slot is taken at the first chunk and held until the
        stream ends, fails, is closed (``aclose``/``async with``) or is cancelled.
        A chunk that takes longer than ``chunk_timeout`` seconds (the wait for a slot
        aside) fails the stream with ``BackendTimeout``, which counts as the
        instance's failure."""
        return ChatStream(self, request, chunk_timeout)

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, in order (tokens/s counts texts for embedding pools)."""
        _, vectors = await self._call(lambda backend: backend.embed(texts), lambda _: len(texts))
        return vectors

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes in this model (a loaded instance's tokenizer if any)."""
        loaded = next((i for i in self._instances if i.loaded), self._instances[0])
        return loaded.backend.count_tokens(text)

    @property
    def capabilities(self) -> Capabilities:
        return self._instances[0].backend.capabilities

    def fingerprint(self) -> str:
        """Which weights this pool serves (``Backend.fingerprint``: the same for every
        instance of one config); needs no load, but may hash the weight files."""
        return self._instances[0].backend.fingerprint()

    # --- life cycle ----------------------------------------------------------------

    async def start(self) -> None:
        """Load every stopped instance (concurrently; on first use, all of them).
        Raises ``ModelLoadError`` if no instance is healthy afterwards; instances
        that fail stay unhealthy and are re-tried after ``cooldown_s``."""
        async with self._start_lock():
            errors = await self._bring_up(
                [i for i in self._instances if i.state is STOPPED], whole=True
            )
        if errors and not any(i.state is HEALTHY for i in self._instances):
            raise errors[0]

    async def stop(self, *, grace_s: float = 30.0) -> None:
        """Refuse new calls, let calls in flight finish (up to ``grace_s``), free the
        backends. Calls made while stopped raise ``PoolStopped``; ``start()`` resumes."""
        async with self._start_lock():
            if self._phase in (Phase.STOPPED, Phase.CLOSED):
                return
            self._phase = Phase.STOPPING
            self._fail_waiters(
                lambda: PoolStopped(
                    f"model '{self.name}' was stopped while this call waited", model=self.name
                )
            )
            with anyio.CancelScope(shield=True):
                if self._busy:
                    self._drained = anyio.Event()
                    with anyio.move_on_after(grace_s):
                        await self._drained.wait()
                for instance in self._instances:
                    try:
                        await instance.aclose()
                    except Exception as exc:  # a failing close must not keep others open
                        self._emit(
                            "stopped", instance, f"closing {instance.id} failed: {describe(exc)}"
                        )
            self._phase = Phase.STOPPED
            self._breaker.next_probe = math.inf
            self._emit("stopped", None, f"stopped model '{self.name}'")

    async def restart(self, *, grace_s: float = 30.0) -> None:
        """Give every instance a fresh backend, one instance at a time (each drained
        first, up to ``grace_s``), so a model with several instances keeps serving; a
        one-instance model is unavailable while it reloads. A pool that is not
        running just starts. Stops at the first instance that fails to load
        (``ModelLoadError``), leaving the rest serving."""
        async with self._start_lock():
            if self._phase is not Phase.RUNNING:
                errors = await self._bring_up(
                    [i for i in self._instances if i.state is STOPPED], whole=True
                )
            else:
                errors = []
                for instance in list(self._instances):
                    await self._retire([instance], grace_s)
                    errors = await self._bring_up([instance])
                    if errors:
                        break
        if errors:
            raise errors[0]

    async def aclose(self) -> None:
        """Stop for good."""
        await self.stop()
        self._phase = Phase.CLOSED

    async def check_health(self) -> None:
        """Run every healthy instance's health check now; one that fails is tripped."""
        await self._breaker.check()

    async def watch_health(self) -> None:
        """The health loop: every ``health_interval_s`` (0: no loop) re-probe the
        instances whose cooldown has passed and, while no call is in flight, check
        the healthy ones, so the pool recovers without traffic. Runs until cancelled
        or the pool is closed."""
        interval = self.config.health_interval_s
        if interval <= 0 or self.watching:
            return
        self.watching = True
        try:
            while self._phase is not Phase.CLOSED:
                await anyio.sleep(interval)
                async with self._start_lock():  # never while it starts or stops
                    if self._phase is Phase.RUNNING:
                        await self._breaker.round()
        finally:
            self.watching = False

    # --- run-time control of instances ------------------------------------------------

    async def stop_instance(self, index: int, *, grace_s: float = 30.0) -> None:
        """Take instance ``index`` out of service (see the module docstring); the
        others keep serving. ``start_instance`` brings it back."""
        async with self._start_lock():
            await self._retire([self.instance(index)], grace_s)

    async def start_instance(self, index: int) -> None:
        """Load instance ``index`` if it is stopped (a fresh backend); the pool runs
        from then on, its other stopped instances staying stopped. Raises
        ``ModelLoadError`` if it fails (it is then re-tried after ``cooldown_s``)."""
        async with self._start_lock():
            instance = self.instance(index)
            errors = await self._bring_up([instance] if instance.state is STOPPED else [])
        if errors:
            raise errors[0]

    async def restart_instance(self, index: int, *, grace_s: float = 30.0) -> None:
        """``stop_instance`` then ``start_instance``, as one step."""
        async with self._start_lock():
            instance = self.instance(index)
            await self._retire([instance], grace_s)
            errors = await self._bring_up([instance])
        if errors:
            raise errors[0]

    async def scale(self, count: int, *, grace_s: float = 30.0) -> None:
        """Run ``count`` instances. New ones take the lowest free indexes and, if
        the pool runs, load now (a failure raises ``ModelLoadError``; the instance
        stays, unhealthy, and is re-tried after ``cooldown_s``). Surplus ones are
        drained and removed, those that serve least first."""
        if count < 1:
            raise UsageError(
                f"model '{self.name}': cannot scale to {count} instances (at least 1; "
                "stop the model to take it out of service)"
            )
        errors: list[Exception] = []
        async with self._start_lock():
            self._refuse_closed()
            have = len(self._instances)
            if count > have:
                used = {i.index for i in self._instances}
                free = (n for n in itertools.count() if n not in used)
                added = [self._new_instance(n) for n in itertools.islice(free, count - have)]
                self._instances.extend(added)
                self._reshape()
                if self._phase is Phase.RUNNING:
                    errors = await self._bring_up(added)
            elif count < have:
                leaving = sorted(self._instances, key=_leave_order)[: have - count]
                await self._retire(leaving, grace_s)
                for instance in leaving:
                    self._instances.remove(instance)
                self._reshape()
                self._breaker.refresh()
        if errors:
            raise errors[0]

    def instance(self, index: int) -> Instance:
        """The instance with index ``index`` (``UsageError`` naming those there are)."""
        for instance in self._instances:
            if instance.index == index:
                return instance
        have = ", ".join(str(i.index) for i in self._instances)
        raise UsageError(f"model '{self.name}' has no instance {index} (instances: {have})")

    # --- state -----------------------------------------------------------------------

    @property
    def status(self) -> str:
        """'not loaded', 'loading', 'ready', 'degraded', 'cooling down', 'stopped', ..."""
        if self._phase is not Phase.RUNNING:
            return str(self._phase)
        healthy = sum(i.state is HEALTHY for i in self._instances)
        if healthy == len(self._instances):
            return "ready"
        if healthy:
            return "degraded"
        if all(i.state in (STOPPED, DRAINING) for i in self._instances):
            return "stopped"  # every instance taken out of service by an operator
        return "cooling down"

    @property
    def in_cooldown(self) -> bool:
        """True when the pool runs, no instance is healthy and no re-probe is due yet
        (a fallback skips it; once a re-probe is due, the next caller makes it)."""
        return (
            self._phase is Phase.RUNNING
            and not self._breaker.probe_due
            and not any(i.state is HEALTHY for i in self._instances)
        )

    @property
    def instances(self) -> list[Instance]:
        return list(self._instances)

    def stats(self) -> PoolStats:
        now = perf_counter()
        return PoolStats(
            model=self.name,
            provider=self.config.provider,
            status=self.status,
            waiting=len(self._waiters),
            instances=[i.stats(now) for i in self._instances],
        )

    # --- slots -----------------------------------------------------------------------

    async def _call(
        self,
        call: Callable[[Backend], Awaitable[T]],
        tokens: Callable[[T], int],
        request: ChatRequest | None = None,
    ) -> tuple[Instance, T]:
        """Run one whole call on a slot, counting it; errors reach the caller typed."""
        instance = await self.acquire_slot(request)
        started = perf_counter()
        try:
            out = await call(instance.backend)
        except BaseException as exc:
            self.release_slot(instance, started, 0, exc)
            if isinstance(exc, Exception):
                reraise(exc, self.name, instance.id)
            raise
        self.release_slot(instance, started, tokens(out), None)
        return instance, out

    async def acquire_slot(self, request: ChatRequest | None = None) -> Instance:
        """Reserve a slot for one call (loading the pool on first use, waiting in the
        queue if every slot is taken) and return the instance it is on. Every slot
        taken must be given back exactly once with ``release_slot``. ``request``, when
        given, lets a keyed strategy route by it."""
        if self._phase is not Phase.RUNNING:
            if self._phase not in (Phase.IDLE, Phase.STARTING):
                raise PoolStopped(
                    f"model '{self.name}' is {self._phase}; start it first", model=self.name
                )
            await self.start()
        if self._breaker.probe_due:
            await self._breaker.probe()
        keyed = self._keyed
        key = keyed.request_key(request) if keyed is not None and request is not None else None
        instance = None if self._waiters else self._choose(key)
        if instance is None:
            return await self._wait(key)
        instance.in_flight += 1
        instance.assigned += 1
        self._busy += 1
        return instance

    def _choose(
        self, key: PrefixKey | None = None, waiter: _Waiter | None = None
    ) -> Instance | None:
        """An instance with a free slot for a call, or None: it waits (for the
        instance ``waiter.prefers`` when a keyed strategy picked a busy one)."""
        single = self._single
        if single is not None:
            return single if single.state is HEALTHY and single.in_flight < self._capacity else None
        capacity = self._capacity
        if key is None or self._keyed is None:
            free = [i for i in self._instances if i.state is HEALTHY and i.in_flight < capacity]
            return self._strategy.choose(free) if free else None
        if waiter is not None:
            self._unprefer(waiter)
        healthy = [i for i in self._instances if i.state is HEALTHY]
        free = [i for i in healthy if i.in_flight < capacity]
        busy = [i for i in healthy if i.in_flight >= capacity]
        picked = self._keyed.choose_for(free, key, busy)
        if picked is None or picked.in_flight < capacity:
            return picked
        if waiter is not None:
            waiter.prefers = picked
            picked.queued += 1
        return None

    @staticmethod
    def _unprefer(waiter: _Waiter) -> None:
        if waiter.prefers is not None:
            waiter.prefers.queued -= 1
            waiter.prefers = None

    async def _wait(self, key: PrefixKey | None) -> Instance:
        if not any(i.state is HEALTHY for i in self._instances):
            raise self._unavailable()
        if len(self._waiters) >= self.config.max_queue:
            raise PoolBusy(
                f"model '{self.name}' is busy: all {self._slots()} slots in use "
                f"and {len(self._waiters)} callers waiting (max_queue = "
                f"{self.config.max_queue}); retry later or add instances",
                retry_after=self._retry_after(),
                model=self.name,
            )
        waiter = _Waiter(key)
        self._waiters.append(waiter)
        if self._keyed is not None:
            self._dispatch()  # a call waiting for its instance may leave a free slot here
        try:
            await waiter.event.wait()
        except BaseException:
            if waiter.instance is not None:
                self._release(waiter.instance)
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
                self._unprefer(waiter)
            raise
        if waiter.error is not None:
            raise waiter.error
        assert waiter.instance is not None
        return waiter.instance

    def release_slot(
        self,
        instance: Instance,
        started: float,
        tokens: int,
        exc: BaseException | None,
        measured: bool = True,
    ) -> None:
        """Count a call that ended (``exc`` if it failed; ``measured``: whether its
        time says anything about the instance's speed) and give its slot to the
        next caller."""
        if exc is None:
            instance.succeeded(perf_counter() - started, tokens, measured)
        elif isinstance(exc, Exception):
            instance.failed += 1
            if breaks_instance(exc):
                self._breaker.failed(instance, exc)
        self._release(instance)

    def _release(self, instance: Instance) -> None:
        instance.in_flight -= 1
        self._busy -= 1
        if self._drains and not instance.in_flight:
            drained = self._drains.pop(instance, None)
            if drained is not None:
                drained.set()
        if self._waiters:
            self._dispatch()
        elif self._busy == 0 and self._drained is not None:
            self._drained.set()
            self._drained = None

    def _dispatch(self) -> None:
        """Hand free slots to waiters, first come first served; one that waits for a
        busy instance (``_Waiter.prefers``) keeps its place and lets others pass."""
        waiters = self._waiters
        index = 0
        while index < len(waiters):
            waiter = waiters[index]
            instance = self._choose(waiter.key, waiter)
            if instance is None:
                if waiter.prefers is None:
                    break  # no free slot for anyone
                index += 1
                continue
            del waiters[index]
            instance.in_flight += 1
            instance.assigned += 1
            self._busy += 1
            waiter.instance = instance
            waiter.event.set()
        if waiters and not any(i.state is HEALTHY for i in self._instances):
            self._fail_waiters(self._unavailable)

    def _fail_waiters(self, make_error: Callable[[], Exception]) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            self._unprefer(waiter)
            waiter.error = make_error()
            waiter.event.set()

    # --- bringing instances up and taking them out -------------------------------------

    def _new_instance(self, index: int) -> Instance:
        weights = self.config.weights or []
        weight = weights[index] if index < len(weights) else 1.0
        return Instance(self.config, index, self._factory, weight)

    def _reshape(self) -> None:
        """After the instance list changed: the one-instance fast path, if it applies."""
        self._single = self._instances[0] if len(self._instances) == 1 else None

    def _refuse_closed(self) -> None:
        if self._phase is Phase.CLOSED:
            raise PoolStopped(f"model '{self.name}': the pool is closed", model=self.name)

    async def _bring_up(self, instances: list[Instance], *, whole: bool = False) -> list[Exception]:
        """Load ``instances`` concurrently (the start lock held); the pool runs from
        then on. ``whole``: the pool as a whole is starting (callers wait for it).
        Returns the load errors; those instances stay unhealthy, due for a retry."""
        self._refuse_closed()
        if self._phase is Phase.RUNNING and not instances:
            return []
        if whole and self._phase is not Phase.RUNNING:
            self._phase = Phase.STARTING
        errors: list[Exception] = []
        try:
            async with anyio.create_task_group() as group:
                for instance in instances:
                    group.start_soon(self._load, instance, errors)
        finally:  # cancelled loads leave their instances unhealthy, due for a retry
            self._phase = Phase.RUNNING
            self._breaker.refresh()
            self._dispatch()
        return errors

    async def _retire(self, instances: list[Instance], grace_s: float) -> None:
        """Take ``instances`` out of service at once (the start lock held): their calls
        in flight finish, up to ``grace_s``; then their backends are freed. Shielded:
        a cancelled caller never leaves an instance half retired."""
        with anyio.CancelScope(shield=True):
            with anyio.move_on_after(grace_s):  # a re-probe in progress ends first
                while any(i.probing for i in instances):
                    await anyio.sleep(0.01)
            for instance in instances:
                if instance.state is not STOPPED:
                    instance.state = DRAINING
            self._breaker.refresh()
            self._dispatch()  # waiters go to other instances, or fail if none can serve
            busy = {i: anyio.Event() for i in instances if i.in_flight}
            self._drains.update(busy)
            with anyio.move_on_after(grace_s):
                for drained in busy.values():
                    await drained.wait()
            for instance in busy:
                self._drains.pop(instance, None)
            for instance in instances:
                if instance.state is not STOPPED:
                    await self._close(instance)

    async def _close(self, instance: Instance) -> None:
        try:
            await instance.aclose()
        except Exception as exc:  # a failing close must not keep it in service
            self._emit("stopped", instance, f"closing {instance.id} failed: {describe(exc)}")
            return
        self._emit("stopped", instance, f"stopped model '{self.name}' instance {instance.index}")

    # --- loading ------------------------------------------------------------------------

    async def _load(self, instance: Instance, errors: list[Exception]) -> None:
        self._emit(
            "loading",
            instance,
            (f"loading model '{self.name}' instance {instance.index} ({self.config.provider})"),
        )
        started = perf_counter()
        try:
            await instance.load()
        except ModelLoadError as exc:
            errors.append(exc)
            instance.mark_unhealthy(perf_counter(), describe(exc))
            self._emit("load_failed", instance, describe(exc))
            return
        seconds = perf_counter() - started
        self._emit(
            "loaded",
            instance,
            (f"loaded model '{self.name}' instance {instance.index} in {seconds:.1f}s"),
            seconds,
        )

    # --- small helpers -----------------------------------------------------------------

    def _start_lock(self) -> anyio.Lock:
        if self._lock is None:
            self._lock = anyio.Lock()
        return self._lock

    def _slots(self) -> int:
        return self._capacity * sum(i.state is HEALTHY for i in self._instances)

    def _retry_after(self) -> float:
        """Seconds until a slot is likely free for one more caller."""
        timed = [i.latency_ewma for i in self._instances if i.latency_ewma is not None]
        latency = sum(timed) / len(timed) if timed else DEFAULT_LATENCY_S
        return round(max(0.05, latency * (len(self._waiters) + 1) / max(1, self._slots())), 3)

    def _unavailable(self) -> WorkerUnavailable:
        errors = sorted({i.last_error for i in self._instances if i.last_error})
        wait = max(0.0, self._breaker.next_probe - perf_counter())
        when = f"; next re-probe in {wait:.2f}s" if math.isfinite(wait) else ""
        cause = f" (last error: {errors[0]})" if errors else ""
        out = sum(i.state in (STOPPED, DRAINING) for i in self._instances)
        if out:
            return WorkerUnavailable(
                f"model '{self.name}': no healthy instance ({out} of "
                f"{len(self._instances)} stopped by an operator){cause}{when}",
                model=self.name,
            )
        return WorkerUnavailable(
            f"model '{self.name}': no healthy instance, all {len(self._instances)} are "
            f"cooling down{cause}{when}",
            model=self.name,
        )

    def _emit(
        self, kind: EventKind, instance: Instance | None, message: str, seconds: float | None = None
    ) -> None:
        emit(
            self.on_event,
            PoolEvent(kind, self.name, instance.id if instance else None, message, seconds),
        )


def _leave_order(instance: Instance) -> tuple[bool, int, int]:
    """Which instances a scale-down removes first: those not serving (stopped,
    unhealthy, loading), then the least busy, then the newest."""
    return (instance.state is HEALTHY, instance.in_flight, -instance.index)
