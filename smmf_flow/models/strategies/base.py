"""What a selection strategy sees of an instance, and the shape of a strategy.

A strategy is handed the instances that can take a call right now (healthy, with a
free slot), never an empty list, always in instance order, and returns one of them.
It does no I/O and never waits, so each one is a few lines that a test can drive
with plain objects.

A strategy that routes by what a call asks (``prefix_affinity``) is also a
``KeyedStrategy``: the pool computes the call's ``PrefixKey`` once with
``request_key`` when the call arrives (the request is not kept) and asks
``choose_for(candidates, key, busy)``, also for a queued call when slots free up.
It may pick one of ``busy`` (healthy, every slot taken) when waiting for it beats a
free one; the call then queues for that instance. Calls without a request
(embeddings) still use ``choose``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple, Protocol, TypeVar, runtime_checkable

if TYPE_CHECKING:
    from smmf_flow.models.types import ChatRequest


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

    @property
    def queued(self) -> int: ...


C = TypeVar("C", bound=Candidate)


class Strategy(Protocol):
    """Picks one of the candidates; may keep state between picks (one per pool)."""

    def choose(self, candidates: Sequence[C]) -> C: ...


class PrefixKey(NamedTuple):
    """What a keyed strategy knows of a chat request: its prompt prefix, hashed."""

    #: chained hashes, ``blocks[i]`` covering the prompt up to block ``i``
    blocks: tuple[int, ...]
    #: how many leading blocks are the system messages (shared by many conversations)
    shared: int


@runtime_checkable
class KeyedStrategy(Protocol):
    """A strategy that also picks by the call's key (see the module doc)."""

    def request_key(self, request: ChatRequest) -> PrefixKey: ...

    def choose(self, candidates: Sequence[C]) -> C: ...

    def choose_for(
        self, candidates: Sequence[C], key: PrefixKey, busy: Sequence[C] = ()
    ) -> C | None: ...
