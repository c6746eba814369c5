"""``fallback_policy``: the error's type decides what a fallback does (pure functions)."""

import pytest

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
    PoolBusy,
    PoolStopped,
    RateLimited,
    TemplateError,
    WorkerUnavailable,
)
from smmf_flow.scheduler.fallback_policy import (
    DEFAULT_ON,
    ERROR_KINDS,
    FallbackPolicy,
    decide,
    error_kind,
)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (ContextWindowExceeded("too long"), "context_window"),
        (InvalidOutput("not JSON"), "invalid_output"),
        (RateLimited("slow down", retry_after=1.0), "rate_limited"),
        (BackendTimeout("no answer"), "timeout"),
        (NodeTimeout("llm", 1.0), "timeout"),
        (TimeoutError(), "timeout"),
        (WorkerUnavailable("all cooling down"), "unavailable"),
        (PoolBusy("queue full", retry_after=0.5), "unavailable"),
        (PoolStopped("stopped"), "unavailable"),
        (BackendConnectionError("refused"), "unavailable"),
        (ModelLoadError("no weights"), "unavailable"),
        (BackendError("engine bug"), "error"),
    ],
)
def test_error_kind_follows_the_error_type(error: BaseException, kind: str) -> None:
    assert error_kind(error) == kind


@pytest.mark.parametrize(
    "error",
    [ValueError("bug"), TemplateError("bad template"), FlowError("bad flow"), KeyError("x")],
)
def test_errors_no_fallback_can_help_have_no_kind(error: BaseException) -> None:
    assert error_kind(error) is None


def test_the_default_policy_falls_through_on_every_kind_but_plain_backend_errors() -> None:
    assert set(DEFAULT_ON) == set(ERROR_KINDS) - {"error"}
    policy = FallbackPolicy()
    assert decide(policy, BackendConnectionError("refused"), 1) == "next"
    assert decide(policy, BackendTimeout("slow"), 1) == "next"
    assert decide(policy, RateLimited("slow down"), 1) == "next"
    assert decide(policy, InvalidOutput("not JSON"), 1) == "next"
    assert decide(policy, BackendError("engine bug"), 1) == "raise"
    assert decide(policy, ValueError("bug"), 1) == "raise"


def test_a_context_window_error_asks_for_a_bigger_model() -> None:
    assert decide(FallbackPolicy(), ContextWindowExceeded("too long"), 1) == "bigger"


@pytest.mark.parametrize("error", [ContextWindowExceeded("too long"), InvalidOutput("bad")])
def test_errors_the_same_model_repeats_are_never_retried(error: BaseException) -> None:
    policy = FallbackPolicy(retry=RetryPolicy(attempts=5, backoff=0))
    assert decide(policy, error, 1) in ("bigger", "next")


def test_retries_each_model_up_to_its_attempts_then_moves_on() -> None:
    policy = FallbackPolicy(retry=RetryPolicy(attempts=3, backoff=0))
    error = BackendConnectionError("refused")
    assert [decide(policy, error, attempt) for attempt in (1, 2, 3)] == ["retry", "retry", "next"]


def test_kinds_left_out_of_on_are_raised() -> None:
    policy = FallbackPolicy(on=("timeout",))
    assert decide(policy, BackendTimeout("slow"), 1) == "next"
    assert decide(policy, BackendConnectionError("refused"), 1) == "raise"
    assert decide(policy, ContextWindowExceeded("too long"), 1) == "raise"


def test_on_error_falls_through_on_any_backend_error_but_not_on_bugs() -> None:
    policy = FallbackPolicy(on=("error",))
    assert decide(policy, BackendError("engine bug"), 1) == "next"
    assert decide(policy, BackendConnectionError("refused"), 1) == "next"
    assert decide(policy, ContextWindowExceeded("too long"), 1) == "bigger"
    assert decide(policy, ValueError("bug"), 1) == "raise"


def test_an_unknown_kind_is_refused_with_the_valid_ones() -> None:
    with pytest.raises(
        FlowError,
        match=r"unknown error kind 'unavailble'.*valid kinds: "
        r"unavailable, timeout, rate_limited",
    ):
        FallbackPolicy(on=("unavailble",))
