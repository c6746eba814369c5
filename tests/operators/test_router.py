"""``RouterOperator`` on real models: by context length, by rule, by a classifier; each
decision is in the trace with its reason."""

import json
import re
from typing import Any

import pytest

from smmf_flow import DAG, FlowError, Trace
from smmf_flow.errors import InputError, NodeFailed
from smmf_flow.models.types import ChatRequest
from smmf_flow.operators import PromptOperator, RouterOperator
from smmf_flow.scheduler import scheduler_for

pytestmark = pytest.mark.anyio

LONG = "Summarise: " + "the cat sat on the mat. " * 40  # ~290 tokens: over 256


def router_flow(**kwargs: Any) -> DAG:
    with DAG("route") as dag:
        RouterOperator(name="route", max_tokens=3, temperature=0, **kwargs)
    return dag


def decision(trace: Trace) -> dict[str, Any]:
    """The router's own decision (a route group it chose notes its own after it)."""
    return next(e for e in trace["route"].events if e["event"] == "route")


async def test_routes_by_context_window_with_the_models_own_token_count(real_registry: Any) -> None:
    dag = router_flow(
        routes=[{"model": "smollm2-small", "when": {"fits_context": True}}], default="smollm2"
    )
    short_trace, long_trace = Trace(), Trace()
    short = await dag.arun("Name a colour.", registry=real_registry, trace=short_trace)
    long = await dag.arun(LONG, registry=real_registry, trace=long_trace)
    assert short.model == "smollm2-small" and long.model == "smollm2"
    small = scheduler_for(real_registry).chat_worker("smollm2-small")
    tokens = await small.prompt_tokens(ChatRequest.of("Name a colour."))
    assert decision(short_trace) == {
        "event": "route",
        "model": "smollm2-small",
        "rule": 0,
        "reason": f"needs {tokens + 3} tokens, window 256",
    }
    assert decision(long_trace) == {
        "event": "route",
        "model": "smollm2",
        "rule": "default",
        "reason": "no rule matched",
    }
    assert tokens < 20 < 256 < await small.prompt_tokens(ChatRequest.of(LONG))


async def test_routes_by_prompt_length_bounds(real_registry: Any) -> None:
    dag = router_flow(
        routes=[{"model": "smollm2", "when": {"min_prompt_tokens": 100}}], default="smollm2-small"
    )
    assert (await dag.arun(LONG, registry=real_registry)).model == "smollm2"
    assert (await dag.arun("Hi", registry=real_registry)).model == "smollm2-small"


RULES = [
    {"model": "smollm2-small", "when": {"regex": r"\bdef\b|```"}},
    {"model": "chat", "when": {"keywords": ["refund", "invoice"]}},
    {"model": "sized", "when": {"tags": {"tier": "gold"}}},
    {"model": "smollm2", "when": {"structured": True}},
]


@pytest.mark.parametrize(
    ("request_", "rule", "model", "reason"),
    [
        (
            {"messages": [{"role": "user", "content": "Fix: def f(): return"}]},
            0,
            "smollm2-small",
            r"matches /\bdef\b|```/",
        ),
        (
            {"messages": [{"role": "user", "content": "Where is my REFUND?"}]},
            1,
            "chat",
            "keyword 'refund'",
        ),
        (
            {"messages": [{"role": "user", "content": "Hello"}], "metadata": {"tier": "gold"}},
            2,
            "sized",
            "tags tier='gold'",
        ),
        (
            {
                "messages": [{"role": "user", "content": "A colour as JSON."}],
                "max_tokens": 24,
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {
                        "name": "c",
                        "schema": {
                            "type": "object",
                            "properties": {"c": {"enum": ["red", "blue"]}},
                            "required": ["c"],
                        },
                    },
                },
            },
            3,
            "smollm2",
            "structured output",
        ),
        (
            {"messages": [{"role": "user", "content": "Hello"}], "metadata": {"tier": "free"}},
            "default",
            "smollm2-small",
            "no rule matched",
        ),
    ],
    ids=["regex", "keywords", "tags", "structured", "default"],
)
async def test_routes_by_the_first_rule_that_holds(
    real_registry: Any, request_: dict[str, Any], rule: Any, model: str, reason: str
) -> None:
    dag = router_flow(routes=RULES, default="smollm2-small")
    trace = Trace()
    answer = await dag.arun(request_, registry=real_registry, trace=trace)
    assert decision(trace) == {"event": "route", "model": model, "rule": rule, "reason": reason}
    assert answer.model == {"chat": "smollm2", "sized": "smollm2-small"}.get(model, model)
    if model == "sized":  # a route group: its own decision follows the router's
        inner = [e for e in trace["route"].events if e["event"] == "route"][1]
        assert inner["model"] == "smollm2-small" and inner["reason"].endswith("window 256")


