"""Latency EWMA: the instance expected to answer soonest.

The expected wait is the instance's latency average times the calls it already
has plus this one. An instance with no measurement yet is tried first, so every
instance gets measured instead of the first fast one taking everything.
"""

from __future__ import annotations

from collections.abc import Sequence

from smmf_flow.models.strategies.base import C


class LatencyEwma:
    """Unmeasured first, then lowest ``latency_ewma * (in_flight + 1)``."""

    def choose(self, candidates: Sequence[C]) -> C:
        def expected(c: C) -> tuple[float, int, int]:
            latency = c.latency_ewma
            cost = -1.0 if latency is None else latency * (c.in_flight + 1)
            return (cost, c.in_flight, c.index)

        return min(candidates, key=expected)
