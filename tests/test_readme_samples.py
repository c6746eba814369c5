"""Every ```python block of README.md runs as written: each in a fresh process, on
the real bundled models, with no network.

A sample runs from a folder that stands for the repository's root (its top-level
entries linked in), so the relative paths it names (``configs/...``,
``examples/docs``) are the checkout's and what it writes (``.smmf/rag``) stays in a
temporary folder. A block whose first line is ``# needs: smmf-flow serve`` is a
client of the server: the test starts ``smmf-flow serve`` (the default config) on
a free port, and that port replaces the sample's 8000. No block is skipped.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from server.conftest import free_port
from server.test_serve import SMMF, wait_for_health

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
NEEDS_SERVER = "# needs: smmf-flow serve"


def samples() -> list[tuple[int, str]]:
    """(line of the block's first code line, code) of every ```python block."""
    text = README.read_text(encoding="utf-8")
    return [
        (text.count("\n", 0, m.start(1)) + 1, m.group(1))
        for m in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M)
    ]


def environment() -> dict[str, str]:
    """The user's environment, less a model config of the test run's own."""
    env = {k: v for k, v in os.environ.items() if k != "SMMF_MODELS"}
    return {**env, "SMMF_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def server_port() -> Iterator[int]:
    port = free_port()
    server = subprocess.Popen(
        [*SMMF, "serve", "--port", str(port), "--log-level", "warning"],
        env=environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_health(f"http://127.0.0.1:{port}")
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture
def repo_root(tmp_path: Path) -> Path:
    """A folder whose entries are the checkout's top-level ones."""
    root = tmp_path / "root"
    root.mkdir()
    for entry in ROOT.iterdir():
        if not entry.name.startswith("."):
            (root / entry.name).symlink_to(entry)
    return root


def test_the_readme_has_its_samples() -> None:
    codes = [code for _, code in samples()]
    assert len(codes) >= 5
    assert sum(NEEDS_SERVER in code for code in codes) == 1


def cases() -> list[Any]:
    """One case per sample; those that open a model registry or talk to the server
    load real models (the ``models`` mark)."""
    return [
        pytest.param(
            line,
            code,
            id=f"README.md:{line}",
            marks=[pytest.mark.models] if "ModelRegistry" in code or NEEDS_SERVER in code else [],
        )
        for line, code in samples()
    ]


@pytest.mark.parametrize(("line", "code"), cases())
def test_a_readme_sample_runs(
    line: int, code: str, repo_root: Path, request: pytest.FixtureRequest
) -> None:
    if code.startswith(NEEDS_SERVER):
        port = request.getfixturevalue("server_port")
        code = code.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    script = repo_root.parent / f"readme_line_{line}.py"
    script.write_text(code, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=repo_root,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, f"README.md:{line}: {done.stderr[-3000:]}"
    if "print(" in code:
        assert done.stdout.strip(), f"README.md:{line} printed nothing"
