"""Stream operators: turn a value into a stream, a stream into a value, or one
stream into another. Streams are async iterators consumed lazily: a chunk
reaches the end of the flow before its source has produced the next one.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable, Iterable
from contextlib import aclosing
from typing import Any

from smmf_flow.dag.context import RunContext
from smmf_flow.dag.operator import Operator, overrides
from smmf_flow.dag.ports import Signature, is_stream, signature_of, stream_of
from smmf_flow.errors import FlowError, InputError

_MISSING: Any = object()


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


class StreamifyOperator(Operator):
    """Value → stream. ``fn(value)`` returns an iterable or async iterable, or
    override ``async def streamify(self, value)`` as an async generator."""

    kind = "streamify"

    def __init__(self, fn: Callable[[Any], Any] | None = None, **options: Any) -> None:
        self.fn = fn
        super().__init__(**options)

    def ports(self) -> Signature:
        if self.fn is None:
            return signature_of(self.streamify)
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


class UnstreamifyOperator(Operator):
    """Stream → value. ``fn(list_of_chunks)`` (default: the list itself), or
    override ``async def unstreamify(self, stream)``."""

    kind = "unstreamify"

    def __init__(self, fn: Callable[[list[Any]], Any] | None = None, **options: Any) -> None:
        self.fn = fn
        super().__init__(**options)

    def ports(self) -> Signature:
        out = signature_of(self.fn).output if self.fn else list[Any]
        if self.fn is None and overrides(self, UnstreamifyOperator, "unstreamify"):
            out = signature_of(self.unstreamify).output
        return Signature((AsyncIterator[Any],), False, out)

    def params(self) -> dict[str, Any]:
        return {} if self.fn is None else {"fn": self.fn}

    async def unstreamify(self, stream: AsyncIterator[Any]) -> Any:
        chunks = [chunk async for chunk in stream]
        return await _maybe_await(self.fn(chunks)) if self.fn else chunks

    async def execute(self, ctx: RunContext, *inputs: Any) -> Any:
        return await self.unstreamify(inputs[0])


class TransformStreamOperator(Operator):
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
            return Signature(
                (sig.inputs[0] if sig.inputs else AsyncIterator[Any],), False, sig.output
            )
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


class ReduceStreamOperator(Operator):
    """Stream → value by folding: ``reduce_function(accumulated, chunk)``; the
    first chunk starts the fold unless ``initial`` is given."""

    kind = "reduce_stream"

    def __init__(
        self, reduce_function: Callable[[Any, Any], Any], *, initial: Any = _MISSING, **options: Any
    ) -> None:
        self.reduce_function = reduce_function
        self.initial = initial
        super().__init__(**options)

    def ports(self) -> Signature:
        sig = signature_of(self.reduce_function)
        chunk = sig.inputs[1] if len(sig.inputs) > 1 else Any
        return Signature((stream_of(chunk),), False, sig.output)

    def params(self) -> dict[str, Any]:
        args: dict[str, Any] = {"reduce_function": self.reduce_function}
        return args if self.initial is _MISSING else {**args, "initial": self.initial}

    async def execute(self, ctx: RunContext, *inputs: Any) -> Any:
        acc = self.initial
        async for chunk in inputs[0]:
            acc = chunk if acc is _MISSING else await _maybe_await(self.reduce_function(acc, chunk))
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
