"""Record what each AWEL program prints under DB-GPT's own AWEL.

Each ``programs/NAME.py`` imports from ``smmf_flow``; this script runs it with
that one import line turned back into ``from dbgpt.core.awel import`` under a
Python that has ``dbgpt`` (the peers' side venv), and writes its stdout to
``programs/NAME.expected``, which the tests compare smmf-flow's output with::

    python3 -m venv .venv-peers
    .venv-peers/bin/pip install -r benchmarks/requirements-peers.txt
    .venv-peers/bin/python tests/awel/record_expected.py        # or: --check

``--check`` compares instead of writing (exit 1 on a difference).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

PROGRAMS = Path(__file__).parent / "programs"
OURS = "from smmf_flow import"
AWEL = "from dbgpt.core.awel import"


def awel_form(source: str, name: str) -> str:
    """The program as AWEL users write it: only its import line differs."""
    if source.count(OURS) != 1 or "smmf_flow" in source.replace(OURS, ""):
        raise SystemExit(f"{name}: needs exactly one `{OURS}` line and no other smmf_flow use")
    return source.replace(OURS, AWEL)


def run_program(script: Path, workdir: Path) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with this Python in ``workdir`` (also its one argument)."""
    return subprocess.run(
        [sys.executable, str(script), str(workdir)],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def run_under_awel(program: Path, workdir: Path) -> str:
    script = workdir / program.name
    script.write_text(awel_form(program.read_text(), program.name))
    done = run_program(script, workdir)
    if done.returncode:
        raise SystemExit(f"{program.name} failed under dbgpt:\n{done.stderr}")
    return done.stdout


def main() -> int:
    check = "--check" in sys.argv[1:]
    differ = 0
    for program in sorted(PROGRAMS.glob("*.py")):
        with tempfile.TemporaryDirectory() as tmp:
            out = run_under_awel(program, Path(tmp))
        expected = program.with_suffix(".expected")
        if check:
            same = expected.exists() and expected.read_text() == out
            differ += not same
            print(f"{program.name}: {'same' if same else 'DIFFERS'}")
        else:
            expected.write_text(out)
            print(f"{program.name}: {len(out.splitlines())} lines recorded")
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main())
