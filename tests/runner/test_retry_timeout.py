"""Per-node ``timeout`` and ``retry``: the policy as pure functions, then in a run."""

import random
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from draining import drain

from smmf_flow import (
    DAG,
    FlowError,
    MapOperator,
    NodeFailed,
    NodeTimeout,
    ReduceStreamOperator,
    RetryPolicy,
    StreamifyOperator,
    Trace,
    TransformStreamOperator,
    UnstreamifyOperator,
)

pytestmark = pytest.mark.anyio

FAST = {"backoff": 0.001, "jitter": False}


# --- the policy ---------------------------------------------------------------------------


def test_backoff_doubles_up_to_the_cap() -> None:
    policy = RetryPolicy(attempts=6, backoff=0.1, max_backoff=0.5, jitter=False)
    assert [policy.next_delay(n) for n in range(1, 6)] == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])


def test_jitter_stays_within_the_backoff() -> None:
    policy = RetryPolicy(backoff=0.1)
    rng = random.Random(7)
    delays = [policy.next_delay(3, rng) for _ in range(50)]
    assert all(0 <= d <= 0.4 for d in delays)
    assert len(set(delays)) > 1


@pytest.mark.parametrize(
    ("error", "attempt", "retry"),
    [
        (ConnectionError(), 1, True),
        (ConnectionError(), 2, True),
        (ConnectionError(), 3, False),  # the third attempt was the last
        (ValueError(), 1, False),
    ],
)
def test_should_retry_by_type_and_attempt(error: Exception, attempt: int, retry: bool) -> None:
    policy = RetryPolicy(attempts=3, on=(ConnectionError,))
    assert policy.should_retry(error, attempt) is retry


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"attempts": 0}, r"RetryPolicy.attempts must be at least 1, got 0"),
        ({"backoff": -1}, r"RetryPolicy.backoff and max_backoff must not be negative"),
    ],
)
def test_a_bad_policy_is_a_flow_error(options: dict[str, Any], message: str) -> None:
    with pytest.raises(FlowError, match=message):
        RetryPolicy(**options)


# --- timeouts -----------------------------------------------------------------------------


async def sleepy(x: float) -> float:
    await anyio.sleep(x)
    return x


async def test_a_node_past_its_timeout_fails_with_node_timeout() -> None:
    with DAG("timeout") as dag:
        MapOperator(sleepy, name="slow", timeout=0.05)
    started = time.perf_counter()
    with pytest.raises(
        NodeFailed,
        match=r"^node 'slow' failed: NodeTimeout: node 'slow' timed "
        r"out after 0.05s$",
    ) as info:
        await dag.arun(10)
    assert time.perf_counter() - started < 1
    cause = info.value.__cause__
    assert isinstance(cause, NodeTimeout)
    assert cause.node == "slow" and cause.timeout == 0.05


async def test_a_node_within_its_timeout_succeeds() -> None:
    with DAG("timeout") as dag:
        MapOperator(sleepy, name="quick", timeout=5)
    assert await dag.arun(0) == 0


async def test_a_stream_timeout_bounds_the_wait_for_each_chunk() -> None:
    async def stalls(n: int) -> AsyncIterator[int]:
        yield 1
        await anyio.sleep(10)
        yield 2

    with DAG("stall") as dag:
        StreamifyOperator(stalls, name="src", timeout=0.05)
    got: list[int] = []
    with pytest.raises(
        NodeFailed,
        match=r"node 'src' failed: NodeTimeout: node 'src' timed "
        r"out after 0.05s",
    ):
        await drain(dag.astream(0), into=got)
    assert got == [1]


# --- retries of value nodes ---------------------------------------------------------------


class Flaky(MapOperator):
    """Raises ``errors[k]`` on call ``k`` while there are errors left, then succeeds."""

    def __init__(self, errors: list[BaseException], **options: Any) -> None:
        self.errors = list(errors)
        self.calls = 0
        super().__init__(**options)

    async def map(self, x: Any) -> Any:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return f"ok {x}"


async def test_retry_succeeds_on_the_third_attempt() -> None:
    with DAG("retry") as dag:
        flaky = Flaky(
            [ConnectionError("1"), ConnectionError("2")],
            name="flaky",
            retry=RetryPolicy(attempts=3, on=(ConnectionError,), **FAST),
        )
    trace = Trace()
    assert await dag.arun(1, trace=trace) == "ok 1"
    assert flaky.calls == 3
    assert trace["flaky"].attempts == 3
    assert trace["flaky"].state == "succeeded"


async def test_retry_waits_with_exponential_backoff() -> None:
    with DAG("backoff") as dag:
        Flaky(
            [ConnectionError(), ConnectionError()],
            name="flaky",
            retry=RetryPolicy(attempts=3, backoff=0.02, jitter=False),
        )
    started = time.perf_counter()
    await dag.arun(1)
    assert time.perf_counter() - started >= 0.02 + 0.04


async def test_other_error_types_are_not_retried() -> None:
    with DAG("retry") as dag:
        flaky = Flaky(
            [KeyError("k")],
            name="flaky",
            retry=RetryPolicy(attempts=3, on=(ConnectionError,), **FAST),
        )
    trace = Trace()
    with pytest.raises(NodeFailed, match=r"node 'flaky' failed: KeyError: 'k'") as info:
        await dag.arun(1, trace=trace)
    assert isinstance(info.value.__cause__, KeyError)
    assert flaky.calls == 1
    assert trace["flaky"].attempts == 1


