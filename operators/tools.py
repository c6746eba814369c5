"""Tools an agent may call: Python functions with typed parameters.

``@tool`` turns a function into a ``Tool``. Its parameters become a pydantic
model (so the model's arguments are validated, and coerced where pydantic
would coerce), whose JSON schema goes into the agent's output schema: on
llama.cpp the grammar then only lets the model write arguments of the right
shape. The first paragraph of the docstring is the description the model sees.

A parameter annotated ``RunContext`` is not an argument: the agent passes the
run's context there, so a tool can reach the run's model registry (a lookup
tool that queries a vector store, say).

The decorated object still calls like the function, and sits at module level
under the function's name, so a flow file can name it as ``module:function``
from a plugin module it lists.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, get_type_hints, overload

import anyio
from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from smmf_flow.dag import RunContext
from smmf_flow.errors import FlowError, ToolFailed


@dataclass(frozen=True, eq=False)
class Tool:
    """A function the agent can call, with its argument model and time limit."""

    name: str
    description: str
    fn: Callable[..., Any]
    arguments: type[BaseModel]
    timeout: float | None = None
    context_param: str | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def schema(self) -> dict[str, Any]:
        """The JSON schema of the arguments (``$defs`` kept at its top level)."""
        return self.arguments.model_json_schema()

    async def run(
        self, arguments: Any, ctx: RunContext | None = None, timeout: float | None = None
    ) -> Any:
        """Validate ``arguments`` and call the function (a blocking one on a worker
        thread), within ``timeout`` (the tool's own limit wins if it is shorter).
        Any failure is a ``ToolFailed`` with a message meant for the model.

        A timeout cannot stop a blocking function: its worker thread is abandoned
        (``abandon_on_cancel``) and runs on, holding one of anyio's threads for as
        long as it lasts (and the GIL, if it computes in C). A blocking tool must
        therefore bound its own work, as the shipped calculator does."""
        try:
            values = self.arguments.model_validate(arguments).model_dump()
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors()
            )
            raise ToolFailed(f"invalid arguments for {self.name}: {problems}") from None
        if self.context_param:
            values[self.context_param] = ctx
        limits = [t for t in (timeout, self.timeout) if t is not None]
        try:
            with anyio.fail_after(min(limits) if limits else None):
                if inspect.iscoroutinefunction(self.fn):
                    return await self.fn(**values)
                return await anyio.to_thread.run_sync(
                    lambda: self.fn(**values), abandon_on_cancel=True
                )
        except TimeoutError:
            raise ToolFailed(f"{self.name} timed out after {min(limits):g}s") from None
        except ToolFailed:
            raise
        except Exception as exc:
            raise ToolFailed(f"{self.name} failed: {type(exc).__name__}: {exc}") from exc


@overload
def tool(
    fn: Callable[..., Any],
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
) -> Tool: ...


@overload
def tool(
    fn: None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make ``fn`` a ``Tool``; use as ``@tool`` or ``@tool(timeout=5)``."""

    def wrap(f: Callable[..., Any]) -> Tool:
        return make_tool(f, name=name, description=description, timeout=timeout)

    return wrap(fn) if fn is not None else wrap


def make_tool(
    fn: Callable[..., Any],
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
) -> Tool:
    """A ``Tool`` from a function whose every parameter has a type hint."""
    tool_name = name or fn.__name__
    where = f"tool '{tool_name}' ({getattr(fn, '__module__', '?')}.{fn.__qualname__})"
    try:
        hints = get_type_hints(fn, include_extras=True)
    except Exception as exc:
        raise FlowError(f"{where}: cannot read its type hints: {exc}") from None
    fields: dict[str, Any] = {}
    context_param = None
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise FlowError(
                f"{where}: *args/**kwargs cannot be described to a model; "
                "give every parameter a name and a type"
            )
        hint = hints.get(param.name)
        if hint is None:
            raise FlowError(
                f"{where}: parameter '{param.name}' has no type hint; the model "
                "needs a type for every argument (e.g. `x: float`)"
            )
        if hint is RunContext:
            context_param = param.name
            continue
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (hint, default)
    model = create_model(f"{tool_name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)
    text = description or inspect.getdoc(fn) or ""
    summary = text.split("\n\n")[0].replace("\n", " ").strip()
    if not summary:
        raise FlowError(
            f"{where}: give the tool a docstring or a description; the model "
            "chooses tools by their descriptions"
        )
    return Tool(tool_name, summary, fn, model, timeout, context_param)


def toolset(tools: Iterable[Tool | Callable[..., Any]]) -> dict[str, Tool]:
    """Tools by name; plain functions become tools; two tools may not share a name."""
    out: dict[str, Tool] = {}
    for item in tools:
        if not isinstance(item, Tool):
            if not callable(item):
                raise FlowError(
                    f"{item!r:.60} is not a tool; decorate a function with @tool "
                    "or pass the function itself"
                )
            item = make_tool(item)
        if item.name in out:
            raise FlowError(
                f"two tools are named '{item.name}'; give one another name with @tool(name=...)"
            )
        out[item.name] = item
    if not out:
        raise FlowError("an agent needs at least one tool")
    return out


def result_text(value: Any, limit: int) -> str:
    """A tool's result as text for the model (JSON for data), cut at ``limit``."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, BaseModel):
        text = value.model_dump_json()
    else:
        try:
            text = json.dumps(value, default=str, ensure_ascii=False)
        except (TypeError, ValueError):
            text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more]"


def tool_ref(item: Tool) -> str:
    """``module:name`` under which a flow file finds ``item``."""
    import sys

    module = getattr(item.fn, "__module__", None)
    attr = item.fn.__name__
    found = getattr(sys.modules.get(module or ""), attr, None) if module else None
    if module in (None, "__main__") or found is not item:
        raise FlowError(
            f"tool '{item.name}' cannot be written to a flow file; define it "
            "with @tool at module level of an importable module"
        )
    return f"{module}:{attr}"


def tool_schemas(tools: Mapping[str, Tool]) -> dict[str, dict[str, Any]]:
    """Each tool's argument schema, by name."""
    return {name: t.schema() for name, t in tools.items()}


__all__ = ["Tool", "make_tool", "result_text", "tool", "tool_ref", "tool_schemas", "toolset"]
