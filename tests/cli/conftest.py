"""Running the installed ``smmf-flow`` command in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMMAND = Path(sys.executable).with_name("smmf-flow")


def smmf(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``smmf-flow ARGS`` and return the finished process (text output)."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("SMMF_MODELS", None) if env is None or "SMMF_MODELS" not in env else None
    return subprocess.run(
        [str(COMMAND), *args],
        cwd=cwd or ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    """``write(name, text)``: a dedented file in a temporary folder."""

    def make(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return path

    return make
