"""Retry policy for a node: how many attempts, which errors, how long between.

The policy is data; ``next_delay`` is a pure function of it, so the backoff is
easy to test and to reuse (the fallback operator uses it per model).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from smmf_flow.errors import FlowError


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retry up to ``attempts`` times in all on errors of the types in ``on``,
    waiting ``backoff * 2**(attempt-1)`` seconds (at most ``max_backoff``),
    with full jitter unless ``jitter`` is False."""

    attempts: int = 3
    backoff: float = 0.1
    max_backoff: float = 5.0
    jitter: bool = True
    on: tuple[type[BaseException], ...] = (Exception,)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise FlowError(f"RetryPolicy.attempts must be at least 1, got {self.attempts}")
        if self.backoff < 0 or self.max_backoff < 0:
            raise FlowError("RetryPolicy.backoff and max_backoff must not be negative")

    def should_retry(self, error: BaseException, attempt: int) -> bool:
        """Whether a failure on ``attempt`` (1-based) deserves another try."""
        return attempt < self.attempts and isinstance(error, self.on)

    def next_delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed ``attempt`` (1-based)."""
        delay = min(self.max_backoff, self.backoff * 2.0 ** (attempt - 1))
        if self.jitter:
            uniform = rng.uniform if rng is not None else random.uniform
            delay = uniform(0, delay)
        return delay
