"""AWEL tutorial programs run on smmf-flow, each in its own process, and print
what they print under DB-GPT's AWEL (``*.expected``, recorded from ``dbgpt``
0.8.2 by ``record_expected.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from record_expected import AWEL, OURS, PROGRAMS, awel_form, run_program

PROGRAM_FILES = sorted(PROGRAMS.glob("*.py"))
PAGES = {
    "hello_world",  # getting started 1.1
    "how_works",  # 1.2 (visualize_dag)
    "custom_operator",  # 1.3
    "map_operator",  # basic syntax 2.1
    "reduce_operator",  # 2.2
    "join_operator",  # 2.3
    "branch_operator",  # 2.4
    "stream_operators",  # 2.5-2.7
    "input_operator",  # 2.8
    "call_and_call_stream",
}


def test_every_tutorial_page_has_a_program_and_its_expected_output() -> None:
    assert {p.stem for p in PROGRAM_FILES} == PAGES
    for program in PROGRAM_FILES:
        assert program.with_suffix(".expected").read_text().strip(), program.name


@pytest.mark.parametrize("program", PROGRAM_FILES, ids=lambda p: p.stem)
def test_program_differs_from_its_awel_form_only_in_the_import(program: Path) -> None:
    ours = program.read_text().splitlines()
    theirs = awel_form(program.read_text(), program.name).splitlines()
    changed = [(a, b) for a, b in zip(ours, theirs, strict=True) if a != b]
    assert len(changed) == 1
    assert changed[0][0].startswith(OURS) and changed[0][1].startswith(AWEL)


@pytest.mark.parametrize("program", PROGRAM_FILES, ids=lambda p: p.stem)
def test_program_prints_what_it_prints_under_awel(program: Path, tmp_path: Path) -> None:
    done = run_program(program, tmp_path)  # this Python: the project's venv
    assert done.returncode == 0, done.stderr
    assert done.stdout == program.with_suffix(".expected").read_text()
