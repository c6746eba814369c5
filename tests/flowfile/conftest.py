"""Fixtures for the flow-file tests: YAML text → a built ``Flow``, and plugin
modules written into a temporary folder."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from smmf_flow.flowfile.flow import Flow, loads_flow


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """Session-wide, so that the session's real models serve every test."""
    return "asyncio"


@pytest.fixture
def flow_of(tmp_path: Path) -> Callable[..., Flow]:
    """``flow_of(yaml_text, **options)``: the text (dedented) loaded as ``flow.yaml`` in
    the temporary folder, where ``plugin_dir`` writes the flow's own modules."""

    def make(text: str, **options: object) -> Flow:
        return loads_flow(textwrap.dedent(text), file=str(tmp_path / "flow.yaml"), **options)  # type: ignore[arg-type]

    return make


@pytest.fixture
def plugin_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str, str], Path]]:
    """``plugin_dir(module_name, source)``: writes ``module_name.py`` into a temporary
    folder (which is then importable) and forgets the module afterwards."""
    written: list[str] = []
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(name: str, source: str) -> Path:
        path = tmp_path / f"{name}.py"
        path.write_text(textwrap.dedent(source), encoding="utf-8")
        written.append(name)
        return tmp_path

    yield write
    for name in written:
        sys.modules.pop(name, None)
