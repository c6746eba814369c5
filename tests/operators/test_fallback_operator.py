"""``FallbackOperator`` in flows: a dead OpenAI-compatible server falls through to
SmolLM2, and a stream that dies mid-answer is continued by the next model."""

import re
from typing import Any

import pytest

from smmf_flow import DAG, FlowError, RetryPolicy, Trace
from smmf_flow.errors import NodeFailed, WorkerUnavailable
from smmf_flow.models.types import ChatResult
from smmf_flow.operators import FallbackOperator, LLMOperator, PromptOperator

pytestmark = pytest.mark.anyio


def fallback_flow(models: list[str], **params: Any) -> DAG:
    with DAG("fallback") as dag:
        (
            PromptOperator("In one sentence, what is {{ topic }}?", name="prompt")
            >> FallbackOperator(models, name="answer", max_tokens=12, temperature=0, **params)
        )
    return dag


@pytest.mark.models
async def test_a_dead_server_falls_through_to_smollm2_and_the_trace_says_so(
    make_registry: Any, llama_entry: Any, unreachable_entry: Any
) -> None:
    registry = make_registry(
        {
            "models": {
                "llms": [
                    unreachable_entry(failure_threshold=1, cooldown_s=600),
                    llama_entry("smollm2"),
                ]
            }
        }
    )
    dag = fallback_flow(["unreachable-proxy", "smollm2"])
    trace, again_trace = Trace(), Trace()
    answer = await dag.arun({"topic": "a river"}, registry=registry, trace=trace)
    assert isinstance(answer, ChatResult) and answer.text.strip()
    assert answer.model == "smollm2"
    first, served = trace["answer"].events
    assert first["event"] == "fallback" and first["model"] == "unreachable-proxy"
    assert (first["kind"], first["error"], first["action"]) == (
        "unavailable",
        "BackendConnectionError",
        "next",
    )
    assert "cannot connect" in first["message"] and "127.0.0.1" not in first["message"]
    assert served == {"event": "fallback_served", "model": "smollm2"}
    # the failure opened the proxy's circuit breaker: the next run skips it at once
    again = await dag.arun({"topic": "a river"}, registry=registry, trace=again_trace)
    assert again.text == answer.text
    assert again_trace["answer"].events == [
        {"event": "fallback_skip", "model": "unreachable-proxy", "reason": "in cooldown"}
    ]


async def test_the_same_flow_streams_with_the_fall_through_in_the_trace(real_registry: Any) -> None:
    trace = Trace()
    dag = fallback_flow(["unreachable-proxy", "smollm2"], stream=True)
    chunks = [
        c async for c in dag.astream({"topic": "a river"}, registry=real_registry, trace=trace)
    ]
    text = "".join(c.text for c in chunks)
    assert text.strip() and {c.model for c in chunks} == {"smollm2"}
    events = trace["answer"].events
    assert [e["event"] for e in events] == ["fallback", "span"]
    assert events[0]["model"] == "unreachable-proxy" and events[0]["delivered_chars"] == 0
    assert events[1] == {
        "event": "span",
        "model": "smollm2",
        "start": 0,
        "end": len(text),
        "complete": True,
    }


async def test_a_stream_that_dies_midway_reads_as_one_answer(real_registry: Any) -> None:
    greedy = await fallback_flow(["smollm2"]).arun({"topic": "a river"}, registry=real_registry)
    trace = Trace()
    dag = fallback_flow(["dying", "smollm2"], stream=True)
    chunks = [
        c async for c in dag.astream({"topic": "a river"}, registry=real_registry, trace=trace)
    ]
    text = "".join(c.text for c in chunks)
    assert text == greedy.text  # prefix + continuation: nothing repeated, nothing lost
    spans = [e for e in trace["answer"].events if e["event"] == "span"]
    assert [(s["model"], s["complete"]) for s in spans] == [("dying", False), ("smollm2", True)]
    cut = spans[0]["end"]
    assert spans[1]["start"] == cut and spans[1]["end"] == len(text)
    assert "".join(c.text for c in chunks if c.model == "dying") == text[:cut]
    assert "".join(c.text for c in chunks if c.model == "smollm2") == text[cut:]
    assert trace["answer"].state.value == "succeeded"


