"""The corpus of malformed flow files: each says, on its first line, where the
error must point and what it must say (``# expect: LINE:COL: text``), and
nothing may run. The place is in the error's fields, not only in its text.
Model names are checked against the packaged default config."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from smmf_flow.errors import FlowError
from smmf_flow.flowfile.flow import load_flow

ROOT = Path(__file__).resolve().parents[2]
BAD = sorted((Path(__file__).parent / "bad_flows").glob("*.yaml"))
EXPECT = re.compile(r"^# expect: (\d+):(\d+): (.+)$")


@pytest.fixture(scope="module")
def registry() -> Any:
    """The packaged default registry; only names are checked, so no pool ever starts
    and there is nothing to close."""
    from smmf_flow.models.registry import ModelRegistry

    return ModelRegistry.default()


def test_the_corpus_is_large_enough() -> None:
    assert len(BAD) >= 30


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_flow_is_refused_at_its_line(path: Path, registry) -> None:  # type: ignore[no-untyped-def]
    match = EXPECT.match(path.read_text(encoding="utf-8").splitlines()[0])
    assert match, f"{path.name} lacks its '# expect: LINE:COL: text' line"
    line, column, what = match.groups()
    with pytest.raises(FlowError) as caught:
        load_flow(path).check(registry)
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}:{column}: "), message
    assert what in message
    assert "\n" not in message
    assert (caught.value.file, caught.value.line, caught.value.column) == (
        str(path),
        int(line),
        int(column),
    )
