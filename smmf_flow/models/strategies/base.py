"""What a selection strategy sees of an instance, and the shape of a strategy.

A strategy is handed the instances that can take a call right now (healthy, with a
free slot), never an empty list, always in instance order, and returns one of them.
It does no I/O and never waits, so each one is a few lines that a test can drive
with plain objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar


class Candidate(Protocol):
    """The counters a strategy may read (``Instance`` has them all)."""

    @property
    def index(self) -> int: ...

    @property
    def in_flight(self) -> int: ...

    @property
    def assigned(self) -> int: ...

    @property
    def latency_ewma(self) -> float | None: ...

    @property
    def weight(self) -> float: ...


C = TypeVar("C", bound=Candidate)


class Strategy(Protocol):
    """Picks one of the candidates; may keep state between picks (one per pool)."""

    def choose(self, candidates: Sequence[C]) -> C: ...
