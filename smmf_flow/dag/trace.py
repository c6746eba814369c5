"""The per-run trace: what happened to each node of one run.

Pass ``trace=Trace()`` to ``run``/``arun``/``astream`` and read it afterwards
(the return value never changes). A run keeps one ``NodeRecord`` per node: its
state, when it started and ended, its attempts, its error, events noted by the
node, and the input and output values. Short reprs of those values are made
only when asked for, so a trace costs a few hundred nanoseconds per node
instead of a repr per value.
"""

from __future__ import annotations

import reprlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

_repr = reprlib.Repr()
_repr.maxstring = 60
_repr.maxother = 60


class NodeState(StrEnum):
    """Where a node stands in one run."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


def short_repr(value: Any) -> str:
    """A repr short enough for a table cell; streams are shown as streams."""
    if isinstance(value, AsyncIterator):
        return "<stream>"
    return _repr.repr(value)


@dataclass(slots=True)
class NodeRecord:
    """What happened to one node in one run."""

    name: str
    state: NodeState = NodeState.PENDING
    started: float | None = None
    ended: float | None = None
    attempts: int = 0
    chunks: int | None = None
    error: BaseException | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    input: Any = None
    output: Any = None

    def note(self, event: str, **details: Any) -> None:
        """Add an event (a decision, a fallback, ...); an operator's ``noter`` is
        this bound method, so whoever holds the note can tell whose it is."""
        self.events.append({"event": event, **details})

    @property
    def duration(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return self.ended - self.started

    @property
    def input_repr(self) -> str:
        return short_repr(self.input)

    @property
    def output_repr(self) -> str:
        if self.chunks is not None:
            return f"<stream: {self.chunks} chunks>"
        return short_repr(self.output)

    def as_dict(self) -> dict[str, Any]:
        return {
            "node": self.name,
            "state": self.state.value,
            "started": self.started,
            "ended": self.ended,
            "duration": self.duration,
            "attempts": self.attempts,
            "input": self.input_repr,
            "output": self.output_repr,
            "error": None if self.error is None else f"{type(self.error).__name__}: {self.error}",
            "events": self.events,
        }


class Trace:
    """All node records of one run, in the order nodes were first touched."""

    def __init__(self) -> None:
        self.records: dict[str, NodeRecord] = {}

    def record(self, name: str) -> NodeRecord:
        rec = self.records.get(name)
        if rec is None:
            rec = self.records[name] = NodeRecord(name)
        return rec

    def __getitem__(self, name: str) -> NodeRecord:
        return self.records[name]

    def __iter__(self) -> Iterator[NodeRecord]:
        return iter(self.records.values())

    def __len__(self) -> int:
        return len(self.records)

    def states(self) -> dict[str, str]:
        return {name: rec.state.value for name, rec in self.records.items()}

    def as_dicts(self) -> list[dict[str, Any]]:
        return [rec.as_dict() for rec in self.records.values()]


__all__ = ["NodeRecord", "NodeState", "Trace", "short_repr"]
