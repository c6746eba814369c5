"""Least busy: the instance with the fewest calls in flight.

Ties go to the instance that has been given the fewest calls so far, so an idle
pool still spreads sequential calls instead of always using instance 0.
"""

from __future__ import annotations

from collections.abc import Sequence

from smmf_flow.models.strategies.base import C


class LeastBusy:
    """Fewest in flight, then fewest assigned, then lowest index."""

    def choose(self, candidates: Sequence[C]) -> C:
        return min(candidates, key=lambda c: (c.in_flight, c.assigned, c.index))
