"""``AgentOperator`` and ``@tool``: the loop's logic asserted exactly on a
scripted model (tool call → result → final, max steps, tool errors and
schema-breaking replies fed back, every step in the trace), the YAML agent
flow's tools from its plugin module, and the real SmolLM2 producing
schema-valid steps that end with a final answer within ``max_steps``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import anyio
import jsonschema
import pytest
from pydantic import AfterValidator, Field

from smmf_flow import DAG
from smmf_flow.dag import RunContext, Trace
from smmf_flow.errors import FlowError, InputError, NodeFailed, RunError
from smmf_flow.operators import AgentOperator, AgentResult, tool
from smmf_flow.operators.agent import FINAL_NUDGE
from smmf_flow.operators.builtin_tools import calculator, evaluate
from smmf_flow.operators.reply_schemas import final_schema

pytestmark = pytest.mark.anyio
FLOWS = Path(__file__).resolve().parents[2] / "flows"


@tool(timeout=0.2)
async def slow(seconds: float) -> str:
    """Wait, then say so."""
    await anyio.sleep(seconds)
    return "waited"


@tool
def area(width: Annotated[float, Field(gt=0)], height: float = 1.0) -> float:
    """The area of a rectangle."""
    return width * height


def _known(colour: str) -> str:
    if colour not in ("red", "green"):
        raise ValueError(f"no paint called {colour!r}")
    return colour


@tool
def paint(colour: Annotated[str, AfterValidator(_known)]) -> str:
    """Paint the wall (a check the JSON schema cannot express)."""
    return f"painted {colour}"


@tool
def run_id(ctx: RunContext, prefix: str) -> str:
    """The run's id, with a prefix."""
    return f"{prefix}{ctx.run_id}"


def call(name: str, **arguments: Any) -> str:
    return json.dumps({"tool": name, "arguments": arguments})


def final(text: str) -> str:
    return json.dumps({"final": text})


def agent_flow(model: str = "scripted", **kwargs: Any) -> DAG:
    kwargs.setdefault("tools", [calculator, area, slow, paint, run_id])
    with DAG("agent") as dag:
        AgentOperator(model, name="agent", **kwargs)
    return dag


async def run(dag: DAG, registry: Any, task: Any = "What is 6 * 7?") -> tuple[Any, Trace]:
    trace = Trace()
    try:
        return await dag.arun(task, registry=registry, trace=trace), trace
    except NodeFailed as exc:
        return exc, trace


def steps_in(trace: Trace) -> list[dict[str, Any]]:
    return [e for e in trace["agent"].events if e["event"] == "agent_step"]


async def test_tool_call_then_result_then_final(scripted: Any) -> None:
    registry = scripted.registry(call("calculator", expression="6 * 7"), final("It is 42."))
    result, trace = await run(agent_flow(), registry)
    assert isinstance(result, AgentResult)
    assert result.final == "It is 42." and result.invalid == 0
    assert [(s.n, s.kind, s.tool, s.result) for s in result.steps] == [
        (1, "tool", "calculator", "42"),
        (2, "final", None, None),
    ]
    assert result.steps[0].arguments == {"expression": "6 * 7"}
    first, second = scripted.requests
    assert [m.role for m in first.messages] == ["system", "user"]
    assert first.messages[1].content == "What is 6 * 7?"
    assert (
        "- calculator: Evaluate an arithmetic expression and return its value.\n"
        '  call: {"tool": "calculator", "arguments": {"expression": "(3 + 4) * 12 / 7"}}'
    ) in first.messages[0].content
    assert (
        '- area: The area of a rectangle.\n  call: {"tool": "area", "arguments": '
        '{"width": 1.5, "height": 1.0}}' in first.messages[0].content
    )
    assert [m.role for m in second.messages] == ["system", "user", "assistant", "user"]
    assert second.messages[2].content == call("calculator", expression="6 * 7")
    assert second.messages[3].content == "Result of calculator: 42"
    assert [(e["n"], e["kind"]) for e in steps_in(trace)] == [(1, "tool"), (2, "final")]
    assert all(e["model"] == "scripted" for e in steps_in(trace))


