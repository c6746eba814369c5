"""Instance selection strategies by name: one small module each.

A pool makes one strategy object with ``make_strategy(name)`` and asks it to
``choose`` among the instances that can take a call. Applications add their own
with ``register_strategy``; a model config names it in ``strategy = "..."``.
``prefix_affinity`` takes its knobs from the config's ``affinity`` table.
"""

from __future__ import annotations

from collections.abc import Callable

from smmf_flow.errors import ConfigError
from smmf_flow.models.config import ModelConfig
from smmf_flow.models.strategies.base import Candidate, KeyedStrategy, PrefixKey, Strategy
from smmf_flow.models.strategies.latency_ewma import LatencyEwma
from smmf_flow.models.strategies.least_busy import LeastBusy
from smmf_flow.models.strategies.prefix_affinity import PrefixAffinity, prefix_key
from smmf_flow.models.strategies.round_robin import RoundRobin
from smmf_flow.models.strategies.weighted import Weighted

_STRATEGIES: dict[str, Callable[[], Strategy]] = {
    "round_robin": RoundRobin,
    "least_busy": LeastBusy,
    "latency_ewma": LatencyEwma,
    "weighted": Weighted,
    "prefix_affinity": PrefixAffinity,
}


def register_strategy(name: str, factory: Callable[[], Strategy]) -> None:
    """Make ``strategy = "<name>"`` build ``factory()`` for each pool."""
    _STRATEGIES[name] = factory


def known_strategies() -> list[str]:
    """Every strategy name a model config may use."""
    return list(_STRATEGIES)


def make_strategy(name: str, config: ModelConfig | None = None) -> Strategy:
    """A fresh strategy object (strategies keep per-pool state); ``config`` gives
    ``prefix_affinity`` its ``affinity`` knobs."""
    factory = _STRATEGIES.get(name)
    if factory is None:
        raise ConfigError(f"unknown strategy '{name}' (known: {', '.join(_STRATEGIES)})")
    if factory is PrefixAffinity and config is not None and config.affinity is not None:
        return PrefixAffinity(**config.affinity.model_dump())
    return factory()


__all__ = [
    "Candidate",
    "KeyedStrategy",
    "LatencyEwma",
    "LeastBusy",
    "PrefixAffinity",
    "PrefixKey",
    "RoundRobin",
    "Strategy",
    "Weighted",
    "known_strategies",
    "make_strategy",
    "prefix_key",
    "register_strategy",
]
