"""Arithmetic for the calculator tool: an expression's syntax tree walked, never ``eval``.

Numbers, ``+ - * / // % **``, parentheses, ``pi``, ``e`` and a few math
functions. Every bound is checked *before* the work it guards: Python computes a
whole-number power or product in C with the GIL held, so ``((9**999)**999)**999``
would stop the whole process, and a tool timeout cannot help (the tool's worker
thread is abandoned, not stopped). So the expression's length and nesting are
capped, an exponent's size too, and a power or product whose result would have
more than ``MAX_DIGITS`` digits is refused from an estimate of its size; results
must be finite real numbers. Each refusal is an ``InputError`` that says which
bound, so the model that wrote the expression can try a smaller one.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from smmf_flow.errors import InputError

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt,
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "log": math.log,
    "exp": math.exp,
    "sin": math.sin,
    "cos": math.cos,
}
_CONSTANTS = {"pi": math.pi, "e": math.e}

#: the bounds (see the module doc)
MAX_EXPRESSION_CHARS = 200
MAX_DEPTH = 64  # levels of the expression's syntax tree
MAX_EXPONENT = 1000  # |exponent| of a power
MAX_DIGITS = 1000  # digits of any whole number, operand or result
_MAX_BITS = math.ceil(MAX_DIGITS * math.log2(10))


def evaluate(expression: str) -> float | int:
    """The value of an arithmetic ``expression``; ``InputError`` saying what is not
    allowed, or which bound the expression would pass."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise InputError(
            f"the expression is {len(expression)} characters long; the "
            f"calculator takes at most {MAX_EXPRESSION_CHARS}: split it into steps"
        )
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise InputError(f"not an arithmetic expression ({exc.msg}): {expression!r}") from None
    try:
        value: float | int = _eval(tree.body, 1)
    except OverflowError:
        raise InputError(f"{expression!r} is too large to compute") from None
    except (ValueError, TypeError) as exc:  # sqrt(-1), min() ...
        raise InputError(f"{expression!r} cannot be computed: {exc}") from None
    return value


def _eval(node: ast.AST, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise InputError(
            f"the expression nests deeper than {MAX_DEPTH} levels; split it into steps"
        )
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, (int, float))
        and not isinstance(node.value, bool)
    ):
        return _checked(node, node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left, depth + 1), _eval(node.right, depth + 1)
        _check_size_before(node, left, right)
        return _checked(node, _BINARY[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand, depth + 1))
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        args = [_eval(a, depth + 1) for a in node.args]
        if node.func.id == "round" and len(args) > 1 and abs(args[1]) > MAX_DIGITS:
            raise InputError(
                f"round to {args[1]} digits is out of range (at most {MAX_DIGITS} either way)"
            )
        return _checked(node, _FUNCTIONS[node.func.id](*args))
    allowed = ", ".join(sorted(_FUNCTIONS))
    raise InputError(
        f"'{ast.unparse(node)}' is not allowed: use numbers, + - * / // % **, "
        f"parentheses, pi, e and {allowed}"
    )


def _check_size_before(node: ast.BinOp, left: Any, right: Any) -> None:
    """Refuse a power or product whose result would pass the bounds, before it is
    computed (the estimate is its size in bits)."""
    if isinstance(node.op, ast.Pow):
        if abs(right) > MAX_EXPONENT:
            raise InputError(f"exponent {_short(right)} is too large (at most {MAX_EXPONENT})")
        bits = (
            right * math.log2(abs(left))
            if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1
            else 0.0
        )
    elif isinstance(node.op, ast.Mult) and isinstance(left, int) and isinstance(right, int):
        bits = left.bit_length() + right.bit_length()
    else:
        return
    if bits > _MAX_BITS:
        raise InputError(
            f"'{_short(ast.unparse(node))}' would have about "
            f"{math.ceil(bits * math.log10(2)):,} digits; the calculator works "
            f"with at most {MAX_DIGITS:,}"
        )


def _checked(node: ast.AST, value: Any) -> Any:
    """``value`` if it is a real number within the bounds."""
    if isinstance(value, complex):
        raise InputError(f"'{_short(ast.unparse(node))}' is not a real number")
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"'{_short(ast.unparse(node))}' is too large to compute")
    if isinstance(value, int) and value.bit_length() > _MAX_BITS:
        raise InputError(f"'{_short(ast.unparse(node))}' has more than {MAX_DIGITS:,} digits")
    return value


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


__all__ = ["MAX_DEPTH", "MAX_DIGITS", "MAX_EXPONENT", "MAX_EXPRESSION_CHARS", "evaluate"]
