"""The README's "A first flow" section runs as written and prints what it says."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def first_flow_blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text[
        text.index("## A first flow") : text.index("\n## ", text.index("## A first flow"))
    ]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def run_block(code: str) -> tuple[list[str], dict[str, Any]]:
    """The lines the block prints, and the names it defines."""
    out, namespace = io.StringIO(), {"__name__": "readme"}
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(README), "exec"), namespace)
    return out.getvalue().splitlines(), namespace


def test_the_section_has_its_two_examples() -> None:
    assert len(first_flow_blocks()) == 2


def test_the_text_stats_flow_prints_its_report_and_trace() -> None:
    (report, states), _ = run_block(first_flow_blocks()[0])
    assert report == "4 words, longest: concurrently"
    assert states == str(dict.fromkeys(("split", "count", "longest", "report"), "succeeded"))


def test_the_custom_operator_takes_its_ports_from_execute() -> None:
    printed, namespace = run_block(first_flow_blocks()[1])
    assert printed == ["['HEY', 'HEY', 'HEY']"]
    repeat = namespace["echo"].node("repeat")
    assert (repeat.input_types, repeat.output_type) == ((str,), list[str])


def without_awel_section(text: str) -> str:
    """The README less "Coming from AWEL", which shows AWEL's own ``call`` on purpose."""
    start = text.index("## Coming from AWEL")
    return text[:start] + text[text.index("\n## ", start + 1) :]


@pytest.mark.parametrize("line", ["trace=True", ".call("])
def test_the_readme_shows_one_way_to_run_and_trace(line: str) -> None:
    assert line not in without_awel_section(README.read_text(encoding="utf-8"))
