"""Ready-made agent tools: a calculator and a lookup over indexed documents.

A flow file lists this module as a plugin and names the tools::

    plugins: [smmf_flow.operators.toolbox]
    nodes:
      solve: {type: agent, tools: ["smmf_flow.operators.toolbox:calculator"]}

``calculator`` evaluates arithmetic by walking the expression's syntax tree
(numbers, + - * / // % **, parentheses and a few math functions), never with
``eval``, and refuses powers that would take the process hostage.
``lookup_tool(store)`` makes a tool that retrieves passages from a vector store
built by the indexer; ``docs_lookup`` is one over the default store that
``flows/rag-index.yaml`` fills (``$SMMF_RAG_STORE``, else ``.smmf/rag``,
collection ``docs``), read when the tool runs.
"""

from __future__ import annotations

import ast
import math
import operator
import os
import threading
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import Field

from smmf_flow.errors import FlowError
from smmf_flow.operators.tools import Tool, make_tool, tool
from smmf_flow.operators.vectorstore import VectorStore, check_spec, open_store
from smmf_flow.runner.context import RunContext

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt, "abs": abs, "round": round, "min": min, "max": max,
    "log": math.log, "exp": math.exp, "sin": math.sin, "cos": math.cos}
_CONSTANTS = {"pi": math.pi, "e": math.e}
_MAX_EXPONENT = 1000


def evaluate(expression: str) -> float | int:
    """The value of an arithmetic ``expression``; ``FlowError`` saying what is not allowed."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise FlowError(f"not an arithmetic expression ({exc.msg}): {expression!r}") from None
    return _eval(tree.body)


def _eval(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
            and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > _MAX_EXPONENT:
            raise FlowError(f"exponent {right} is too large (at most {_MAX_EXPONENT})")
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in _FUNCTIONS and not node.keywords):
        return _FUNCTIONS[node.func.id](*(_eval(a) for a in node.args))
    allowed = ", ".join(sorted(_FUNCTIONS))
    raise FlowError(f"'{ast.unparse(node)}' is not allowed: use numbers, + - * / // % **, "
                    f"parentheses, pi, e and {allowed}")


#: what an expression may contain; also the grammar a model writes it under, so a
#: small model cannot wander out of the expression into prose or stray braces
EXPRESSION = r"^[0-9a-z+*/%()., -]{1,200}$"


@tool(timeout=5.0)
def calculator(expression: Annotated[str, Field(examples=["(3 + 4) * 12 / 7"],
                                                pattern=EXPRESSION)]) -> str:
    """Evaluate an arithmetic expression and return its value."""
    value = evaluate(expression)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    return str(value)


def default_store() -> dict[str, str]:
    """The store the shipped RAG flows use: ``$SMMF_RAG_STORE`` or ``.smmf/rag``."""
    return {"path": os.environ.get("SMMF_RAG_STORE", ".smmf/rag"), "collection": "docs"}


def lookup_tool(store: Any = None, *, model: str | None = None, k: int = 3,
                name: str = "lookup") -> Tool:
    """A tool that returns the ``k`` passages of ``store`` (a spec as the indexer
    takes; None: ``default_store()`` when called) closest to a query, embedded
    with ``model`` (None: the registry's default embedding model)."""
    opened: dict[str, VectorStore] = {}
    lock = threading.Lock()

    def store_for() -> VectorStore:
        spec = check_spec(store if store is not None else default_store(), f"tool '{name}'")
        key = repr(spec)
        with lock:
            if key not in opened:
                opened[key] = open_store(spec)
            return opened[key]

    async def lookup(query: Annotated[str, Field(examples=["when was the lighthouse lit"])],
                     ctx: RunContext) -> list[dict[str, Any]]:
        import anyio

        from smmf_flow.scheduler.resolve import scheduler_for

        worker = scheduler_for(ctx.registry if ctx is not None else None).embedding_worker(model)
        vector = (await worker.embed([query]))[0]
        found = await anyio.to_thread.run_sync(
            lambda: store_for().query(vector, k, model=worker.name))
        return [{"source": h.source, "text": h.text} for h in found]

    lookup.__name__ = lookup.__qualname__ = name
    return make_tool(lookup, name=name, description=(
        "Search the indexed documents and return the passages most related to the query."))


docs_lookup = lookup_tool(name="docs_lookup")

__all__ = ["EXPRESSION", "calculator", "default_store", "docs_lookup", "evaluate", "lookup_tool"]
