"""One worker of a pool: a backend, its state, and its counters.

The pool decides *which* instance takes a call; the instance holds what that
decision reads (in flight, latency average, weight) and what a metrics page
shows (done, failed, tokens/s). Where the backend lives is the placement's
business: ``local`` builds it in this process; another placement (a Ray actor)
is one more entry in ``PLACEMENTS`` that builds a backend-shaped proxy, and
nothing else changes.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter

from smmf_flow.errors import ConfigError, ModelLoadError, describe
from smmf_flow.models.backends import backend_class
from smmf_flow.models.backends.base import BackendFactory
from smmf_flow.models.config import ModelConfig

EWMA_ALPHA = 0.3  # weight of the newest sample in the running averages


class InstanceState(enum.StrEnum):
    """Where an instance is in its life."""

    STARTING = "starting"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    DRAINING = "draining"  # taken out of service: its calls in flight finish, no new ones
    STOPPED = "stopped"


# the pip extra that brings each built-in provider's engine
EXTRAS = {
    "llama.cpp": "llama-cpp",
    "hf": "hf",
    "vllm": "vllm",
    "mlx": "mlx",
    "sentence-transformers": "embeddings",
    "proxy/openai": "openai",
}


def _local(config: ModelConfig) -> BackendFactory:
    try:
        return backend_class(config.provider)
    except ModuleNotFoundError as exc:
        extra = EXTRAS.get(config.provider)
        how = (
            f"pip install 'smmf-flow[{extra}]'"
            if extra
            else f"install the package that provides '{config.provider}'"
        )
        raise ConfigError(
            f"model '{config.name}': provider '{config.provider}' needs the module "
            f"'{exc.name}', which is not installed; {how}"
        ) from exc


def _ray(config: ModelConfig) -> BackendFactory:
    from smmf_flow.models.placement_ray import ray_factory  # imports Ray only when used

    return ray_factory(config, _local(config))


PLACEMENTS: dict[str, Callable[[ModelConfig], BackendFactory]] = {"local": _local, "ray": _ray}


def backend_factory(config: ModelConfig) -> BackendFactory:
    """How instances of ``config`` build their backend, per its ``placement``."""
    placement = PLACEMENTS.get(config.placement)
    if placement is None:
        raise ConfigError(
            f"model '{config.name}': placement '{config.placement}' is not "
            f"available yet (available: {', '.join(PLACEMENTS)})"
        )
    return placement(config)


@dataclass(frozen=True, slots=True)
class InstanceStats:
    """A snapshot of one instance's counters (for metrics and ``smmf-flow models``)."""

    id: str
    state: str
    in_flight: int
    done: int
    failed: int
    consecutive_failures: int
    latency_ewma_s: float | None
    tokens_per_s: float | None
    cooldown_left_s: float
    last_error: str | None
    #: where the instance runs: ``local`` (this process) or ``ray``
    placement: str = "local"
    #: the Ray node it runs on (``id@ip``); None in this process
    node: str | None = None


class Instance:
    """A backend plus the bookkeeping the pool and its strategies read."""

    __slots__ = (
        "_closed",
        "_factory",
        "_used",
        "assigned",
        "backend",
        "config",
        "consecutive_failures",
        "done",
        "failed",
        "id",
        "in_flight",
        "index",
        "last_error",
        "latency_ewma",
        "loaded",
        "probing",
        "queued",
        "retry_at",
        "state",
        "tokens_per_s",
        "weight",
    )

    def __init__(
        self, config: ModelConfig, index: int, factory: BackendFactory, weight: float = 1.0
    ) -> None:
        self.config, self.index, self.weight = config, index, weight
        self.id = f"{config.name}#{index}"
        self._factory = factory
        self.backend = factory(config, self.id)
        self._used = False  # a load was tried on this backend object
        self._closed = False
        self.state = InstanceState.STOPPED
        self.loaded = self.probing = False
        self.in_flight = self.assigned = self.done = self.failed = 0
        #: queued calls waiting for this instance in particular (``Pool._Waiter.prefers``)
        self.queued = 0
        self.consecutive_failures = 0
        self.retry_at = 0.0
        self.latency_ewma: float | None = None
        self.tokens_per_s: float | None = None
        self.last_error: str | None = None

    async def load(self) -> None:
        """Load the backend; a fresh one if this backend object was loaded before."""
        if self._used:
            await self._close_backend()
            self.backend = self._factory(self.config, self.id)
            self._closed = False
        self._used = True
        self.state = InstanceState.STARTING
        try:
            await self.backend.load()
        except ModelLoadError:
            raise
        except Exception as exc:
            raise ModelLoadError(
                f"model '{self.config.name}' instance '{self.id}' could not load: {describe(exc)}",
                model=self.config.name,
                instance=self.id,
            ) from exc
        except BaseException:  # cancelled: never left "starting", and due for a retry
            self.mark_unhealthy(perf_counter(), "loading was interrupted", retry_in=0.0)
            raise
        self.loaded = True
        self.mark_healthy()

    async def probe(self) -> None:
        """The half-open check: load if never loaded, else the backend's health check."""
        if not self.loaded:
            await self.load()
            return
        await self.backend.health()
        self.mark_healthy()

    async def aclose(self) -> None:
        """Free the backend; the instance can be loaded again later."""
        self.state = InstanceState.STOPPED
        self.loaded = False
        await self._close_backend()

    async def _close_backend(self) -> None:
        if self._used and not self._closed:
            self._closed = True
            await self.backend.aclose()

    def mark_healthy(self) -> None:
        self.state = InstanceState.HEALTHY
        self.consecutive_failures = 0
        self.last_error = None

    def mark_unhealthy(self, now: float, error: str, *, retry_in: float | None = None) -> None:
        """Open the breaker: no calls until ``now + cooldown_s`` (or ``retry_in``
        seconds), then a re-probe."""
        self.state = InstanceState.UNHEALTHY
        self.retry_at = now + (self.config.cooldown_s if retry_in is None else retry_in)
        self.last_error = error

    def succeeded(self, seconds: float, tokens: int, measured: bool = True) -> None:
        """Count a finished call; ``measured`` feeds the latency and speed averages."""
        self.done += 1
        self.consecutive_failures = 0
        if not measured:
            return
        previous = self.latency_ewma
        self.latency_ewma = (
            seconds if previous is None else (previous + EWMA_ALPHA * (seconds - previous))
        )
        if tokens and seconds > 0:
            rate = tokens / seconds
            speed = self.tokens_per_s
            self.tokens_per_s = rate if speed is None else speed + EWMA_ALPHA * (rate - speed)

    def stats(self, now: float) -> InstanceStats:
        cooldown = max(0.0, self.retry_at - now) if self.state is InstanceState.UNHEALTHY else 0.0
        return InstanceStats(
            id=self.id,
            state=str(self.state),
            in_flight=self.in_flight,
            done=self.done,
            failed=self.failed,
            consecutive_failures=self.consecutive_failures,
            latency_ewma_s=self.latency_ewma,
            tokens_per_s=self.tokens_per_s,
            cooldown_left_s=round(cooldown, 3),
            last_error=self.last_error,
            placement=self.config.placement,
            node=self.backend.node,
        )
