"""Stream operators: turn a value into a stream, a stream into a value, or one
stream into another. Streams are async iterators consumed lazily: a chunk
reaches the end of the flow before its source has produced the next one.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable, Iterable
from contextlib import aclosing
from typing import Any, Generic, TypeVar

from smmf_flow.dag.context import RunContext
from smmf_flow.dag.operator import Operator, overrides
from smmf_flow.dag.ports import (
    Signature,
    declared,
    is_stream,
    signature_of,
    stream_of,
    type_arguments,
)
from smmf_flow.errors import FlowError, InputError

_MISSING: Any = object()
IN = TypeVar("IN")
OUT = TypeVar("OUT")


def _declared(op: Operator, generic: type, stream_in: bool, stream_out: bool) -> tuple[Any, Any]:
    """The (input, output) ports a subclass of ``generic[IN, OUT]`` declares
    (AWEL's form), streams where the operator takes or gives one."""
    args = type_arguments(type(op), generic)
    if len(args) != 2:
        return Any, Any
    item_in, item_out = args
    return (
        stream_of(item_in) if stream_in else item_in,
        stream_of(item_out) if stream_out else item_out,
    )


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def iterate(items: Iterable[Any] | AsyncIterable[Any]) -> AsyncGenerator[Any, None]:
    """The items of a sync or async iterable, as a stream. Closing the stream
    closes an async source too, so an abandoned stream frees what it holds."""
    if not isinstance(items, AsyncIterable):
        for item in items:
            yield item
        return
    iterator = aiter(items)
    try:
        async for item in iterator:
            yield item
    finally:
        closer = getattr(iterator, "aclose", None)
        if closer is not None:
            await closer()


class StreamifyOperator(Operator, Generic[IN, OUT]):
    """Value → stream. ``fn(value)`` returns an iterable or async iterable, or
    override ``async def streamify(self, value)`` as an async generator."""

    kind = "streamify"

    def __init__(self, fn: Callable[[Any], Any] | None = None, **options: Any) -> None:
        self.fn = fn
        super().__init__(**options)

    def ports(self) -> Signature:
        if self.fn is None:
            sig = signature_of(self.streamify)
            return declared(sig, *_declared(self, StreamifyOperator, False, True))
        sig = signature_of(self.fn)
        out = sig.output if is_stream(sig.output) else AsyncIterator[Any]
        return Signature(sig.inputs, sig.variadic, out)

    def params(self) -> dict[str, Any]:
        return {} if self.fn is None else {"fn": self.fn}

    async def streamify(self, value: Any) -> AsyncIterator[Any]:
        produced = await _maybe_await(self.fn(value)) if self.fn else value
        async with aclosing(iterate(produced)) as items:
            async for item in items:
                yield item

    async def execute(self, ctx: RunContext, *inputs: Any) -> AsyncIterator[Any]:
        return self.streamify(*inputs)


class UnstreamifyOperator(Operator, Generic[IN, OUT]):
    """Stream → value. ``fn(list_of_chunks)`` (default: the list itself), or
    override ``async def unstreamify(self, stream)``."""

    kind = "unstreamify"

    def __init__(self, fn: Callable[[list[Any]], Any] | None = None, **options: Any) -> None:
        self.fn = fn
        super().__init__(**options)

    def ports(self) -> Signature:
        out = signature_of(self.fn).output if self.fn else list[Any]
        sig = Signature((AsyncIterator[Any],), False, out)
        if self.fn is None and overrides(self, UnstreamifyOperator, "unstreamify"):
            sig = sig._replace(output=signature_of(self.unstreamify).output)
            return declared(sig, *_declared(self, UnstreamifyOperator, True, False))
        return sig

    def params(self) -> dict[str, Any]:
        return {} if self.fn is None else {"fn": self.fn}

    async def unstreamify(self, stream: AsyncIterator[Any]) -> Any:
        chunks = [chunk async for chunk in stream]
        return await _maybe_await(self.fn(chunks)) if self.fn else chunks

    async def execute(self, ctx: RunContext, *inputs: Any) -> Any:
        return await self.unstreamify(inputs[0])


class TransformStreamOperator(Operator, Generic[IN, OUT]):
    """Stream → stream. ``fn(chunk)`` maps each chunk (sync or async), or override
    ``async def transform_stream(self, stream)`` as an async generator."""

    kind = "transform_stream"

    def __init__(self, fn: Callable[[Any], Any] | None = None, **options: Any) -> None:
        if fn is None and not overrides(self, TransformStreamOperator, "transform_stream"):
            raise FlowError(
                "TransformStreamOperator needs fn or a transform_stream() override",
                node=options.get("name"),
                param="fn",
            )
        self.fn = fn
        super().__init__(**options)

    def ports(self) -> Signature:
        if self.fn is None:
            sig = signature_of(self.transform_stream)
            sig = Signature(
                (sig.inputs[0] if sig.inputs else AsyncIterator[Any],), False, sig.output
            )
            return declared(sig, *_declared(self, TransformStreamOperator, True, True))
        sig = signature_of(self.fn)
        chunk_in = sig.inputs[0] if sig.inputs else Any
        return Signature((stream_of(chunk_in),), False, stream_of(sig.output))

    def params(self) -> dict[str, Any]:
        return {} if self.fn is None else {"fn": self.fn}

    async def transform_stream(self, stream: AsyncIterator[Any]) -> AsyncIterator[Any]:
        fn = self.fn
        assert fn is not None  # __init__ refuses a transform without fn or an override
        is_async = inspect.iscoroutinefunction(fn)
        async for chunk in stream:
            yield (await fn(chunk)) if is_async else fn(chunk)

    async def execute(self, ctx: RunContext, *inputs: Any) -> AsyncIterator[Any]:
        return self.transform_stream(inputs[0])


class ReduceStreamOperator(Operator, Generic[IN, OUT]):
    """Stream → value by folding: ``reduce_function(accumulated, chunk)`` (or an
    overridden ``async def reduce(self, accumulated, chunk)``, AWEL's form); the
    first chunk starts the fold unless ``initial`` is given."""

    kind = "reduce_stream"

    def __init__(
        self,
        reduce_function: Callable[[Any, Any], Any] | None = None,
        *,
        initial: Any = _MISSING,
        **options: Any,
    ) -> None:
        if reduce_function is None and not overrides(self, ReduceStreamOperator, "reduce"):
            raise FlowError(
                "ReduceStreamOperator needs reduce_function or a reduce() override",
                node=options.get("name") or options.get("task_name"),
                param="reduce_function",
            )
        if reduce_function is not None and not callable(reduce_function):
            raise FlowError(
                f"ReduceStreamOperator needs a callable, got {reduce_function!r}",
                node=options.get("name") or options.get("task_name"),
                param="reduce_function",
            )
        self.reduce_function = reduce_function
        self.initial = initial
        super().__init__(**options)

    def ports(self) -> Signature:
        sig = signature_of(self.reduce if self.reduce_function is None else self.reduce_function)
        chunk = sig.inputs[1] if len(sig.inputs) > 1 else Any
        sig = Signature((stream_of(chunk),), False, sig.output)
        return declared(sig, *_declared(self, ReduceStreamOperator, True, False))

    def params(self) -> dict[str, Any]:
        args: dict[str, Any] = {"reduce_function": self.reduce_function}
        return args if self.initial is _MISSING else {**args, "initial": self.initial}

    async def reduce(self, accumulated: Any, chunk: Any) -> Any:
        """Override in a subclass instead of passing ``reduce_function``."""
        raise NotImplementedError  # never called: __init__ refuses a reduce without one

    async def execute(self, ctx: RunContext, *inputs: Any) -> Any:
        fold = self.reduce if self.reduce_function is None else self.reduce_function
        acc = self.initial
        async for chunk in inputs[0]:
            acc = chunk if acc is _MISSING else await _maybe_await(fold(acc, chunk))
        if acc is _MISSING:
            raise InputError(
                "the stream was empty and no initial value was given; give "
                "the reduce an initial value"
            )
        return acc


__all__ = [
    "ReduceStreamOperator",
    "StreamifyOperator",
    "TransformStreamOperator",
    "UnstreamifyOperator",
]