async def test_retries_run_out() -> None:
    with DAG("retry") as dag:
        flaky = Flaky(
            [ConnectionError(str(i)) for i in range(5)],
            name="flaky",
            retry=RetryPolicy(attempts=3, **FAST),
        )
    trace = Trace()
    with pytest.raises(NodeFailed, match=r"node 'flaky' failed: ConnectionError: 2"):
        await dag.arun(1, trace=trace)
    assert flaky.calls == 3
    assert trace["flaky"].attempts == 3
    assert trace["flaky"].state == "failed"


async def test_a_timed_out_attempt_is_retried() -> None:
    calls: list[int] = []

    async def slow_then_fast(x: int) -> str:
        calls.append(x)
        if len(calls) == 1:
            await anyio.sleep(10)
        return "fast"

    with DAG("retry_timeout") as dag:
        MapOperator(
            slow_then_fast,
            name="node",
            timeout=0.05,
            retry=RetryPolicy(attempts=2, on=(NodeTimeout,), **FAST),
        )
    trace = Trace()
    assert await dag.arun(1, trace=trace) == "fast"
    assert trace["node"].attempts == 2


# --- retries of stream nodes --------------------------------------------------------------


def stream_failing(errors_before: list[BaseException], after: int | None, calls: list[int]) -> Any:
    """A source that raises ``errors_before.pop(0)`` before its first chunk while
    there are any, and otherwise yields 0, 1, 2, ... raising after ``after`` chunks."""

    async def source(n: int) -> AsyncIterator[int]:
        calls.append(n)
        if errors_before:
            raise errors_before.pop(0)
        for i in range(n):
            if after is not None and i == after:
                raise ConnectionError(f"lost after {after} chunks")
            yield i

    return source


async def test_a_stream_failing_before_its_first_chunk_is_restarted() -> None:
    calls: list[int] = []
    source = stream_failing([ConnectionError("a"), ConnectionError("b")], None, calls)
    with DAG("restart") as dag:
        (
            StreamifyOperator(source, name="src", retry=RetryPolicy(attempts=3, **FAST))
            >> UnstreamifyOperator(name="collect")
        )
    trace = Trace()
    assert await dag.arun(3, trace=trace) == [0, 1, 2]
    assert len(calls) == 3
    assert trace["src"].attempts == 3
    assert trace["src"].chunks == 3


async def test_a_stream_failing_after_a_chunk_is_not_restarted() -> None:
    calls: list[int] = []
    source = stream_failing([], 2, calls)
    with DAG("no_restart") as dag:
        (
            StreamifyOperator(source, name="src", retry=RetryPolicy(attempts=3, **FAST))
            >> TransformStreamOperator(lambda i: i * 10, name="tens")
        )
    got: list[int] = []
    trace = Trace()
    with pytest.raises(
        NodeFailed,
        match=r"node 'src' failed: ConnectionError: lost after 2 "
        r"chunks",
    ) as info:
        await drain(dag.astream(5, trace=trace), into=got)
    assert got == [0, 10]  # nothing repeated
    assert len(calls) == 1
    assert isinstance(info.value.__cause__, ConnectionError)
    assert trace["src"].attempts == 1 and trace["src"].state == "failed"


async def test_a_stream_is_not_restarted_for_other_error_types() -> None:
    calls: list[int] = []
    source = stream_failing([KeyError("k")], None, calls)
    with DAG("other") as dag:
        (
            StreamifyOperator(
                source, name="src", retry=RetryPolicy(attempts=3, on=(ConnectionError,), **FAST)
            )
            >> UnstreamifyOperator(name="collect")
        )
    with pytest.raises(NodeFailed, match=r"node 'src' failed: KeyError: 'k'"):
        await dag.arun(3)
    assert len(calls) == 1


async def test_a_stalled_stream_is_restarted_before_its_first_chunk() -> None:
    calls: list[int] = []

    async def first_stalls(n: int) -> AsyncIterator[int]:
        calls.append(n)
        if len(calls) == 1:
            await anyio.sleep(10)
        yield n

    with DAG("stall") as dag:
        (
            StreamifyOperator(
                first_stalls, name="src", timeout=0.05, retry=RetryPolicy(attempts=2, **FAST)
            )
            >> UnstreamifyOperator(name="collect")
        )
    assert await dag.arun(7) == [7]
    assert len(calls) == 2


# --- a node that read a stream cannot be run again ------------------------------------------


async def test_a_node_reading_a_stream_is_not_retried() -> None:
    """A retry would start over on a half-read stream and silently lose chunks."""
    seen: list[int] = []

    def add(total: int, n: int) -> int:
        seen.append(n)
        if len(seen) == 2:
            raise ConnectionError("blip")
        return total + n

    with DAG("reduce") as dag:
        (
            StreamifyOperator(name="src")
            >> ReduceStreamOperator(add, name="sum", retry=RetryPolicy(attempts=3, **FAST))
        )
    trace = Trace()
    with pytest.raises(NodeFailed, match=r"node 'sum' failed: ConnectionError: blip"):
        await dag.arun([1, 2, 3, 4], trace=trace)
    assert trace["sum"].attempts == 1


async def test_a_transform_reading_a_stream_is_not_restarted() -> None:
    seen: list[int] = []

    def first_fails(n: int) -> int:
        seen.append(n)
        if len(seen) == 1:
            raise ConnectionError("blip")
        return n

    with DAG("transform") as dag:
        (
            StreamifyOperator(name="src")
            >> TransformStreamOperator(first_fails, name="t", retry=RetryPolicy(attempts=3, **FAST))
            >> UnstreamifyOperator(name="collect")
        )
    with pytest.raises(NodeFailed, match=r"node 't' failed: ConnectionError: blip"):
        await dag.arun([1, 2, 3])
    assert seen == [1]
