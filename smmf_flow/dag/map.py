"""``MapOperator``: one value in, one value out; and ``map_operator``, the
decorator that turns a plain function into a factory of map operators."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import anyio.to_thread

from smmf_flow.dag.context import RunContext
from smmf_flow.dag.operator import Operator, overrides
from smmf_flow.dag.ports import Signature, declared, signature_of, type_arguments
from smmf_flow.errors import FlowError

IN = TypeVar("IN")
OUT = TypeVar("OUT")


class MapOperator(Operator, Generic[IN, OUT]):
    """Apply a function (or an overridden ``async def map``) to the input.

    A sync function runs on the event loop: mark it ``blocking=True`` when it
    does I/O or heavy work, and it runs in a worker thread instead. A subclass
    of ``MapOperator[IN, OUT]`` (AWEL's form) has those types as its ports where
    its ``map`` has no hints.
    """

    kind = "map"

    def __init__(
        self,
        map_function: Callable[..., Any] | None = None,
        *,
        blocking: bool = False,
        **options: Any,
    ) -> None:
        if map_function is not None and not callable(map_function):
            raise FlowError(
                f"MapOperator needs a callable, got {map_function!r}",
                node=options.get("name"),
                param="map_function",
            )
        if map_function is None and not overrides(self, MapOperator, "map"):
            raise FlowError(
                "MapOperator needs a map_function or a map() override",
                node=options.get("name"),
                param="map_function",
            )
        self.map_function = map_function
        self.blocking = blocking
        self._is_async = inspect.iscoroutinefunction(map_function)
        self.inline = (
            map_function is not None
            and not self._is_async
            and not blocking
            and not overrides(self, MapOperator, "execute")
        )
        super().__init__(**options)

    def ports(self) -> Signature:
        sig = signature_of(self.map if self.map_function is None else self.map_function)
        return declared(sig, *type_arguments(type(self), MapOperator))

    def params(self) -> dict[str, Any]:
        args: dict[str, Any] = {"map_function": self.map_function} if self.map_function else {}
        return {**args, "blocking": True} if self.blocking else args

    async def map(self, *inputs: Any) -> Any:
        """Override in a subclass instead of passing ``map_function``."""
        raise NotImplementedError  # never called: __init__ refuses a map without one

    async def execute(self, ctx: RunContext, *inputs: Any) -> Any:
        fn = self.map_function
        if fn is None:
            return await self.map(*inputs)
        if self._is_async:
            return await fn(*inputs)
        if self.blocking:
            return await anyio.to_thread.run_sync(fn, *inputs)
        return fn(*inputs)


class MapOperatorFactory:
    """What ``@map_operator`` returns: call it (inside a DAG) to make a node."""

    def __init__(self, fn: Callable[..., Any], **defaults: Any) -> None:
        self.fn = fn
        self.defaults = defaults
        functools.update_wrapper(self, fn)

    def __call__(self, **options: Any) -> MapOperator[Any, Any]:
        merged = {"name": self.fn.__name__, **self.defaults, **options}
        return MapOperator(self.fn, **merged)


def map_operator(fn: Callable[..., Any] | None = None, **defaults: Any) -> Any:
    """Decorate a function so that calling it makes a ``MapOperator`` named after it.

    ``@map_operator`` or ``@map_operator(blocking=True, timeout=5)``.
    """
    if fn is None:
        return lambda f: MapOperatorFactory(f, **defaults)
    return MapOperatorFactory(fn, **defaults)


__all__ = ["MapOperator", "MapOperatorFactory", "map_operator"]