async def test_a_flow_whose_every_model_fails_fails_at_that_node(real_registry: Any) -> None:
    dag = fallback_flow(["dead", "unreachable-proxy"], model_retry={"attempts": 2, "backoff": 0})
    with pytest.raises(NodeFailed, match="node 'answer' failed") as err:
        await dag.arun({"topic": "a river"}, registry=real_registry)
    assert isinstance(err.value.__cause__, WorkerUnavailable)
    assert "all models of 'answer' failed: dead: BackendConnectionError" in str(err.value.__cause__)


async def test_a_group_name_works_as_a_fallback_member(real_registry: Any) -> None:
    result = await fallback_flow(["dead", "chat"]).arun(
        {"topic": "a river"}, registry=real_registry
    )
    assert result.model == "smollm2"


@pytest.mark.parametrize(
    ("kwargs", "message", "param"),
    [
        ({"models": []}, "parameter 'models': list should have at least 1 item", "models"),
        (
            {"models": ["a", 5]},
            "parameter 'models.1': input should be a valid string, got 5",
            "models.1",
        ),
        (
            {"models": ["a"], "on": ["unavailble"]},
            "parameter 'on.0': input should be "
            "'unavailable', 'timeout', 'rate_limited', 'context_window', 'invalid_output' or "
            "'error', got 'unavailble'",
            "on.0",
        ),
        (
            {"models": ["a"], "model_retry": {"attempt": 2}},
            "unknown field 'attempt' in model_retry; did you mean 'attempts'?",
            "model_retry.attempt",
        ),
        (
            {"models": ["a"], "model_retry": "twice"},
            "parameter 'model_retry': input should be a "
            "valid dictionary or instance of RetryParams, got 'twice'",
            "model_retry",
        ),
        (
            {"models": ["a"], "max_depth": 0},
            "parameter 'max_depth': input should be greater than or equal to 1",
            "max_depth",
        ),
    ],
)
def test_bad_fallback_settings_are_refused_when_the_node_is_made(
    kwargs: dict[str, Any], message: str, param: str
) -> None:
    with pytest.raises(FlowError, match=f"^node 'fb': {re.escape(message)}") as caught:
        FallbackOperator(name="fb", **kwargs)
    assert (caught.value.node, caught.value.param) == ("fb", param)


def test_fallback_settings_round_trip_through_params() -> None:
    op = FallbackOperator(
        ["a", "b"],
        on=["timeout"],
        model_retry=RetryPolicy(attempts=4),
        max_depth=2,
        stream=True,
        max_tokens=5,
        name="fb",
    )
    assert op.params() == {
        "models": ["a", "b"],
        "on": ["timeout"],
        "max_depth": 2,
        "model_retry": {"attempts": 4},
        "stream": True,
        "max_tokens": 5,
    }
    again = FallbackOperator(**op.params())
    assert again.params() == op.params() and again.policy == op.policy
    assert FallbackOperator(["a"], model_retry=2).policy.retry.attempts == 2
    assert FallbackOperator(["a"]).policy.retry.attempts == 1  # no per-model retry by default


def test_retry_is_the_node_retry_and_model_retry_the_per_model_one() -> None:
    node_retry = RetryPolicy(attempts=2, backoff=0)
    op = FallbackOperator(["a", "b"], retry=node_retry, model_retry=3, name="fb")
    assert op.retry is node_retry  # the whole node, like any node
    assert op.policy.retry.attempts == 3  # each model before the next
    assert "retry" not in op.params()  # a node option, not a parameter
    assert LLMOperator("a").params() == {"model": "a"}
