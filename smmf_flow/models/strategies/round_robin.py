"""Round robin: each call goes to the next instance in order, skipping busy ones."""

from __future__ import annotations

from collections.abc import Sequence

from smmf_flow.models.strategies.base import C


class RoundRobin:
    """Cycles through instance indexes; a busy or unhealthy instance loses its turn."""

    def __init__(self) -> None:
        self._next = 0

    def choose(self, candidates: Sequence[C]) -> C:
        chosen = next((c for c in candidates if c.index >= self._next), candidates[0])
        self._next = chosen.index + 1
        return chosen
