"""Ports: which output types may feed which input types, and reading them from hints."""

from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Iterable,
    Mapping,
    Sequence,
)
from typing import Annotated, Any, Literal, Optional, TypeVar, Union

import pytest

from smmf_flow.dag.ports import Signature, compatible, is_stream, signature_of, type_name

T = TypeVar("T")


class Animal:
    pass


class Dog(Animal):
    pass


@pytest.mark.parametrize(
    ("src", "dst", "ok"),
    [
        # plain and numeric types
        (int, int, True),
        (int, float, True),
        (int, complex, True),
        (bool, int, True),
        (float, int, False),
        (str, int, False),
        (int, str, False),
        (Dog, Animal, True),
        (Animal, Dog, False),
        (str, object, True),
        # generics
        (list[int], Sequence[int], True),
        (list[str], Sequence[int], False),
        (list[int], list[str], False),
        (list, Sequence[int], True),
        (dict[str, int], Mapping[str, int], True),
        (dict[str, int], Mapping[str, str], False),
        (tuple[int, ...], Sequence[int], True),
        (tuple[int, ...], tuple[str, ...], False),
        # Optional and Union
        (int, Optional[int], True),
        (None, Optional[int], True),
        (Optional[int], Optional[int], True),
        (Optional[int], float | None, True),
        (Optional[int], int, False),
        (str, int | str, True),
        (Union[int, str], int | str, True),
        (int | str, str, False),
        (int | bool, float, True),
        # Any and type variables pass both ways
        (Any, int, True),
        (int, Any, True),
        (Any, AsyncIterator[str], True),
        (T, int, True),
        (str, T, True),
        (list[T], list[int], True),
        # Literal and Annotated
        (Literal["a", "b"], str, True),
        (Literal[1], str, False),
        (str, Literal["a"], False),
        (Annotated[int, "meta"], int, True),
        (str, Annotated[int, "meta"], False),
        # streams
        (AsyncIterator[str], AsyncIterator[str], True),
        (AsyncIterator[Any], AsyncIterator[str], True),
        (AsyncGenerator[str, None], AsyncIterator[str], True),
        (AsyncIterator[str], AsyncIterable[str], True),
        (AsyncIterator[int], AsyncIterator[str], False),
        (AsyncIterator[str], str, False),
        (AsyncIterator[str], list[str], False),
        (AsyncIterator[str], Iterable[str], False),
        (str, AsyncIterator[str], False),
    ],
)
def test_compatible(src: Any, dst: Any, ok: bool) -> None:
    assert compatible(src, dst) is ok


@pytest.mark.parametrize(
    ("tp", "streams"),
    [
        (AsyncIterator[int], True),
        (AsyncIterable[str], True),
        (AsyncGenerator[int, None], True),
        (AsyncIterator, True),
        (list[int], False),
        (Iterable[int], False),
        (str, False),
        (Any, False),
    ],
)
def test_is_stream(tp: Any, streams: bool) -> None:
    assert is_stream(tp) is streams


@pytest.mark.parametrize(
    ("tp", "name"),
    [
        (str, "str"),
        (Any, "Any"),
        (None, "NoneType"),
        (list[int], "list[int]"),
        (dict[str, list[int]], "dict[str, list[int]]"),
        (AsyncIterator[str], "AsyncIterator[str]"),
        (Optional[int], "Optional[int]"),
        (int | None, "int | None"),
    ],
)
def test_type_name(tp: Any, name: str) -> None:
    assert type_name(tp) == name


def _two(x: int, y: str) -> float:
    return 0.0


def _star(*xs: int) -> int:
    return 0


def _defaults(x, y=1):  # type: ignore[no-untyped-def]
    return x


def _kw_only(x: int, *, k: int = 0) -> str:
    return ""


def _nothing() -> int:
    return 1


async def _coro(x: int) -> str:
    return ""


async def _typed_gen(x: int) -> AsyncIterator[str]:
    yield ""


async def _untyped_gen(x):  # type: ignore[no-untyped-def]
    yield x


def _forward(x: "Missing") -> int:  # type: ignore[name-defined] # noqa: F821
    return 1


@pytest.mark.parametrize(
    ("fn", "expected"),
    [
        (_two, Signature((int, str), False, float)),
        (_star, Signature((int,), True, int)),
        (_defaults, Signature((Any,), False, Any)),
        (_kw_only, Signature((int,), False, str)),
        (_nothing, Signature((), False, int)),
        (_coro, Signature((int,), False, str)),
        (_typed_gen, Signature((int,), False, AsyncIterator[str])),
        (_untyped_gen, Signature((Any,), False, AsyncIterator[Any])),
        (_forward, Signature((Any,), False, int)),  # only the unresolvable hint is lost
        (len, Signature((Any,), False, Any)),
    ],
)
def test_signature_of(fn: Any, expected: Signature) -> None:
    assert signature_of(fn) == expected


def test_signature_of_a_method_skips_self() -> None:
    class Node:
        def work(self, text: str) -> int:
            return len(text)

    assert signature_of(Node.work, skip_first=True) == Signature((str,), False, int)
    assert signature_of(Node().work) == Signature((str,), False, int)