async def test_every_request_carries_the_step_schema(scripted: Any) -> None:
    registry = scripted.registry(final("done"))
    await run(agent_flow(), registry)
    schema = scripted.requests[0].response_format.schema
    valid = [
        json.loads(call("calculator", expression="1+1")),
        json.loads(final("ok")),
        json.loads(call("area", width=2.0)),
        json.loads(call("run_id", prefix="r-")),
    ]
    for step in valid:
        jsonschema.validate(step, schema)
    invalid = [
        {"tool": "calculator", "arguments": {}},  # argument missing
        {"tool": "rm", "arguments": {"path": "/"}},  # no such tool
        {"tool": "area", "arguments": {"width": "wide"}},  # wrong type
        {"tool": "area", "arguments": {"width": -3.0}},  # out of range
        {"final": "ok", "tool": "area"},  # both at once
        {"final": 'a "quoted" answer'},
    ]  # breaks the JSON string rule
    for step in invalid:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(step, schema)
    assert "ctx" not in json.dumps(schema)  # the run context is not an argument


async def test_tool_errors_are_fed_back_and_the_model_recovers(scripted: Any) -> None:
    registry = scripted.registry(
        call("calculator", expression="1 / 0"),  # the tool raises
        call("paint", colour="blue"),  # arguments fail validation
        call("slow", seconds=5.0),  # the tool's own 0.2 s timeout
        call("calculator", expression="import os"),  # refused by the evaluator
        call("area", width=3.0, height=2.0),
        final("6"),
    )
    result, trace = await run(agent_flow(max_steps=7), registry)
    assert result.final == "6"
    assert [s.error for s in result.steps[:4]] == [
        "calculator failed: ZeroDivisionError: division by zero",
        "invalid arguments for paint: colour: Value error, no paint called 'blue'",
        "slow timed out after 0.2s",
        "calculator failed: InputError: not an arithmetic expression (invalid syntax): 'import os'",
    ]
    assert result.steps[4].result == "6.0"
    fed_back = [m.content for m in scripted.requests[-1].messages if m.role == "user"][1:]
    assert fed_back == [f"Tool {s.tool} failed: {s.error}" for s in result.steps[:4]] + [
        "Result of area: 6.0"
    ]
    assert [e.get("error") is not None for e in steps_in(trace)] == [True] * 4 + [False] * 2


async def test_the_agents_tool_timeout_applies_to_every_tool(scripted: Any) -> None:
    registry = scripted.registry(call("slow", seconds=0.15), final("ok"))
    result, _ = await run(agent_flow(tool_timeout=0.05), registry)
    assert result.steps[0].error == "slow timed out after 0.05s"


async def test_schema_breaking_replies_are_fed_back_and_counted(scripted: Any) -> None:
    registry = scripted.registry(
        "The answer is 42.",  # not JSON at all
        json.dumps({"tool": "calculator"}),  # arguments missing
        json.dumps({"final": "42", "note": "extra"}),  # an extra key
        final("42"),
    )
    result, trace = await run(agent_flow(), registry)
    assert result.final == "42" and result.invalid == 3
    assert [s.kind for s in result.steps] == ["invalid", "invalid", "invalid", "final"]
    assert "invalid JSON" in result.steps[0].error
    assert (
        "'arguments' is a required property" in result.steps[1].error
        or "is not valid under any of the given schemas" in result.steps[1].error
    )
    nudges = [m.content for m in scripted.requests[-1].messages if m.role == "user"][1:]
    assert len(nudges) == 3
    assert all(n.startswith("Your reply was not valid: ") for n in nudges)
    assert [e["kind"] for e in steps_in(trace)] == ["invalid"] * 3 + ["final"]


