"""The jinja2 sandbox that flow expressions and prompt templates run in.

``make_sandbox()`` is the one place such an environment is made. On top of
jinja2's ``ImmutableSandboxedEnvironment`` (no ``_private`` or internal
attributes, no changing lists and dicts in place) it closes two more doors:

* no attribute of a class: ``str.format``, taken from the class rather than
  from a string, formats ``{0.__globals__}`` outside the sandbox's formatter;
* no single operation may build something huge. Each is checked *before* the
  work is done, and refused with an ``InputError`` (the data a run was given
  made it too big) that names the limit:

  ==========================================  ======================================
  operation                                   limit
  ==========================================  ======================================
  ``*`` on a string or list: ``"x" * n``,      the result 1,000,000 characters or
  ``[0] * n`` (nested lists counted through)   items (``MAX_ITEMS``)
  ``*`` and ``**`` on integers:               the result 14,000 bits, ~4,200 digits
  ``9 ** (9 ** 9)``                           (``MAX_INT_BITS``; Python will not
                                              print more than 4,300 digits anyway)
  ``%``, the ``format`` filter and            widths and precisions together
  ``str.format`` on a string                  ``MAX_ITEMS``; no ``*`` width and no
                                              nested ``{}`` in a spec
  string methods ``center ljust rjust zfill   the result ``MAX_ITEMS``
  expandtabs join replace``; filters
  ``center indent join replace wordwrap
  batch slice``
  ``round`` (filter and helper)               1,000 digits (``MAX_DIGITS``)
  ``tojson`` / ``json`` indent                16 spaces (``MAX_INDENT``)
  ``range``                                   100,000 items (``MAX_RANGE``)
  ==========================================  ======================================

  ``lipsum`` is gone. Note that jinja2's ``**`` groups from the left:
  ``9 ** 9 ** 9`` is ``(9 ** 9) ** 9``, a 77-digit number, and is allowed.

These bound one operation. A template's loops may still repeat bounded
operations (each ``range`` at most ``MAX_RANGE`` times); the limits are a guard
against a runaway expression, not a quota.

One lookup differs from jinja2's: dot access on a mapping prefers its item, so
``input.keys`` is the input named ``keys``, not ``dict.keys`` (jinja2 prefers the
Python attribute: a flow with an input named ``keys``, ``values`` or ``items``
printed a bound method). It returns only what ``input['keys']`` returns anyway.
"""

from __future__ import annotations

import functools
import math
import re
import string
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from typing import Any, TypeGuard

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from smmf_flow.errors import InputError

#: characters of a string, or items of a list, that one operation may make
MAX_ITEMS = 1_000_000
#: bits of an integer that ``*`` or ``**`` may make (about 4,200 decimal digits)
MAX_INT_BITS = 14_000
#: items of a ``range``
MAX_RANGE = 100_000
#: digits ``round`` may round to
MAX_DIGITS = 1_000
#: spaces of a JSON indent
MAX_INDENT = 16

_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[a-zA-Z%]")
_NUMBER = re.compile(r"\d+")


def limit_error(
    what: str, amount: int, limit: int = MAX_ITEMS, unit: str = "characters or items"
) -> InputError:
    """The error for an operation past one of the limits above."""
    return InputError(
        f"{what} would need {amount:,} {unit}; the limit is {limit:,} "
        "(flow expressions and templates are bounded: see smmf_flow.sandbox)"
    )


def quoted(source: str, limit: int = 80) -> str:
    """An expression's or template's source as a message quotes it (a long one cut)."""
    text = repr(source)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def evaluation_error(what: str, source: str, error: Exception) -> InputError:
    """The error for the expression or template ``source`` (``what`` it is: an
    ``expression``, a node's ``template``) that raised ``error`` on a run's data,
    ``(input.q | int) // 0`` on ``q=0``: the data made it fail, so it is an
    ``InputError`` (an HTTP 422) naming both, not an internal error. Callers let
    smmf-flow's own errors (a model call's) pass unchanged."""
    return InputError(f"{what} {quoted(source)} failed: {type(error).__name__}: {error}")


def check_size(size: int, what: str) -> None:
    """Refuse an operation that would make more than ``MAX_ITEMS`` characters/items."""
    if size > MAX_ITEMS:
        raise limit_error(what, size)


def size_of(value: Any) -> int:
    """Characters and items in ``value``: a string counts its characters, a list or
    tuple the sizes of its items, anything else (an empty string too) one. The
    count stops soon after it passes ``MAX_ITEMS``."""
    total, stack = 0, [value]
    while stack and total <= MAX_ITEMS:
        item = stack.pop()
        if isinstance(item, (list, tuple)) and item:
            stack.extend(item)
        else:
            total += max(len(item), 1) if isinstance(item, (str, bytes)) else 1
    return total


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int)


