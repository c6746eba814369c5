"""The command on real models: the README's main job streams a real SmolLM2
answer; ``models status`` loads a model and reports it healthy; a fallback run's
trace shows the fall-through. Answers are checked for shape, never for facts."""

from __future__ import annotations

import os
import subprocess

import pytest

from .conftest import COMMAND, ROOT, smmf

pytestmark = pytest.mark.models  # every command here loads SmolLM2 in its process


def test_main_job_streams_a_real_answer() -> None:
    """``smmf-flow run flows/chat.yaml --input question=...``: tokens arrive while the
    model is still generating, and the whole answer ends with a newline."""
    process = subprocess.Popen(
        [str(COMMAND), "run", "flows/chat.yaml", "--input", "question=What is a river?"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if k != "SMMF_MODELS"},
    )
    try:
        assert process.stdout is not None
        first = process.stdout.read1(64)  # type: ignore[attr-defined]
        still_running = process.poll() is None
        rest, errors = process.communicate(timeout=600)
    finally:
        process.kill()
    answer = (first + rest).decode()
    assert process.returncode == 0, errors.decode()
    assert first.strip() and still_running  # streamed, not printed at the end
    assert len(answer.split()) > 5 and answer.endswith("\n")
    assert errors.decode() == ""  # piped: no progress line, no library progress bars


def test_models_status_loads_and_reports() -> None:
    done = smmf("models", "status", "smollm2")
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith("smollm2"))
    assert row.split()[:5] == ["smollm2", "llama.cpp", "ready", "smollm2#0", "healthy"]


def test_fallback_trace_shows_the_fall_through() -> None:
    done = smmf("run", "flows/fallback.yaml", "--input", "question=Name a colour.", "--trace")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
    lines = done.stderr.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("answer "))
    assert lines[at].split()[:3] == ["answer", "fallback", "succeeded"]
    assert lines[at + 1].startswith(
        "  · fallback: model=offline attempt=1 error=BackendConnectionError kind=unavailable"
    )
    assert lines[at + 2] == "  · fallback_served: model=smollm2"