async def test_the_last_step_allows_only_a_final_answer(scripted: Any) -> None:
    registry = scripted.registry(
        call("calculator", expression="1 + 1"), call("calculator", expression="2 + 1"), final("3")
    )
    result, trace = await run(agent_flow(max_steps=3), registry)
    assert result.final == "3"
    assert [(e["n"], e["allowed"], e["kind"]) for e in steps_in(trace)] == [
        (1, "any", "tool"),
        (2, "any", "tool"),
        (3, "final", "final"),
    ]
    last = scripted.requests[-1]
    assert last.response_format.schema == final_schema(400)
    assert last.messages[-1].content == "Result of calculator: 3" + FINAL_NUDGE
    assert scripted.requests[1].messages[-1].content == "Result of calculator: 2"


async def test_a_last_step_that_breaks_the_schema_fails_with_a_full_trace(scripted: Any) -> None:
    # only a backend without constrained decoding can write a tool call here
    registry = scripted.registry(*[call("calculator", expression=f"{i} + 1") for i in range(5)])
    error, trace = await run(agent_flow(max_steps=3), registry)
    assert isinstance(error, NodeFailed) and isinstance(error.__cause__, RunError)
    assert str(error.__cause__) == (
        "agent 'agent' made 3 steps without a final answer (tool calls: 2, invalid replies: "
        "1; last step: invalid): the last step allowed only a final answer, but the model's "
        "reply broke that schema; use a model or backend that enforces JSON schemas "
        "(llama.cpp, or response_format on an OpenAI-compatible API)"
    )
    assert len(scripted.requests) == 3 and len(scripted.replies) == 2
    assert [(e["n"], e["kind"], e["result"]) for e in steps_in(trace)] == [
        (1, "tool", "1"),
        (2, "tool", "2"),
        (3, "invalid", None),
    ]
    assert steps_in(trace)[2]["error"] == (
        "model 'scripted' returned JSON that breaks its schema: 'final' is a required property"
    )


async def test_tool_choice_required_keeps_the_final_answer_out_until_a_tool_worked(
    scripted: Any,
) -> None:
    registry = scripted.registry(
        final("42"),  # not allowed yet
        call("calculator", expression="6 *"),  # fails
        final("42"),  # still not allowed
        call("calculator", expression="6 * 7"),
        final("42"),
    )
    result, _ = await run(agent_flow(tool_choice="required"), registry)
    assert [s.kind for s in result.steps] == ["invalid", "tool", "invalid", "tool", "final"]
    offers_final = ['"final"' in json.dumps(r.response_format.schema) for r in scripted.requests]
    assert offers_final == [False, False, False, False, True]


async def test_a_group_name_routes_through_fallback_and_tools_get_the_run(scripted: Any) -> None:
    registry = scripted.registry(call("run_id", prefix="run-"), final("ok"))
    result, _ = await run(
        agent_flow("scripted-group", input_key="task"), registry, {"task": "Which run is this?"}
    )
    assert result.steps[0].result.startswith("run-") and len(result.steps[0].result) == 16
    assert result.steps[0].model == "scripted"


async def test_input_key_picks_the_task_and_a_missing_key_names_what_is_there(
    scripted: Any,
) -> None:
    keyed = AgentOperator("scripted", tools=[area], name="a", input_key="task")
    assert keyed.input_types == (Mapping[str, Any],)
    assert AgentOperator("scripted", tools=[area], name="b").input_types == (str,)
    registry = scripted.registry(final("ok"))
    error, _ = await run(agent_flow(input_key="task"), registry, {"question": "q", "n": 1})
    assert isinstance(error, NodeFailed) and isinstance(error.__cause__, InputError)
    assert str(error.__cause__) == (
        "flow 'agent', node 'agent': the input has no 'task' (the node's input_key); "
        "it has question, n"
    )