def _times(left: Any, right: Any) -> Any:
    if _is_int(left) and _is_int(right):
        bits = left.bit_length() + right.bit_length()
        if bits > MAX_INT_BITS:
            raise limit_error("'*'", bits, MAX_INT_BITS, "bits")
    elif _is_int(right) or _is_int(left):
        seq, count = (left, right) if _is_int(right) else (right, left)
        if isinstance(seq, (str, bytes, list, tuple)) and seq:
            check_size(size_of(seq) * max(count, 0), "'*'")
    return left * right


def _power(base: Any, exponent: Any) -> Any:
    if _is_int(base) and _is_int(exponent) and exponent > 0 and abs(base) > 1:
        bits = exponent * math.log2(abs(base))
        if bits > MAX_INT_BITS:
            raise limit_error("'**'", math.ceil(bits), MAX_INT_BITS, "bits")
    try:
        return base**exponent
    except OverflowError:
        raise InputError(f"'**': {base!r} ** {exponent!r} is too large for a float") from None


def printf_size(template: str | bytes) -> int:
    """Characters a ``%`` format of ``template`` may make, besides its values."""
    text = template.decode("latin-1") if isinstance(template, bytes) else template
    total = len(text)
    for width, precision in _PRINTF.findall(text):
        if "*" in (width, precision):
            raise InputError(
                "a '*' width or precision in a '%' format is not allowed in "
                "flow expressions and templates; write the number"
            )
        total += int(width or 0) + int(precision or 0)
    return total


def format_size(template: str) -> int:
    """Characters ``template.format(...)`` may make, besides its values."""
    total = len(template)
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError:
        return total  # the call itself reports the bad format
    for _, _, spec, _ in fields:
        if spec and "{" in spec:
            raise InputError(
                "a nested '{}' in a format spec is not allowed in flow "
                "expressions and templates; write the width"
            )
        total += sum(int(n) for n in _NUMBER.findall(spec or ""))
    return total


def _modulo(left: Any, right: Any) -> Any:
    if isinstance(left, (str, bytes)):
        check_size(printf_size(left), "'%' formatting")
    return left % right


def _occurrences(text: str | bytes, part: Any) -> int | None:
    """How often ``part`` occurs in ``text``; None when it is not the same kind of string."""
    if isinstance(text, str) and isinstance(part, str):
        return text.count(part)
    if isinstance(text, bytes) and isinstance(part, bytes):
        return text.count(part)
    return None


def _replaced_size(text: str | bytes, old: Any, new: Any, count: Any = -1) -> int:
    hits = _occurrences(text, old)
    if hits is None or not isinstance(new, type(text)):  # the call fails on its own
        return len(text)
    if not old:  # "" matches between every two characters
        hits = len(text) + 1
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    return len(text) + hits * max(len(new) - len(old), 0)


def _joined_size(separator: Any, items: list[Any]) -> int:
    parts = sum(len(x) if isinstance(x, (str, bytes)) else len(str(x)) for x in items)
    return parts + len(str(separator)) * max(len(items) - 1, 0)


def _width(text: Any, width: Any = 0, *_: Any) -> int:
    return max(len(text), width if _is_int(width) else 0)


def _tabs(text: str | bytes, tabsize: Any = 8) -> int:
    tabs = text.count(b"\t") if isinstance(text, bytes) else text.count("\t")
    return len(text) + tabs * (tabsize if _is_int(tabsize) else 0)


#: what a string method's result may measure, from the string and the call's arguments
_METHOD_SIZES: dict[str, Callable[..., int]] = {
    "center": _width,
    "ljust": _width,
    "rjust": _width,
    "zfill": _width,
    "expandtabs": _tabs,
    "join": lambda sep, items: _joined_size(sep, items),
    "replace": _replaced_size,
}


def _indented(s: Any, width: Any = 4, *_: Any, **__: Any) -> int:
    text = str(s)
    pad = width if _is_int(width) else len(str(width))
    return len(text) + (text.count("\n") + 1) * pad


def _wrapped(
    s: Any,
    width: Any = 79,
    break_long_words: Any = True,
    wrapstring: Any = None,
    *_: Any,
    **__: Any,
) -> int:
    text = str(s)
    breaks = len(text) // max(width if _is_int(width) else 1, 1) + 1
    return len(text) + breaks * len(str(wrapstring or "\n"))


def check_digits(digits: Any, what: str) -> None:
    """Refuse rounding to more than ``MAX_DIGITS`` digits (``round(5, -10**9)``
    would compute ``10 ** 10**9``)."""
    if _is_int(digits) and abs(digits) > MAX_DIGITS:
        raise limit_error(what, abs(digits), MAX_DIGITS, "digits")


