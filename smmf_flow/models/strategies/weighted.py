"""Weighted: calls spread in proportion to each instance's weight.

Smooth weighted round robin (as in nginx): deterministic, exact proportions over
any window of ``sum(weights)`` calls, and no bursts on the heaviest instance.
"""

from __future__ import annotations

from collections.abc import Sequence

from smmf_flow.models.strategies.base import C


class Weighted:
    """Each pick adds every candidate's weight to its credit; the richest is chosen
    and pays back the candidates' total."""

    def __init__(self) -> None:
        self._credit: dict[int, float] = {}

    def choose(self, candidates: Sequence[C]) -> C:
        credit = self._credit
        total = 0.0
        best: C | None = None
        best_credit = float("-inf")
        for c in candidates:
            total += c.weight
            current = credit.get(c.index, 0.0) + c.weight
            credit[c.index] = current
            if current > best_credit:
                best, best_credit = c, current
        assert best is not None  # candidates is never empty
        credit[best.index] = best_credit - total
        return best
