"""Every program in ``examples/`` runs as a user would run it, in its own process
on the real bundled models (outputs are checked for shape, never for facts)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run(name: str, *args: str, cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "SMMF_THREADS": "1", "PYTHONUNBUFFERED": "1"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_chain_runs_its_branches_concurrently(tmp_path: Path) -> None:
    out = run("chain.py", cwd=tmp_path).splitlines()
    assert out[0] == "7 words, longest: 'concurrently'"
    states = {line.split()[0]: line.split()[1] for line in out[1:]}
    assert states == {
        "words": "succeeded",
        "count": "succeeded",
        "longest": "succeeded",
        "report": "succeeded",
    }


@pytest.mark.models
def test_fallback_streams_from_the_model_that_answers(tmp_path: Path) -> None:
    out = run("fallback_stream.py", cwd=tmp_path)
    answer, *trace = out.strip().splitlines()
    assert answer.strip()
    assert "'event': 'fallback', 'model': 'remote'" in trace[0]
    assert "'event': 'span', 'model': 'smollm2'" in trace[-1]


@pytest.mark.models
def test_routing_sends_each_question_to_its_rule(tmp_path: Path) -> None:
    lines = run("routing.py", cwd=tmp_path).strip().splitlines()
    assert [line.split()[0] for line in lines] == ["coder", "small", "large"]


@pytest.mark.models
@pytest.mark.parametrize("question", ["Who designed the Varnholm lighthouse?"])
def test_rag_index_then_answer(tmp_path: Path, question: str) -> None:
    assert run("rag_index.py", cwd=tmp_path).strip()
    assert (tmp_path / ".smmf" / "rag").is_dir()
    answer = run("rag_answer.py", question, cwd=tmp_path).strip().splitlines()
    assert answer[0] == f"Q: {question}" and answer[1].startswith("A: ")
    shown = [line for line in answer[2:] if line.strip()]
    assert len(shown) == 3  # the passages, printed because the node asks for them
    assert any(line.strip().startswith("cited") for line in shown)


@pytest.mark.models
def test_agent_calculator_ends_with_a_final_answer(tmp_path: Path) -> None:
    lines = run("agent_calculator.py", cwd=tmp_path).strip().splitlines()
    assert lines[-1].startswith("final: ") and lines[-1] != "final: "
    assert 2 <= len(lines) <= 4 and lines[0].startswith("step 1: ")
