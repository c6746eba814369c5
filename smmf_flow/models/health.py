"""Which failures mean an instance is broken, and what the pool does about them.

The exception type decides the policy: a refused connection, a timeout, a failed
load or a rate limit say the *instance* cannot serve, so they count towards its
circuit breaker; a prompt too long for the context window or output that misses
its schema say the *request* was bad, and the next request may well succeed, so
they do not. Any other exception escaping a backend is a bug in it: it counts,
and reaches the caller wrapped in a ``BackendError``.

The breaker (``Breaker``, one per pool): ``failure_threshold`` breaking failures
in a row — a call, or a stream that fails or stalls past its ``chunk_timeout`` —
mark the instance unhealthy for ``cooldown_s`` (one is enough when the instance's
process is gone, ``WorkerLost``). Once that has passed the pool is
no longer "in cooldown": the next caller re-probes the instance (a health check,
or a new load if it never loaded) — half-open — and a passing probe makes it
healthy again. The pool's health loop (``Pool.watch_health``: a ``Breaker.round``
every ``health_interval_s``) does the same without waiting for traffic, and
health-checks the healthy instances while the pool is idle, so a pool nobody
calls still recovers (and a server's ``/readyz`` follows it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from time import perf_counter
from typing import NoReturn

from smmf_flow.errors import (
    BackendConnectionError,
    BackendError,
    BackendTimeout,
    ModelError,
    ModelLoadError,
    RateLimited,
    SmmfError,
    WorkerLost,
    describe,
)
from smmf_flow.models.config import ModelConfig
from smmf_flow.models.events import EventKind
from smmf_flow.models.instance import Instance, InstanceState

HEALTHY = InstanceState.HEALTHY
UNHEALTHY = InstanceState.UNHEALTHY
Emit = Callable[[EventKind, Instance, str], None]

BREAKING: tuple[type[BackendError], ...] = (
    BackendConnectionError,
    BackendTimeout,
    ModelLoadError,
    RateLimited,
)


def breaks_instance(exc: BaseException) -> bool:
    """True when ``exc`` says the instance, not the request, is at fault."""
    if isinstance(exc, BREAKING):
        return True
    return isinstance(exc, Exception) and not isinstance(exc, SmmfError)


def as_model_error(exc: Exception, model: str, instance: str) -> SmmfError:
    """The error a caller sees: smmf errors as they are (tagged with the model and
    instance), anything else wrapped in a ``BackendError`` that names them."""
    if isinstance(exc, ModelError):
        if exc.model is None:
            exc.model = model
        if exc.instance is None:
            exc.instance = instance
        return exc
    if isinstance(exc, SmmfError):
        return exc
    return BackendError(
        f"model '{model}' instance '{instance}' failed: {type(exc).__name__}: {exc}",
        model=model,
        instance=instance,
    )


def reraise(exc: Exception, model: str, instance: str) -> NoReturn:
    """Raise what ``as_model_error`` makes of ``exc``, chained to it when wrapped."""
    error = as_model_error(exc, model, instance)
    if error is exc:
        raise exc
    raise error from exc


class Breaker:
    """The circuit breakers of one pool's instances: trips, re-probes, health checks.

    ``changed`` is called whenever an instance may have become healthy or
    unhealthy, so that the pool can hand slots to (or fail) its waiters.
    """

    def __init__(
        self,
        config: ModelConfig,
        instances: list[Instance],
        emit: Emit,
        changed: Callable[[], None],
    ) -> None:
        self.config, self.name = config, config.name
        self._instances = instances
        self._emit = emit
        self._changed = changed
        self.next_probe = math.inf  # when the earliest unhealthy instance is due

    @property
    def probe_due(self) -> bool:
        return self.next_probe <= perf_counter()

    def failed(self, instance: Instance, exc: BaseException) -> None:
        """Count a breaking failure; trip the instance at ``failure_threshold``, or at
        once when its process is gone (``WorkerLost``: retrying there cannot work)."""
        instance.consecutive_failures += 1
        if instance.state is HEALTHY and (
            isinstance(exc, WorkerLost)
            or instance.consecutive_failures >= self.config.failure_threshold
        ):
            self.trip(instance, exc)

    def trip(self, instance: Instance, exc: BaseException) -> None:
        instance.mark_unhealthy(perf_counter(), describe(exc))
        self.refresh()
        self._emit(
            "unhealthy",
            instance,
            (
                f"model '{self.name}' instance {instance.index} is unhealthy after "
                f"{instance.consecutive_failures} failure(s) ({describe(exc)}); re-probe in "
                f"{self.config.cooldown_s:g}s"
            ),
        )

    def refresh(self) -> None:
        self.next_probe = min(
            (i.retry_at for i in self._instances if i.state is UNHEALTHY), default=math.inf
        )

    async def probe(self) -> None:
        """Half-open: re-check each unhealthy instance whose cooldown has passed."""
        try:
            for instance in self._instances:
                if (
                    instance.state is UNHEALTHY
                    and instance.retry_at <= perf_counter()
                    and not instance.probing
                ):
                    await self._probe_one(instance)
        finally:  # a cancelled probe leaves its instance unhealthy and due again
            self.refresh()
            self._changed()

    async def _probe_one(self, instance: Instance) -> None:
        instance.probing = True
        try:
            await instance.probe()
        except Exception as exc:
            instance.mark_unhealthy(perf_counter(), describe(exc))
            self._emit(
                "probe_failed",
                instance,
                (
                    f"model '{self.name}' instance {instance.index} failed its re-probe "
                    f"({describe(exc)}); next try in {self.config.cooldown_s:g}s"
                ),
            )
        else:
            self._emit(
                "recovered",
                instance,
                (f"model '{self.name}' instance {instance.index} is healthy again"),
            )
        finally:
            instance.probing = False

    async def check(self, *, idle_only: bool = False) -> None:
        """Run the health check of every healthy instance; one that fails is tripped
        at once. ``idle_only``: only while no call of the pool is in flight, since a
        check can disturb a call (``llama_cpp.server`` interrupts a stream when any
        other request arrives, a model list included)."""
        if idle_only and any(i.in_flight for i in self._instances):
            return
        for instance in self._instances:
            if instance.state is HEALTHY:
                try:
                    await instance.backend.health()
                except Exception as exc:
                    instance.consecutive_failures += 1
                    if instance.state is HEALTHY:  # not stopped by an operator meanwhile
                        self.trip(instance, exc)
        self._changed()

    async def round(self) -> None:
        """One turn of the health loop: re-probe the due instances, and check the
        healthy ones if the pool is idle."""
        if self.probe_due:
            await self.probe()
        await self.check(idle_only=True)
