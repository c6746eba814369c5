"""``InputOperator`` and ``InputSource``: where a run's data comes from.

A DAG's root nodes get the run's input directly, so an ``InputOperator`` is only
needed to name the entry point or to take data from somewhere else: a fixed
value, an iterable (which becomes a stream), or a callable of the run input.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from typing import Any, Generic, TypeVar

from smmf_flow.dag.context import RunContext
from smmf_flow.dag.operator import Operator
from smmf_flow.dag.ports import Signature, signature_of, type_arguments
from smmf_flow.dag.stream_operators import iterate
from smmf_flow.errors import FlowError

OUT = TypeVar("OUT")


class InputSource:
    """Produces a root value from the run's input."""

    output_type: Any = Any
    #: whether ``read`` uses the run's input (AWEL: the call's data)
    reads_input: bool = True

    async def read(self, input: Any) -> Any:
        return input

    @staticmethod
    def from_data(data: Any) -> InputSource:
        """Always the same value, whatever the run's input."""
        return _DataSource(data)

    @staticmethod
    def from_iterable(items: Iterable[Any] | AsyncIterable[Any]) -> InputSource:
        """A stream of the items (sync or async iterable), read lazily."""
        return _IterableSource(items)

    @staticmethod
    def from_callable(fn: Callable[..., Any] | None = None) -> InputSource:
        """``fn(input)`` (or ``fn()`` if it takes no argument); may be async.
        Without ``fn`` (AWEL's form), the run's input itself."""
        return InputSource() if fn is None else _CallableSource(fn)


class _DataSource(InputSource):
    reads_input = False

    def __init__(self, data: Any) -> None:
        self.data = data
        self.output_type = type(data)

    async def read(self, input: Any) -> Any:
        return self.data


class _IterableSource(InputSource):
    output_type = AsyncIterator[Any]
    reads_input = False

    def __init__(self, items: Iterable[Any] | AsyncIterable[Any]) -> None:
        self.items = items

    async def read(self, input: Any) -> AsyncIterator[Any]:
        return iterate(self.items)


class _CallableSource(InputSource):
    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        sig = signature_of(fn)
        self.takes_input = self.reads_input = bool(sig.inputs)
        self.output_type = sig.output

    async def read(self, input: Any) -> Any:
        value = self.fn(input) if self.takes_input else self.fn()
        return await value if inspect.isawaitable(value) else value


class InputOperator(Operator, Generic[OUT]):
    """A root node that hands the run's input (or its source's data) downstream.

    ``input_source=`` is AWEL's name for ``source=``."""

    kind = "input"

    def __init__(
        self,
        source: InputSource | None = None,
        *,
        input_source: InputSource | None = None,
        **options: Any,
    ) -> None:
        if source is not None and input_source is not None:
            raise FlowError(
                "InputOperator takes source= or input_source= (the same), not both",
                node=options.get("name") or options.get("task_name"),
                param="input_source",
            )
        self.source = source or input_source
        super().__init__(**options)

    @property
    def reads_call_data(self) -> bool:
        return self.source is None or self.source.reads_input

    def ports(self) -> Signature:
        declared = type_arguments(type(self), InputOperator)
        out = self.source.output_type if self.source else Any
        return Signature((Any,), False, declared[0] if declared and out is Any else out)

    def params(self) -> dict[str, Any]:
        return {} if self.source is None else {"source": self.source}

    async def execute(self, ctx: RunContext, *inputs: Any) -> Any:
        value = inputs[0] if inputs else None
        return value if self.source is None else await self.source.read(value)


__all__ = ["InputOperator", "InputSource"]
