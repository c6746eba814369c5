"""Functions for map, join, branch and stream nodes, without importing code.

A flow file gives a node its function in one of two ways:

* ``expr: "input | upper"`` — a jinja2 expression, compiled in a
  ``SandboxedEnvironment`` (no attribute access to internals, no imports, no
  calls of unsafe methods) with ``StrictUndefined``, so a misspelt variable is
  an error and not an empty string. The variables are the node's inputs:
  ``input`` for one value, ``inputs`` (a list; ``input`` is its first item) for
  a join, ``acc`` and ``chunk`` for a stream reduction. Besides jinja2's
  filters, ``GLOBALS`` offers a few helpers (``cosine``, ``dot``, ``norm``,
  ``json``, ``min``, ``max``, ``sum``, ``len``, ``zip``, ``sorted``, ``round``).
  The sandbox is ``smmf_flow.sandbox``'s: no attribute of a class, and no
  single operation that would build something huge (``"x" * 10**9``,
  ``9 ** (9 ** 9)``); its module docstring lists the limits.
* ``function: module:name`` — a function, class, ``@map_operator`` function or
  ``@tool`` of a plugin module that the flow or the command line lists
  explicitly (see ``registry.py`` for exactly what may be named).

An ``Expression`` remembers its source, so an exported flow writes it back.
"""

from __future__ import annotations

import inspect
import json
import math
import sys
from collections.abc import Callable
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.parser import Parser

from smmf_flow.errors import FlowError, InputError, SmmfError
from smmf_flow.sandbox import check_digits, check_indent, evaluation_error, make_sandbox, quoted


def _dot(a: Any, b: Any) -> float:
    return float(sum(x * y for x, y in zip(a, b, strict=True)))


def _norm(a: Any) -> float:
    return math.sqrt(_dot(a, a))


def _cosine(a: Any, b: Any) -> float:
    """Cosine similarity of two vectors (0.0 when either is all zeros)."""
    scale = _norm(a) * _norm(b)
    return _dot(a, b) / scale if scale else 0.0


def _json(
    value: Any, *, indent: int | None = None, sort_keys: bool = False, ensure_ascii: bool = True
) -> str:
    """``json.dumps`` with the options an expression may set (a small indent)."""
    check_indent(indent, "json()")
    return json.dumps(value, indent=indent, sort_keys=sort_keys, ensure_ascii=ensure_ascii)


def _round(number: Any, ndigits: int | None = None) -> Any:
    """``round``, to a bounded number of digits either side of the point."""
    check_digits(ndigits, "round()")
    return round(number, ndigits)


_ENV = make_sandbox()
#: helpers every expression may call, besides jinja2's filters and tests
GLOBALS: dict[str, Any] = {
    "json": _json,
    "min": min,
    "max": max,
    "sum": sum,
    "len": len,
    "zip": zip,
    "sorted": sorted,
    "str": str,
    "int": int,
    "float": float,
    "round": _round,
    "dot": _dot,
    "norm": _norm,
    "cosine": _cosine,
}
_ENV.globals.update(GLOBALS)


class Expression:
    """A compiled jinja2 expression called with positional inputs bound to names.

    ``names`` are the variables bound to the positional arguments; with
    ``variadic`` set, all arguments are bound to that name as a list (and
    ``input`` to the first).
    """

    def __init__(
        self, source: str, names: tuple[str, ...] = ("input",), variadic: str | None = None
    ) -> None:
        if not isinstance(source, str) or not source.strip():
            raise FlowError("an expression must be a non-empty string")
        try:
            self._compiled = _ENV.compile_expression(source, undefined_to_none=False)
        except jinja2.TemplateSyntaxError as exc:
            raise FlowError(f"bad expression {quoted(source)}: {exc.message}") from None
        except RecursionError:
            raise FlowError(f"bad expression {quoted(source)}: nested too deeply") from None
        self.source = source
        self.names = names
        self.variadic = variadic
        variables = {variadic, "input"} if variadic else set(names)
        unknown = sorted(_free_names(source) - variables - set(_ENV.globals))
        if unknown:
            raise FlowError(
                f"expression {quoted(source)}: {', '.join(map(repr, unknown))} "
                f"is not defined; the variables are {', '.join(sorted(variables))}"
            )
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
        params = (
            [inspect.Parameter(variadic, inspect.Parameter.VAR_POSITIONAL)]
            if variadic
            else [inspect.Parameter(n, kind) for n in names]
        )
        self.__signature__ = inspect.Signature(params)

    def __call__(self, *args: Any) -> Any:
        if self.variadic:
            env = {self.variadic: list(args), "input": args[0] if args else None}
        else:
            env = dict(zip(self.names, args, strict=False))  # a missing one is undefined
        try:
            result = self._compiled(**env)
            if isinstance(result, jinja2.Undefined):  # a bare undefined name
                str(result)  # StrictUndefined raises here
            return result
        except jinja2.UndefinedError as exc:
            raise InputError(
                f"expression {quoted(self.source)}: {exc.message}; the "
                f"variables are {', '.join(env)}"
            ) from None
        except (jinja2.exceptions.SecurityError, InputError) as exc:
            raise InputError(f"expression {quoted(self.source)}: {exc}") from None
        except SmmfError:
            raise
        except Exception as exc:
            raise evaluation_error("expression", self.source, exc) from exc

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Expression)
            and other.source == self.source
            and other.names == self.names
            and other.variadic == self.variadic
        )

    def __hash__(self) -> int:
        return hash((self.source, self.names, self.variadic))

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"


def _free_names(source: str) -> set[str]:
    """The names an expression reads from outside itself."""
    expression = Parser(_ENV, source, state="variable").parse_expression()
    template = nodes.Template([nodes.Output([expression])])
    template.set_environment(_ENV)
    return set(meta.find_undeclared_variables(template))


def from_spec(
    spec: Any,
    functions: Callable[[str], Callable[..., Any]],
    *,
    names: tuple[str, ...] = ("input",),
    variadic: str | None = None,
) -> Callable[..., Any]:
    """The callable that ``{expr: ...}`` or ``{function: ...}`` (or a bare expression
    string) describes; ``functions`` resolves ``module:attr`` references."""
    if isinstance(spec, str):
        return Expression(spec, names, variadic)
    if isinstance(spec, dict) and len(spec) == 1:
        ((key, value),) = spec.items()
        if key == "expr":
            return Expression(value, names, variadic)
        if key == "function":
            if not isinstance(value, str):
                raise FlowError("`function:` takes a 'module:name' string")
            return functions(value)
    raise FlowError("give a function as `expr: <jinja2 expression>` or `function: module:name`")


def to_spec(fn: Callable[..., Any], node: str) -> dict[str, str]:
    """``{expr: ...}`` or ``{function: module:name}`` for ``fn``; a ``FlowError``
    when ``fn`` cannot be named in a file (a lambda, a closure, a method, a
    private function): a flow file names only public module-level names."""
    if isinstance(fn, Expression):
        return {"expr": fn.source}
    module = getattr(fn, "__module__", None)
    name = getattr(fn, "__qualname__", None)
    if (
        isinstance(module, str)
        and module != "__main__"
        and isinstance(name, str)
        and name.isidentifier()
        and not name.startswith("_")
    ):
        found = vars(sys.modules[module]).get(name) if module in sys.modules else None
        if found is fn or getattr(found, "fn", None) is fn:
            return {"function": f"{module}:{name}"}
    raise FlowError(
        f"its function {fn!r} cannot be written to a flow file; use a public "
        "module-level function of an importable module, or an Expression",
        node=node,
    )


__all__ = ["Expression", "from_spec", "to_spec"]
