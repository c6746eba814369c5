"""AWEL's names on smmf-flow: an AWEL program runs with only its import changed.

DB-GPT's AWEL (``dbgpt.core.awel``) and smmf-flow share the core names
(``DAG``, ``MapOperator``, ``JoinOperator``, ``BranchOperator``,
``ReduceStreamOperator``, ``InputOperator``, ``InputSource``), and every
smmf-flow operator takes AWEL's keywords (``task_name``, ``task_id``,
``can_skip_in_branch``), its subclass-by-method forms (``async def map``,
``reduce``, ``branches``, ...), its generic parameters (``MapOperator[int,
str]``, used as port types) and its calls (``call``, ``call_stream``,
``_blocking_call``; ``dag/awel_calls.py``). This module adds the names only
AWEL has: the abstract stream operators, ``BranchJoinOperator``, the input
sources that read AWEL's task context, and the empty-data markers.

It sits on the core, it does not fork it: the same runner (concurrency, typed
ports, traces) runs a ported program. Where the two differ (a join after a
branch), AWEL's calls and keywords give AWEL's semantics and smmf-flow's own
API keeps its own; the README's "Coming from AWEL" lists the differences.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

from smmf_flow.dag.awel_calls import EMPTY_DATA, SKIP_DATA, EmptyData, is_empty_data
from smmf_flow.dag.input_operator import InputSource
from smmf_flow.dag.join import JoinOperator
from smmf_flow.dag.operator import Operator, overrides
from smmf_flow.dag.stream_operators import (
    StreamifyOperator,
    TransformStreamOperator,
    UnstreamifyOperator,
    iterate,
)
from smmf_flow.errors import FlowError, InputError

IN = TypeVar("IN")
OUT = TypeVar("OUT")

#: a branch's predicate (AWEL's ``BranchFunc``)
BranchFunc = Callable[[Any], bool] | Callable[[Any], Awaitable[bool]]
#: where a branch sends its input: a node's name (AWEL's ``BranchTaskType``)
BranchTaskType = str


def _require(op: Operator, base: type[Operator], method: str, options: dict[str, Any]) -> None:
    """AWEL's abstract operators: a subclass must define ``method``."""
    if not overrides(op, base, method):
        raise FlowError(
            f"{type(op).__name__} subclasses {base.__name__} but defines no "
            f"`async def {method}(self, ...)`",
            node=options.get("name") or options.get("task_name"),
        )


class StreamifyAbsOperator(StreamifyOperator[IN, OUT]):
    """Value → stream: subclass it and write ``async def streamify(self, value)``
    as an async generator."""

    def __init__(self, **options: Any) -> None:
        _require(self, StreamifyAbsOperator, "streamify", options)
        super().__init__(**options)


class UnstreamifyAbsOperator(UnstreamifyOperator[IN, OUT]):
    """Stream → value: subclass it and write ``async def unstreamify(self, stream)``."""

    def __init__(self, **options: Any) -> None:
        _require(self, UnstreamifyAbsOperator, "unstreamify", options)
        super().__init__(**options)


class TransformStreamAbsOperator(TransformStreamOperator[IN, OUT]):
    """Stream → stream: subclass it and write ``async def transform_stream(self,
    stream)`` as an async generator."""

    def __init__(self, **options: Any) -> None:
        _require(self, TransformStreamAbsOperator, "transform_stream", options)
        super().__init__(**options)


def _first_not_empty(*inputs: Any) -> Any:
    for value in inputs:
        if not is_empty_data(value):
            return value
    raise InputError("every input of the join is empty: each parent was skipped")


class BranchJoinOperator(JoinOperator[OUT]):
    """The join after a branch: by default the first input a skipped branch did
    not leave empty; it always gets one input per parent (``SKIP_DATA`` for a
    skipped one)."""

    def __init__(
        self,
        combine_function: Callable[..., Any] | None = None,
        can_skip_in_branch: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(
            combine_function or _first_not_empty,
            can_skip_in_branch=can_skip_in_branch,
            **options,
        )


class TaskContext:
    """What an AWEL input source reads: the data of the call that started the run."""

    def __init__(self, data: Any) -> None:
        self.data = data

    @property
    def call_data(self) -> dict[str, Any] | None:
        """AWEL's shape: ``{"data": <call_data>}``, or None when the call gave none."""
        return None if is_empty_data(self.data) else {"data": self.data}


class BaseInputSource(InputSource):
    """AWEL's input source: subclass it and write ``_read_data(self, task_ctx)``.

    An iterator it returns becomes a stream (``streaming=True``/``False`` decides
    instead). A call without call_data may run it: it refuses one itself if it
    needs the data."""

    reads_input = False

    def __init__(self, streaming: bool | None = None) -> None:
        self.streaming = streaming

    def _read_data(self, task_ctx: TaskContext) -> Any:
        raise FlowError(f"{type(self).__name__} defines no _read_data(self, task_ctx)")

    async def read(self, input: Any) -> Any:
        data = self._read_data(TaskContext(input))
        streaming = self.streaming
        if streaming is None:
            streaming = isinstance(data, (Iterator, AsyncIterator))
        return iterate(data) if streaming else data


class SimpleInputSource(BaseInputSource):
    """Always ``data``, whatever the call gives (an iterator: as a stream)."""

    def __init__(self, data: Any, streaming: bool | None = None) -> None:
        super().__init__(streaming)
        self._data = data
        self._handed_out = False
        if streaming is False or not isinstance(data, (Iterator, AsyncIterator)):
            self.output_type = type(data)
        else:
            self.output_type = AsyncIterator[Any]

    def _read_data(self, task_ctx: TaskContext) -> Any:
        if isinstance(self._data, (Iterator, AsyncIterator)):  # one pass only, as in AWEL
            if self._handed_out:
                raise InputError(
                    "SimpleInputSource: its iterator was read by an earlier run; give "
                    "a list (read afresh each run) or a new source per run"
                )
            self._handed_out = True
        return self._data


class SimpleCallDataInputSource(BaseInputSource):
    """The call's data (``node.call(call_data=...)``); a call without it is refused."""

    reads_input = True

    def __init__(self) -> None:
        super().__init__()

    def _read_data(self, task_ctx: TaskContext) -> Any:
        if task_ctx.call_data is None:
            raise InputError(
                "SimpleCallDataInputSource: the call gave no call_data; pass "
                "node.call(call_data=...)"
            )
        return task_ctx.data


__all__ = [
    "EMPTY_DATA",
    "SKIP_DATA",
    "BaseInputSource",
    "BranchFunc",
    "BranchJoinOperator",
    "BranchTaskType",
    "EmptyData",
    "SimpleCallDataInputSource",
    "SimpleInputSource",
    "StreamifyAbsOperator",
    "TaskContext",
    "TransformStreamAbsOperator",
    "UnstreamifyAbsOperator",
    "is_empty_data",
]
