"""What the fuzz tests of flow files and model configs share: the ``smmf-flow``
command run in-process under a hang guard, the Hypothesis budget, and mutations
of parsed documents."""

from __future__ import annotations

import contextlib
import io
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from smmf_flow.cli import main

#: a modest, repeatable budget: the same examples on every run
FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)
#: an example that runs longer than this is a hang
HANG_S = 30
#: any text but lone surrogates (which no file can hold)
odd_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
MUTATIONS = ["replace", "delete", "nest", "add"]


@contextlib.contextmanager
def no_hang(seconds: float = HANG_S) -> Iterator[None]:
    """Fail, instead of hanging, when the body runs longer than ``seconds``."""

    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"hung for more than {seconds}s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def smmf_in_process(*args: str) -> tuple[int, str, str]:
    """``smmf-flow ARGS`` through ``smmf_flow.cli.main``: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    code: Any = 0
    with no_hang(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code
    return (code if isinstance(code, int) else 1), out.getvalue(), err.getvalue()


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


def paths_in(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside ``data`` (the root itself left out)."""
    found = [prefix] if prefix else []
    items = (
        data.items()
        if isinstance(data, dict)
        else enumerate(data)
        if isinstance(data, list)
        else ()
    )
    for key, value in items:
        found += paths_in(value, (*prefix, key))
    return found


def mutate(data: Any, pick: int, how: str, new: Any, deepest: int) -> Any:
    """``data`` with one value (``pick`` chooses which) replaced by ``new``,
    deleted, nested in up to ``deepest`` lists, or given a sibling (``how``, one of
    ``MUTATIONS``)."""
    paths = paths_in(data)
    path = paths[pick % len(paths)]
    parent: Any = data
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if how == "replace":
        parent[last] = new
    elif how == "delete":
        del parent[last]
    elif how == "nest":
        value = parent[last]
        for _ in range(len(repr(new)) * 17 % deepest):
            value = [value]
        parent[last] = value
    elif how == "add" and isinstance(parent, dict):
        parent[f"{last}_{str(new)[:8]}"] = new
    elif how == "add" and isinstance(parent, list):
        parent.insert(0, new)
    return data
