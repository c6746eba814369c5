"""An agent always ends with an answer.

SmolLM2 under ``tool_choice: required`` used to call the same tool with the same
arguments until ``max_steps`` ran out and the run failed. Now the last step, and
every step after a repeated identical call, is constrained to ``{"final": ...}``
alone (a grammar on llama.cpp), and a repeated call is not run again. Exact on a
scripted model; on the real SmolLM2 with the shipped flows/agent.yaml and a task
that made it loop.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from smmf_flow import DAG
from smmf_flow.dag.trace import Trace
from smmf_flow.errors import NodeFailed
from smmf_flow.flowfile.flow import load_flow
from smmf_flow.operators import AgentOperator, AgentResult, tool
from smmf_flow.operators.agent import FINAL_NUDGE
from smmf_flow.operators.builtin_tools import calculator
from smmf_flow.operators.reply_schemas import final_schema

from .scripted import Script

pytestmark = pytest.mark.anyio
FLOWS = Path(__file__).resolve().parents[2] / "flows"
RUNS: list[str] = []


@tool
def count_words(text: str) -> int:
    """Count the words of a text."""
    RUNS.append(text)
    return len(text.split())


@pytest.fixture
def scripted(make_registry: Callable[[dict[str, Any]], Any]) -> Script:
    RUNS.clear()
    return Script(make_registry)


def call(name: str, **arguments: Any) -> str:
    return json.dumps({"tool": name, "arguments": arguments})


def final(text: str) -> str:
    return json.dumps({"final": text})


async def run(registry: Any, task: str = "How many words?", **agent: Any) -> tuple[Any, Trace]:
    agent.setdefault("tools", [calculator, count_words])
    with DAG("agent") as dag:
        AgentOperator("scripted", name="agent", **agent)
    trace = Trace()
    try:
        return await dag.arun(task, registry=registry, trace=trace), trace
    except NodeFailed as exc:
        return exc, trace


def steps_in(trace: Trace, node: str = "agent") -> list[dict[str, Any]]:
    return [e for e in trace[node].events if e["event"] == "agent_step"]


def offered(script: Script) -> list[str]:
    """Per model call, what its schema offered: tool calls, a final answer, or both."""
    out = []
    for request in script.requests:
        text = json.dumps(request.response_format.schema)
        out.append(
            {(True, True): "any", (True, False): "tool", (False, True): "final"}[
                '"tool"' in text, '"final"' in text
            ]
        )
    return out


async def test_a_repeated_call_is_not_run_again_and_the_next_step_must_answer(
    scripted: Script,
) -> None:
    registry = scripted.registry(
        call("count_words", text="a b c"), call("count_words", text="a b c"), final("three words")
    )
    result, trace = await run(registry, max_steps=6)
    assert isinstance(result, AgentResult) and result.final == "three words"
    assert RUNS == ["a b c"]  # the repeat was answered from the first call
    assert [(s.n, s.kind, s.result, s.repeated, s.allowed) for s in result.steps] == [
        (1, "tool", "3", False, "any"),
        (2, "tool", "3", True, "any"),
        (3, "final", None, False, "final"),
    ]
    assert offered(scripted) == ["any", "any", "final"]
    assert scripted.requests[2].response_format.schema == final_schema(400)
    assert scripted.requests[2].messages[-1].content == (
        "You already called count_words with these arguments, and calling it again gives "
        "the same. Result of count_words: 3" + FINAL_NUDGE
    )
    assert [e["repeated"] for e in steps_in(trace)] == [False, True, False]


async def test_calls_with_other_arguments_are_not_repeats(scripted: Script) -> None:
    registry = scripted.registry(
        call("count_words", text="a b"),
        call("count_words", text="a b c"),
        call("calculator", expression="2 + 3"),
        final("5"),
    )
    result, _ = await run(registry, max_steps=6)
    assert result.final == "5" and RUNS == ["a b", "a b c"]
    assert not any(s.repeated for s in result.steps)
    assert offered(scripted) == ["any"] * 4


async def test_the_last_step_is_a_final_answer_whatever_the_model_was_doing(
    scripted: Script,
) -> None:
    registry = scripted.registry(
        call("count_words", text="one"), call("count_words", text="one two"), final("two")
    )
    result, _ = await run(registry, max_steps=3)
    assert result.final == "two"
    assert offered(scripted) == ["any", "any", "final"]
    assert scripted.requests[2].messages[-1].content.endswith(FINAL_NUDGE)
    # earlier requests are not nudged: the nudge goes only to the final-only step
    assert not scripted.requests[1].messages[-1].content.endswith(FINAL_NUDGE)


async def test_one_step_means_answer_at_once(scripted: Script) -> None:
    registry = scripted.registry(final("at once"))
    result, _ = await run(registry, max_steps=1, tool_choice="required")
    assert result.final == "at once" and offered(scripted) == ["final"]
    assert scripted.requests[0].messages[-1].content == "How many words?" + FINAL_NUDGE


async def test_required_keeps_tool_calls_until_one_works_then_a_repeat_ends_it(
    scripted: Script,
) -> None:
    registry = scripted.registry(
        final("guess"),  # not allowed yet
        call("calculator", expression="7 * 6"),  # works
        call("calculator", expression="7 * 6"),  # a repeat
        final("42"),
    )
    result, _ = await run(registry, max_steps=6, tool_choice="required")
    assert result.final == "42"
    assert offered(scripted) == ["tool", "tool", "any", "final"]
    assert [s.kind for s in result.steps] == ["invalid", "tool", "tool", "final"]
    assert result.steps[2].repeated and result.steps[2].result == "42"


async def test_required_and_a_repeated_failing_call_still_ends_on_the_last_step(
    scripted: Script,
) -> None:
    # no call has worked, so a repeat does not open the final answer early (required);
    # the last step does, so the run ends with an answer anyway
    registry = scripted.registry(
        call("calculator", expression="1 / 0"),
        call("calculator", expression="1 / 0"),
        call("calculator", expression="1 / 0"),
        final("cannot divide by zero"),
    )
    result, _ = await run(registry, max_steps=4, tool_choice="required")
    assert result.final == "cannot divide by zero"
    assert offered(scripted) == ["tool", "tool", "tool", "final"]
    assert [(s.repeated, s.error) for s in result.steps[:3]] == [
        (False, "calculator failed: ZeroDivisionError: division by zero")
    ] + [(True, "calculator failed: ZeroDivisionError: division by zero")] * 2
    assert scripted.requests[3].messages[-1].content == (
        "You already called calculator with these arguments, and calling it again gives "
        "the same. Tool calculator failed: calculator failed: ZeroDivisionError: division "
        "by zero" + FINAL_NUDGE
    )


async def test_under_auto_a_repeated_failing_call_also_ends_it(scripted: Script) -> None:
    registry = scripted.registry(
        call("calculator", expression="1 / 0"),
        call("calculator", expression="1 / 0"),
        final("no answer"),
    )
    result, _ = await run(registry, max_steps=6)
    assert result.final == "no answer" and offered(scripted) == ["any", "any", "final"]


@pytest.mark.models
async def test_smollm2_on_the_shipped_agent_flow_ends_with_an_answer(
    make_registry: Callable[[dict[str, Any]], Any],
    llama_entry: Callable[..., dict[str, Any]],
    minilm_entry: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """On main this task made SmolLM2 call ``calculator`` with the same expression
    four times and the run failed after max_steps."""
    monkeypatch.setenv("SMMF_RAG_STORE", str(tmp_path / "no-store"))  # docs_lookup: nothing
    registry = make_registry(
        {
            "models": {
                "default_llm": "smollm2",
                "default_embedding": "minilm",
                "llms": [llama_entry("smollm2")],
                "embeddings": [minilm_entry],
            }
        }
    )
    flow = load_flow(FLOWS / "agent.yaml")
    solve = flow.dag.node("solve")
    assert solve.tool_choice == "required" and solve.max_steps == 4
    trace = Trace()
    result = await flow.arun({"task": "Compute 1234 * 5678."}, registry=registry, trace=trace)
    steps = steps_in(trace, "solve")
    assert isinstance(result, AgentResult) and result.final.strip()
    assert 1 <= len(steps) <= 4 and steps[-1]["kind"] == "final"
    assert all(e["kind"] in ("tool", "final") for e in steps), steps  # the grammar held
    assert steps[0]["kind"] == "tool" and steps[0]["allowed"] == "tool"  # required
    for before, after in itertools.pairwise(steps):
        if before["repeated"]:
            assert after["allowed"] == "final"
    calls = [e for e in steps if e["kind"] == "tool" and not e["repeated"]]
    for e in calls:  # each distinct call ran once, with its real result
        if e["tool"] == "calculator" and e["error"] is None:
            assert e["result"] == calculator(**e["arguments"])
