"""Ready-made agent tools: a calculator and a lookup over indexed documents.

A flow file lists this module as a plugin and names the tools::

    plugins: [smmf_flow.operators.builtin_tools]
    nodes:
      solve: {type: agent, tools: ["smmf_flow.operators.builtin_tools:calculator"]}

``calculator`` evaluates arithmetic by walking the expression's syntax tree
(numbers, + - * / // % **, parentheses and a few math functions), never with
``eval``, within bounds checked before any work (``operators/arithmetic.py``), so
no expression can hold the process.
``lookup_tool(store)`` makes a tool that retrieves passages from a vector store
built by the indexer; ``docs_lookup`` is one over the default store that
``flows/rag-index.yaml`` fills (``$SMMF_RAG_STORE``, else ``.smmf/rag``,
collection ``docs``), read when the tool runs.
"""

from __future__ import annotations

import os
import threading
from typing import Annotated, Any

from pydantic import Field

from smmf_flow.dag import RunContext
from smmf_flow.operators.arithmetic import MAX_EXPRESSION_CHARS, evaluate
from smmf_flow.operators.tools import Tool, make_tool, tool
from smmf_flow.operators.vectorstore import VectorStore, check_spec, open_store

#: what an expression may contain; also the grammar a model writes it under, so a
#: small model cannot wander out of the expression into prose or stray braces
EXPRESSION = rf"^[0-9a-z+*/%()., -]{{1,{MAX_EXPRESSION_CHARS}}}$"


@tool(timeout=5.0)
def calculator(
    expression: Annotated[str, Field(examples=["(3 + 4) * 12 / 7"], pattern=EXPRESSION)],
) -> str:
    """Evaluate an arithmetic expression and return its value."""
    value = evaluate(expression)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    return str(value)


def default_store() -> dict[str, str]:
    """The store the shipped RAG flows use: ``$SMMF_RAG_STORE`` or ``.smmf/rag``."""
    return {"path": os.environ.get("SMMF_RAG_STORE", ".smmf/rag"), "collection": "docs"}


def lookup_tool(
    store: Any = None, *, model: str | None = None, k: int = 3, name: str = "lookup"
) -> Tool:
    """A tool that returns the ``k`` passages of ``store`` (a spec as the indexer
    takes; None: ``default_store()`` when called) closest to a query, embedded
    with ``model`` (None: the registry's default embedding model)."""
    opened: dict[str, VectorStore] = {}
    lock = threading.Lock()

    def store_for() -> VectorStore:
        spec = check_spec(store if store is not None else default_store())
        key = repr(spec)
        with lock:
            if key not in opened:
                opened[key] = open_store(spec)
            return opened[key]

    async def lookup(
        query: Annotated[str, Field(examples=["when was the lighthouse lit"])], ctx: RunContext
    ) -> list[dict[str, Any]]:
        import anyio

        from smmf_flow.scheduler.resolve import scheduler_for

        worker = scheduler_for(ctx.registry if ctx is not None else None).embedding_worker(model)
        vector = (await worker.embed([query]))[0]
        fingerprint = await worker.fingerprint()
        found = await anyio.to_thread.run_sync(
            lambda: store_for().query(vector, k, model=worker.name, fingerprint=fingerprint)
        )
        return [{"source": h.source, "text": h.text} for h in found]

    lookup.__name__ = lookup.__qualname__ = name
    return make_tool(
        lookup,
        name=name,
        description=(
            "Search the indexed documents and return the passages most related to the query."
        ),
    )


docs_lookup = lookup_tool(name="docs_lookup")

__all__ = ["EXPRESSION", "calculator", "default_store", "docs_lookup", "evaluate", "lookup_tool"]
