"""Typed ports: what an operator takes and gives, and whether one can feed another.

Types come from type hints (or explicit declarations) and are compared when an
edge is made, so ``a >> b`` fails at once when ``a``'s output cannot feed ``b``.
The check is deliberately forgiving where Python's types are vague (``Any``,
type variables, unknown typing forms pass) and strict where a mistake is
certain: a stream fed to a node that takes a value, ``str`` into ``int``.
"""

from __future__ import annotations

import collections.abc as abc
import inspect
import types
import typing
from typing import Any, Union, get_args, get_origin

_UNIONS = (Union, types.UnionType)
_STREAM_ORIGINS = (abc.AsyncIterator, abc.AsyncIterable, abc.AsyncGenerator)
_NUMERIC = {int: (float, complex), float: (complex,), bool: (int, float, complex)}


def is_stream(tp: Any) -> bool:
    """Whether ``tp`` is an async iterator/iterable/generator type."""
    return (get_origin(tp) or tp) in _STREAM_ORIGINS


def stream_of(item: Any) -> Any:
    """``AsyncIterator[item]`` for an item type known only at run time."""
    return types.GenericAlias(abc.AsyncIterator, (item,))


def _base(tp: Any) -> Any:
    origin = get_origin(tp) or tp
    if origin in _STREAM_ORIGINS:
        return abc.AsyncIterator
    return origin


def _unwrap(tp: Any) -> Any:
    while get_origin(tp) is typing.Annotated:
        tp = get_args(tp)[0]
    if tp is None:
        return type(None)
    return tp


def compatible(src: Any, dst: Any) -> bool:
    """Whether a value of type ``src`` may be passed where ``dst`` is expected."""
    src, dst = _unwrap(src), _unwrap(dst)
    if src is Any or dst is Any or dst is object or src is dst:
        return True
    if isinstance(src, typing.TypeVar) or isinstance(dst, typing.TypeVar):
        return True
    if get_origin(src) in _UNIONS:
        return all(compatible(member, dst) for member in get_args(src))
    if get_origin(dst) in _UNIONS:
        return any(compatible(src, member) for member in get_args(dst))
    if get_origin(src) is typing.Literal:
        return all(compatible(type(value), dst) for value in get_args(src))
    if get_origin(dst) is typing.Literal:
        return False
    s_base, d_base = _base(src), _base(dst)
    if not (isinstance(s_base, type) and isinstance(d_base, type)):
        return True
    try:
        related = issubclass(s_base, d_base) or d_base in _NUMERIC.get(s_base, ())
    except TypeError:  # some typing forms refuse issubclass; give them the benefit of doubt
        return True
    if not related:
        return False
    s_args, d_args = get_args(src), get_args(dst)
    if s_args and d_args and len(s_args) == len(d_args):
        return all(
            a is Ellipsis or b is Ellipsis or compatible(a, b)
            for a, b in zip(s_args, d_args, strict=True)
        )
    return True


def type_name(tp: Any) -> str:
    """A short readable name: ``str``, ``list[int]``, ``AsyncIterator[str]``."""
    tp = _unwrap(tp)
    if tp is Any:
        return "Any"
    if isinstance(tp, type) and not get_args(tp):
        return tp.__name__
    text = repr(tp)
    for prefix in ("typing.", "collections.abc."):
        text = text.replace(prefix, "")
    return text


class Signature(typing.NamedTuple):
    """Ports read from a callable: one type per positional input, whether the
    inputs are variadic (``*args``), and the output type."""

    inputs: tuple[Any, ...]
    variadic: bool
    output: Any


def signature_of(fn: Any, *, skip_first: bool = False) -> Signature:
    """Read input and output types from ``fn``'s type hints (``Any`` where absent).

    Positional parameters are the inputs (``skip_first`` leaves out the first,
    an operator's ``ctx``); one with a default after the first ends them.

    A coroutine function's output is what it returns after ``await``; an async
    generator function's output is a stream of what it yields.
    """
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return Signature((Any,), False, Any)
    hints = _type_hints(fn)
    params = list(sig.parameters.values())
    if skip_first and params:
        params = params[1:]
    inputs: list[Any] = []
    variadic = False
    for p in params:
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            if p.default is not p.empty and inputs:
                break
            inputs.append(hints.get(p.name, Any))
        elif p.kind is p.VAR_POSITIONAL:
            inputs.append(hints.get(p.name, Any))
            variadic = True
            break
    output = hints.get("return", Any)
    target = inspect.unwrap(fn)
    if inspect.isasyncgenfunction(target) and not is_stream(output):
        output = abc.AsyncIterator[Any] if output is Any else output
    return Signature(tuple(inputs), variadic, output)


def type_arguments(cls: type, generic: type) -> tuple[Any, ...]:
    """The types a subclass fixed for ``generic``'s type parameters:
    ``class Double(MapOperator[int, int])`` gives ``(int, int)``; () if none."""
    for klass in cls.__mro__:
        for base in klass.__dict__.get("__orig_bases__", ()):
            origin = get_origin(base)
            if isinstance(origin, type) and issubclass(origin, generic):
                args = get_args(base)
                if args and not any(isinstance(a, typing.TypeVar) for a in args):
                    return args
    return ()


def _vague(tp: Any) -> bool:
    return tp is Any or (is_stream(tp) and get_args(tp) in ((), (Any,)))


def declared(sig: Signature, input: Any = Any, output: Any = Any) -> Signature:
    """``sig`` with the declared ``input`` (first port) and ``output`` types put
    where its hints say nothing (no hint, ``Any``, a bare ``AsyncIterator``):
    AWEL declares ports as ``MapOperator[IN, OUT]``, not always as hints."""
    inputs = sig.inputs
    if input is not Any and (not inputs or _vague(inputs[0])):
        inputs = (input, *inputs[1:])
    out = output if output is not Any and _vague(sig.output) else sig.output
    return Signature(inputs, sig.variadic, out)


def _type_hints(fn: Any) -> dict[str, Any]:
    """``fn``'s resolved type hints. A hint that cannot be resolved (a name
    imported only under ``TYPE_CHECKING``, such as ``ctx: RunContext``) counts as
    absent, without hiding the hints that can be."""
    try:
        return typing.get_type_hints(fn)
    except Exception:
        pass
    try:
        raw = inspect.get_annotations(fn)
    except Exception:  # not a function, class or module: no hints to read
        return {}
    namespace = getattr(inspect.unwrap(fn), "__globals__", {})
    hints: dict[str, Any] = {}
    for name, hint in raw.items():
        holder = types.SimpleNamespace(__annotations__={name: hint})
        try:
            hints[name] = typing.get_type_hints(holder, globalns=namespace)[name]
        except Exception:
            continue
    return hints


__all__ = [
    "Signature",
    "compatible",
    "declared",
    "is_stream",
    "signature_of",
    "stream_of",
    "type_arguments",
    "type_name",
]