def check_indent(indent: Any, what: str) -> None:
    """Refuse a JSON indent of more than ``MAX_INDENT`` spaces."""
    if _is_int(indent) and indent > MAX_INDENT:
        raise limit_error(what, indent, MAX_INDENT, "spaces of indent")


def _rounded(value: Any, precision: Any = 0, *_: Any, **__: Any) -> int:
    check_digits(precision, "the 'round' filter")
    return 0


def _json_indent(value: Any, indent: Any = None) -> int:
    check_indent(indent, "the 'tojson' filter")
    return 0


#: what a filter's result may measure, from its arguments (the value first)
_FILTER_SIZES: dict[str, Callable[..., int]] = {
    "center": lambda value, width=80: _width(str(value), width),
    "indent": _indented,
    "format": lambda value, *args, **kwargs: printf_size(str(value)),
    "join": lambda value, d="", attribute=None: _joined_size(d, value),
    "replace": lambda s, old, new, count=None: _replaced_size(
        str(s), old, new, -1 if count is None else count
    ),
    "wordwrap": _wrapped,
    "batch": lambda value, linecount, fill_with=None: (
        len(value) + (linecount if fill_with is not None and _is_int(linecount) else 0)
    ),
    "slice": lambda value, slices, fill_with=None: len(value) + (slices if _is_int(slices) else 0),
    "round": _rounded,
    "tojson": _json_indent,
}


def _listed(value: Any) -> Any:
    """A one-pass iterable as a list (so it can be measured and still be used)."""
    if isinstance(value, Iterator) or (
        isinstance(value, Iterable) and not isinstance(value, Sized)
    ):
        return list(value)
    return value


def _measure(what: str, estimate: Callable[..., int], *args: Any, **kwargs: Any) -> None:
    try:
        size = estimate(*args, **kwargs)
    except TypeError:
        return  # wrong arguments: the call itself says so
    check_size(size, what)


def _guarded_filter(
    name: str, fn: Callable[..., Any], estimate: Callable[..., int]
) -> Callable[..., Any]:
    skip = 1 if getattr(fn, "jinja_pass_arg", None) is not None else 0

    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if len(args) > skip:
            args = (*args[:skip], _listed(args[skip]), *args[skip + 1 :])
        _measure(f"the '{name}' filter", estimate, *args[skip:], **kwargs)
        return fn(*args, **kwargs)

    return guarded


def _range(*args: int) -> range:
    items = range(*args)
    if len(items) > MAX_RANGE:
        raise limit_error("range", len(items), MAX_RANGE, "items")
    return items


class FlowSandbox(ImmutableSandboxedEnvironment):
    """The sandbox of flow expressions and templates (see the module docstring)."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.binop_table = {**self.binop_table, "*": _times, "**": _power, "%": _modulo}
        self.globals["range"] = _range
        self.globals.pop("lipsum", None)
        for name, estimate in _FILTER_SIZES.items():
            self.filters[name] = _guarded_filter(name, self.filters[name], estimate)

    def getattr(self, obj: Any, attribute: str) -> Any:
        """A mapping's item before its attribute (see the module docstring)."""
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        return not isinstance(obj, type) and super().is_safe_attribute(obj, attr, value)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            check_size(format_size(value.__self__), "str.format")
        return wrapped

    def call(  # jinja2's signature: `__self` for the instance
        __self,
        __context: Any,
        __obj: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        owner = getattr(__obj, "__self__", None)
        estimate = _METHOD_SIZES.get(getattr(__obj, "__name__", ""))
        if isinstance(owner, (str, bytes)) and estimate is not None:
            args = tuple(_listed(a) for a in args)
            _measure(f"{type(owner).__name__}.{__obj.__name__}()", estimate, owner, *args, **kwargs)
        return super().call(__context, __obj, *args, **kwargs)


def make_sandbox(**options: Any) -> FlowSandbox:
    """A ``FlowSandbox`` with ``StrictUndefined`` (a misspelt variable is an error)
    and no autoescaping (the output is prompt text, not HTML); ``options`` go to
    jinja2's ``Environment``."""
    return FlowSandbox(**{"undefined": jinja2.StrictUndefined, "autoescape": False, **options})


__all__ = [
    "MAX_DIGITS",
    "MAX_INDENT",
    "MAX_INT_BITS",
    "MAX_ITEMS",
    "MAX_RANGE",
    "FlowSandbox",
    "check_digits",
    "check_indent",
    "check_size",
    "evaluation_error",
    "format_size",
    "limit_error",
    "make_sandbox",
    "printf_size",
    "quoted",
    "size_of",
]