async def test_structured_output_asked_of_the_router_reaches_the_chosen_model(
    real_registry: Any,
) -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    with DAG("json") as dag:
        (
            PromptOperator("Is the sky blue? {{ q }}", name="prompt")
            >> RouterOperator(
                [{"model": "smollm2", "when": {"structured": True}}],
                default="smollm2-small",
                name="route",
                json_schema=schema,
                max_tokens=16,
                temperature=0,
            )
        )
    trace = Trace()
    answer = await dag.arun({"q": "Answer as JSON."}, registry=real_registry, trace=trace)
    assert decision(trace)["model"] == "smollm2"
    assert isinstance(json.loads(answer.text)["ok"], bool)


async def test_a_classifier_model_labels_the_request(real_registry: Any) -> None:
    labels = ["code", "chat"]
    dag = router_flow(
        routes=[
            {"model": "smollm2", "when": {"label": "code"}},
            {"model": "smollm2-small", "when": {"label": "chat"}},
        ],
        classifier={"model": "smollm2", "labels": labels},
        default="smollm2",
    )
    trace = Trace()
    await dag.arun(
        "Write a Python function that adds two numbers.", registry=real_registry, trace=trace
    )
    events = trace["route"].events
    [classified] = [e for e in events if e["event"] == "route_classifier"]
    assert classified["model"] == "smollm2"
    assert classified["label"] in labels  # which one is up to a 135M model
    route = decision(trace)
    expected = {"code": "smollm2", "chat": "smollm2-small"}[classified["label"]]
    assert route["model"] == expected
    assert route["reason"] == f"classified as {classified['label']!r}"


async def test_a_streaming_router_streams_from_the_chosen_model(real_registry: Any) -> None:
    trace = Trace()
    dag = router_flow(
        routes=[{"model": "smollm2-small", "when": {"keywords": ["colour"]}}],
        default="smollm2",
        stream=True,
    )
    chunks = [c async for c in dag.astream("Name a colour.", registry=real_registry, trace=trace)]
    assert chunks and {c.model for c in chunks} == {"smollm2-small"}
    assert trace["route"].events[0]["reason"] == "keyword 'colour'"


async def test_no_rule_and_no_default_fails_naming_the_router(real_registry: Any) -> None:
    dag = router_flow(routes=[{"model": "smollm2", "when": {"keywords": ["never"]}}])
    with pytest.raises(NodeFailed, match="node 'route' failed") as err:
        await dag.arun("hello", registry=real_registry)
    cause = err.value.__cause__
    assert isinstance(cause, InputError)  # a run-time refusal of this input, not a FlowError
    assert not isinstance(cause, FlowError)
    assert re.search(r"router 'route': no rule matched and there is no default model", str(cause))


async def test_a_rule_whose_regex_backtracks_without_bound_refuses_the_input(
    real_registry: Any,
) -> None:
    """The regex runs on the caller's text: with Python's re this prompt held the
    event loop for ages; the match is stopped and the input refused (a 422)."""
    routes = [{"model": "smollm2", "when": {"regex": r"^(a|aa)+$"}}]
    dag = router_flow(routes=routes, default="smollm2-small")
    with pytest.raises(NodeFailed, match="node 'route' failed") as err:
        await dag.arun("a" * 40 + "!", registry=real_registry)
    cause = err.value.__cause__
    assert isinstance(cause, InputError)
    assert re.search(r"^router 'route' rule 0: regex /\^\(a\|aa\)\+\$/ took more", cause.message)
    assert str(cause).startswith("flow 'route', node 'route': router 'route' rule 0")


@pytest.mark.parametrize(
    ("kwargs", "message", "param"),
    [
        ({}, "give at least one route or a default model", None),
        (
            {"routes": [{"model": "a", "when": {"regx": "x"}}]},
            "unknown field 'regx' in routes.0.when; did you mean 'regex'?",
            "routes.0.when.regx",
        ),
        (
            {"routes": [{"model": "a", "when": {"regex": "("}}]},
            "parameter 'routes.0.when.regex': invalid regex '('",
            "routes.0.when.regex",
        ),
        (
            {"default": "a", "classifier": {"model": "c", "labels": ["only"]}},
            "parameter 'classifier.labels': list should have at least 2 items",
            "classifier.labels",
        ),
    ],
)
def test_bad_rules_are_refused_when_the_node_is_made(
    kwargs: dict[str, Any], message: str, param: str | None
) -> None:
    with pytest.raises(FlowError, match="^node 'r': " + re.escape(message)) as caught:
        RouterOperator(name="r", **kwargs)
    assert (caught.value.node, caught.value.param) == ("r", param)


def test_routes_round_trip_through_params() -> None:
    op = RouterOperator(
        [{"model": "a", "when": {"keywords": ["x"]}}],
        default="b",
        stream=True,
        max_tokens=3,
        name="r",
    )
    assert op.params() == {
        "routes": [{"model": "a", "when": {"keywords": ["x"]}}],
        "default": "b",
        "stream": True,
        "max_tokens": 3,
    }
