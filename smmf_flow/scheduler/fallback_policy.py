"""What a fallback does about an error: a typed policy and pure functions.

The error's type decides (as in LiteLLM's router): a dead or busy backend, a
timeout or a rate limit → try the next model; a prompt too long for the
window → the next model *with a larger window*; output that breaks its schema →
the next model. Anything else is the caller's problem and is raised at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

from smmf_flow.dag import RetryPolicy
from smmf_flow.errors import (
    BackendConnectionError,
    BackendError,
    BackendTimeout,
    ContextWindowExceeded,
    FlowError,
    InvalidOutput,
    ModelLoadError,
    NodeTimeout,
    RateLimited,
    WorkerUnavailable,
)
from smmf_flow.models.config import ErrorKind

ERROR_KINDS: tuple[str, ...] = get_args(ErrorKind)
DEFAULT_ON: tuple[str, ...] = ERROR_KINDS[:-1]

Action = Literal["retry", "next", "bigger", "raise"]


def error_kind(error: BaseException) -> ErrorKind | None:
    """The fallback kind of ``error``, or None if no fallback can help."""
    if isinstance(error, ContextWindowExceeded):
        return "context_window"
    if isinstance(error, InvalidOutput):
        return "invalid_output"
    if isinstance(error, RateLimited):
        return "rate_limited"
    if isinstance(error, (BackendTimeout, NodeTimeout, TimeoutError)):
        return "timeout"
    if isinstance(error, (WorkerUnavailable, BackendConnectionError, ModelLoadError)):
        return "unavailable"
    if isinstance(error, BackendError):
        return "error"
    return None


@dataclass(frozen=True, slots=True)
class FallbackPolicy:
    """Which error kinds fall through to the next model, how often each model is
    retried first, and how many models are tried at most."""

    on: tuple[str, ...] = DEFAULT_ON
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(attempts=1))
    max_depth: int | None = None
    #: seconds a stream may go without a chunk before the next model takes over
    chunk_timeout: float | None = None

    def __post_init__(self) -> None:
        unknown = [k for k in self.on if k not in ERROR_KINDS]
        if unknown:
            raise FlowError(
                f"fallback: unknown error kind {unknown[0]!r} in `on` "
                f"(valid kinds: {', '.join(ERROR_KINDS)})"
            )


def decide(policy: FallbackPolicy, error: BaseException, attempt: int) -> Action:
    """What to do after ``error`` on ``attempt`` (1-based) of one model."""
    kind = error_kind(error)
    if kind is None or (kind not in policy.on and not ("error" in policy.on and kind)):
        return "raise"
    if kind in ("context_window", "invalid_output"):
        # the same model will fail the same way: move on at once
        return "bigger" if kind == "context_window" else "next"
    if policy.retry.should_retry(error, attempt):
        return "retry"
    return "next"
