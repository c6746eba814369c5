"""The calculator tool is bounded: every expression is refused or computed quickly.

``((9**999)**999)**999`` used to run for ever inside the tool's worker thread with
the GIL held, so neither the tool timeout nor anything else in the process could
run. Now the expression's length and nesting, an exponent's size and the digits
of every whole number are checked before the work is done, and the refusal is a
message the model gets back.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import pytest

from smmf_flow import DAG
from smmf_flow.errors import InputError
from smmf_flow.operators import AgentOperator
from smmf_flow.operators.arithmetic import MAX_DEPTH, MAX_DIGITS, MAX_EXPRESSION_CHARS
from smmf_flow.operators.builtin_tools import calculator, evaluate

#: expressions that would take minutes to forever (or all memory) if computed
HOSTILE = {
    "((9**999)**999)**999": "'(9 ** 999) ** 999' would have about 952,335 digits; the "
    "calculator works with at most 1,000",
    "9**999**999": "'999 ** 999' would have about 2,997 digits",
    "9**9**9": "exponent 387420489 is too large (at most 1000)",
    "(10**999)*(10**999)*(10**999)": "'10 ** 999 * 10 ** 999' would have about 1,999 digits",
    "round(1, -10**9)": "round to -1000000000 digits is out of range",
    "2**1000*2**1000*2**1000*2**1000": "digits; the calculator works with at most 1,000",
}


def test_hostile_expressions_are_refused_before_any_work() -> None:
    """In a process of its own, so that a regression fails this test instead of
    hanging the test run (the bound is coarse: each refusal takes microseconds)."""
    program = (
        "import json, sys\n"
        "from smmf_flow.operators.builtin_tools import evaluate\n"
        "out = {}\n"
        "for expression in json.loads(sys.argv[1]):\n"
        "    try:\n"
        "        out[expression] = 'computed ' + str(evaluate(expression))[:20]\n"
        "    except Exception as exc:\n"
        "        out[expression] = f'{type(exc).__name__}: {exc}'\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program, json.dumps(list(HOSTILE))],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    refused = json.loads(done.stdout.strip().splitlines()[-1])
    for expression, message in HOSTILE.items():
        assert refused[expression].startswith("InputError: "), refused[expression]
        assert message in refused[expression]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        (
            "1 + " * 100 + "1",
            f"the expression is 401 characters long; the calculator takes at "
            f"most {MAX_EXPRESSION_CHARS}: split it into steps",
        ),
        ("-" * 80 + "1", f"the expression nests deeper than {MAX_DEPTH} levels"),
        ("2 ** 1001", "exponent 1001 is too large (at most 1000)"),
        ("7 ** 2000", "exponent 2000 is too large"),
        (
            "(10 ** 600) * (10 ** 600)",
            "'10 ** 600 * 10 ** 600' would have about 1,201 digits; "
            f"the calculator works with at most {MAX_DIGITS:,}",
        ),
        ("+".join(["(2**1000)**3*2**320"] * 4), "has more than 1,000 digits"),  # a sum grows
        ("1e308 * 10", "'1e+308 * 10' is too large to compute"),
        ("exp(1000)", "'exp(1000)' is too large to compute"),
        ("10 ** 999 / 3", "'10 ** 999 / 3' is too large to compute"),
        ("(-8) ** 0.5", "'(-8) ** 0.5' is not a real number"),
        ("sqrt(-1)", "'sqrt(-1)' cannot be computed: math domain error"),
        ("min()", "'min()' cannot be computed: min expected at least 1 argument"),
        ("round(2.5, 5000)", "round to 5000 digits is out of range (at most 1000 either way)"),
    ],
)
def test_each_bound_is_refused_with_a_message_that_names_it(expression: str, message: str) -> None:
    with pytest.raises(InputError, match=re.escape(message)):
        evaluate(expression)


def test_ordinary_arithmetic_stays_within_the_bounds() -> None:
    assert len(str(evaluate("9 ** 999"))) == 954
    assert evaluate("2 ** 1000 * 2 ** 1000") == 2**2000
    assert evaluate("+".join(["1"] * MAX_DEPTH)) == MAX_DEPTH  # a long flat sum
    assert evaluate("round(2.5678, 2) + max(1, 2, 3)") == pytest.approx(5.57)
    assert evaluate("2 ** -2") == 0.25
    assert calculator("1234 * 5678") == "7006652"


@pytest.mark.anyio
async def test_the_model_gets_the_refusal_back_and_the_agent_goes_on(scripted: Any) -> None:
    registry = scripted.registry(
        json.dumps({"tool": "calculator", "arguments": {"expression": "((9**999)**999)**999"}}),
        json.dumps({"tool": "calculator", "arguments": {"expression": "9 ** 9"}}),
        json.dumps({"final": "387420489"}),
    )
    with DAG("agent") as dag:
        AgentOperator("scripted", tools=[calculator], name="agent", max_steps=5)
    result = await dag.arun("What is ((9**999)**999)**999?", registry=registry)
    assert result.final == "387420489"
    assert result.steps[0].error == (
        "calculator failed: InputError: '(9 ** 999) ** 999' would have about 952,335 digits; "
        "the calculator works with at most 1,000"
    )
    assert result.steps[1].result == "387420489"
    fed_back = scripted.requests[1].messages[-1].content
    assert fed_back == f"Tool calculator failed: {result.steps[0].error}"