async def test_the_yaml_agent_flow_takes_its_tools_from_its_plugin_module(scripted: Any) -> None:
    from smmf_flow.flowfile.flow import load_flow

    flow = load_flow(FLOWS / "agent.yaml")
    node = flow.dag.node("solve")
    assert list(node.tools) == ["calculator", "docs_lookup"]
    assert node.params()["tools"] == [
        "smmf_flow.operators.builtin_tools:calculator",
        "smmf_flow.operators.builtin_tools:docs_lookup",
    ]
    assert node.input_key == "task" and node.input_types == (Mapping[str, Any],)
    # run it with the scripted model standing in for smollm2
    registry = scripted.registry(
        call("calculator", expression="17 * 23 + 4"), final("395"), also=("smollm2",)
    )
    result = await flow.arun({"task": "What is 17 * 23 + 4?"}, registry=registry)
    assert result.final == "395" and result.steps[0].result == "395"


def test_tools_need_types_and_a_description_and_unique_names() -> None:
    def untyped(x):  # type: ignore[no-untyped-def]
        """Something."""

    def undocumented(x: int) -> int:
        return x

    with pytest.raises(FlowError, match="parameter 'x' has no type hint"):
        tool(untyped)
    with pytest.raises(FlowError, match="give the tool a docstring or a description"):
        tool(undocumented)
    assert tool(undocumented, description="Echo.").description == "Echo."
    with pytest.raises(FlowError, match=r"^node 'a': two tools are named 'area'") as caught:
        AgentOperator(tools=[area, area], name="a")
    assert (caught.value.node, caught.value.param) == ("a", "tools")
    with pytest.raises(
        FlowError, match=r"^node 'a': parameter 'tools': list should have at least 1 item"
    ):
        AgentOperator(tools=[], name="a")
    with pytest.raises(
        FlowError,
        match=r"^node 'a': parameter 'max_steps': input should be greater than or equal to 1, "
        r"got 0",
    ):
        AgentOperator(tools=[area], max_steps=0, name="a")
    with pytest.raises(
        FlowError,
        match=r"^node 'a': parameter 'system': the system prompt "
        r"must contain \{tools\}",
    ):
        AgentOperator(tools=[area], system="Be brief.", name="a")
    assert area(2.0, 3.0) == 6.0  # a tool still calls like its function


def test_the_calculator_evaluates_arithmetic_and_nothing_else() -> None:
    assert evaluate("(3 + 4) * 12 / 7") == 12.0
    assert evaluate("2 ** 10 - sqrt(16) + abs(-1)") == 1021.0
    for bad in ("__import__('os')", "x + 1", "2 ** 100000", "'a' * 3"):
        with pytest.raises(InputError):
            evaluate(bad)


async def test_smollm2_takes_schema_valid_steps_and_ends_with_an_answer(real_registry: Any) -> None:
    # tool_choice="required": a 135M model otherwise answers at once from its own guess
    dag = agent_flow(
        "smollm2",
        tools=[calculator],
        max_steps=3,
        max_tokens=96,
        final_chars=120,
        tool_choice="required",
    )
    outcome, trace = await run(dag, real_registry, "Compute 1234 * 5678.")
    steps = steps_in(trace)
    assert isinstance(outcome, AgentResult), outcome  # the last step can only be a final
    assert 1 <= len(steps) <= 3
    assert [e["n"] for e in steps] == list(range(1, len(steps) + 1))
    assert all(e["model"] == "smollm2" for e in steps)
    # the grammar keeps every reply inside the schema: no step is invalid
    assert all(e["kind"] in ("tool", "final") for e in steps), steps
    assert steps[0]["kind"] == "tool"  # required: the final answer was not in the schema
    for e in steps:
        if e["kind"] == "tool":
            assert e["tool"] == "calculator" and set(e["arguments"]) == {"expression"}
            assert e["error"] is None and e["result"] == calculator(**e["arguments"])
    assert steps[-1]["kind"] == "final" and outcome.final.strip()
