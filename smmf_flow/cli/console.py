"""Terminal output for the ``smmf-flow`` command: tables, JSON, the progress
line shown while models load, and secret redaction.

The progress line is drawn only when stderr is a terminal; piped output stays
plain, so scripts see the result and nothing else.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

import anyio

from smmf_flow.dag.context import RunContext
from smmf_flow.dag.trace import NodeRecord, Trace
from smmf_flow.runner.hooks import RunHook
from smmf_flow.runner.values import jsonable

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    """A plain aligned text table."""
    cells = [[str(c) for c in header]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def dumps(value: Any, *, indent: int | None = 2) -> str:
    return json.dumps(jsonable(value), indent=indent, ensure_ascii=False)


def human(value: Any) -> str:
    """How a run's output is printed for a person: the text of a model answer,
    a string as it is, data as JSON."""
    text = getattr(value, "text", None)
    if isinstance(text, str):
        return text
    if isinstance(value, str):
        return value
    return dumps(value)


def trace_table(trace: Trace, kinds: dict[str, str], width: int = 60) -> str:
    """The per-node table ``--trace`` prints; each event a node noted (a routing
    decision, a fallback) follows on its own line under the node."""
    records = list(trace)
    rows = []
    for rec in records:
        error = f"{type(rec.error).__name__}: {rec.error}" if rec.error else ""
        rows.append(
            [
                rec.name,
                kinds.get(rec.name, ""),
                rec.state.value,
                _ms(rec),
                rec.attempts or "",
                _cut(rec.output_repr, width),
                _cut(one_line(error), width),
            ]
        )
    lines = table(rows, ["node", "type", "state", "ms", "tries", "output", "error"]).splitlines()
    out = lines[:2]
    for rec, line in zip(records, lines[2:], strict=True):
        out.append(line)
        out += [f"  · {_event(event)}" for event in rec.events]
    return "\n".join(out)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _ms(rec: NodeRecord) -> str:
    return f"{rec.duration * 1000:.1f}" if rec.duration is not None else ""


def _event(event: dict[str, Any]) -> str:
    details = " ".join(
        f"{k}={_cut(one_line(str(v)), 48)}"
        for k, v in event.items()
        if k != "event" and v not in (None, "")
    )
    return f"{event.get('event')}: {details}" if details else str(event.get("event"))


def one_line(text: str) -> str:
    """``text`` on one line (multi-line messages from libraries joined with ' | ')."""
    return " | ".join(part.strip() for part in text.strip().splitlines() if part.strip())


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret value replaced by ``***``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


class Progress(RunHook):
    """A one-line status on a terminal while models load and nodes run.

    It listens to the registry's pool events (``on_event``) and to the run
    (as a ``RunHook``); ``stop()`` clears the line before output is printed.
    """

    def __init__(self, stream: TextIO | None = None, *, enabled: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.loading: dict[str, float] = {}
        self.running: dict[str, float] = {}
        self.done = False
        self._frame = 0

    # --- what is going on -------------------------------------------------------------

    def on_event(self, event: Any) -> None:
        key = f"{event.model}" + (f" [{event.instance}]" if event.instance else "")
        if event.kind == "loading":
            self.loading[key] = time.monotonic()
        elif event.kind in ("loaded", "load_failed"):
            self.loading.pop(key, None)

    def on_node_start(self, record: NodeRecord, ctx: RunContext) -> None:
        self.running[record.name] = time.monotonic()

    def on_node_end(self, record: NodeRecord, ctx: RunContext) -> None:
        self.running.pop(record.name, None)

    # --- drawing ----------------------------------------------------------------------

    def status(self) -> str:
        now = time.monotonic()
        if self.loading:
            name, since = next(iter(self.loading.items()))
            more = f" (+{len(self.loading) - 1})" if len(self.loading) > 1 else ""
            return f"loading model {name}{more} … {now - since:.1f}s"
        if self.running:
            names = ", ".join(self.running)
            since = min(self.running.values())
            return f"running {names} … {now - since:.1f}s"
        return "starting …"

    async def tick(self, interval: float = 0.1) -> None:
        """Redraw until ``stop()``; run it in a task group next to the run."""
        while self.enabled and not self.done:
            self._frame = (self._frame + 1) % len(SPINNER)
            self.stream.write(f"\r\x1b[2K{SPINNER[self._frame]} {self.status()}")
            self.stream.flush()
            await anyio.sleep(interval)

    def stop(self) -> None:
        if self.enabled and not self.done:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
        self.done = True


__all__ = ["Progress", "dumps", "human", "one_line", "redact", "table", "trace_table"]
