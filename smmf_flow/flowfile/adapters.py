"""How a node's YAML parameters map to its operator's constructor arguments.

For most operators the mapping is the identity: a node's parameters *are* the
constructor's keyword arguments, and ``params()`` gives them back for export.
The primitive operators take Python callables, which a file cannot hold, so
their adapters turn ``expr:``/``function:`` (see ``functions.py``) into
callables and back:

=================  ===========================================  ====================
type               YAML                                         expression variables
=================  ===========================================  ====================
map, streamify     ``expr`` or ``function``; ``blocking``       ``input``
join               ``expr`` or ``function`` (optional)          ``inputs``, ``input``
transform_stream   ``expr`` or ``function``                     ``chunk``
unstreamify        ``expr`` or ``function`` (optional)          ``chunks``
reduce_stream      ``expr`` or ``function``; ``initial``        ``acc``, ``chunk``
branch             ``branches: [{when: EXPR, to: NODE}]``,      ``input``
                   ``default: NODE``, ``first_match``
input              ``value`` (fixed), ``items`` (a stream),
                   or ``function`` (called with the run input)
agent              ``tools: [module:name, ...]``, ``Tool``
                   objects of plugin modules (``@tool``)
=================  ===========================================  ====================

What ``module:name`` may name is ``registry.py``'s allow-list; adapters ask it
through ``Names``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from smmf_flow.dag.input_operator import InputSource
from smmf_flow.errors import FlowError
from smmf_flow.flowfile.functions import from_spec, to_spec

Resolver = Callable[[str], Callable[..., Any]]


class Names(Protocol):
    """What a flow file's ``module:name`` references resolve through
    (``OperatorTypes``)."""

    def function(self, ref: str) -> Callable[..., Any]: ...

    def tool(self, ref: str) -> Any: ...


#: builds the error for a problem at a path inside the node's parameters
ErrorAt = Callable[[str, tuple[str | int, ...]], Exception]
FUNCTION_KEYS = ("expr", "function")


def _function(spec: Any, functions: Resolver, error: ErrorAt, at: tuple[str | int, ...],
              **how: Any) -> Callable[..., Any]:
    try:
        return from_spec(spec, functions, **how)
    except FlowError as exc:
        raise error(str(exc), at) from None


class Adapter:
    """The identity mapping."""

    def to_args(self, params: dict[str, Any], names: Names,
                error: ErrorAt) -> dict[str, Any]:
        return dict(params)

    def to_params(self, args: dict[str, Any], node: str) -> dict[str, Any]:
        return dict(args)


class FunctionAdapter(Adapter):
    """An operator whose callable argument ``arg`` is written as ``expr``/``function``."""

    def __init__(self, arg: str, names: tuple[str, ...] = ("input",),
                 variadic: str | None = None, required: bool = True) -> None:
        self.arg, self.names, self.variadic, self.required = arg, names, variadic, required

    def to_args(self, params: dict[str, Any], names: Names,
                error: ErrorAt) -> dict[str, Any]:
        args = {k: v for k, v in params.items() if k not in FUNCTION_KEYS}
        given = {k: params[k] for k in FUNCTION_KEYS if k in params}
        if len(given) > 1:
            raise error("give either `expr:` or `function:`, not both", ("function",))
        if given:
            key = next(iter(given))
            args[self.arg] = _function(given, names.function, error, (key,), names=self.names,
                                       variadic=self.variadic)
        elif self.required and self.arg not in args:
            names = (self.variadic, "input") if self.variadic else self.names
            raise error("needs a function: add `expr: <jinja2 expression>` (variables: "
                        f"{', '.join(names)}) or `function: module:name`", ())
        return args

    def to_params(self, args: dict[str, Any], node: str) -> dict[str, Any]:
        out = dict(args)
        fn = out.pop(self.arg, None)
        return {**to_spec(fn, node), **out} if fn is not None else out


class BranchAdapter(Adapter):
    """``branches: [{when: EXPR, to: NODE}, ...]`` ↔ ``[(predicate, "NODE"), ...]``."""

    def to_args(self, params: dict[str, Any], names: Names,
                error: ErrorAt) -> dict[str, Any]:
        args = dict(params)
        branches = args.get("branches")
        if not isinstance(branches, list) or not branches:
            raise error("needs `branches:`, a list of {when: <expression>, to: <node>}",
                        ("branches",) if "branches" in args else ())
        pairs = []
        for i, item in enumerate(branches):
            if not isinstance(item, dict) or set(item) != {"when", "to"}:
                raise error(f"branches[{i}] must have exactly `when:` and `to:`",
                            ("branches", i))
            if not isinstance(item["to"], str):
                raise error(f"branches[{i}].to must be a node name", ("branches", i, "to"))
            pairs.append((_function(item["when"], names.function, error, ("branches", i, "when")),
                          item["to"]))
        args["branches"] = pairs
        return args

    def to_params(self, args: dict[str, Any], node: str) -> dict[str, Any]:
        out = dict(args)
        out["branches"] = [{"when": _when(pred, node), "to": to}
                           for pred, to in args.get("branches", [])]
        return out


def _when(pred: Callable[..., Any], node: str) -> Any:
    spec = to_spec(pred, node)
    return spec.get("expr", spec)


class InputAdapter(Adapter):
    """``value`` / ``items`` / ``function`` ↔ an ``InputSource``."""

    def to_args(self, params: dict[str, Any], names: Names,
                error: ErrorAt) -> dict[str, Any]:
        args = {k: v for k, v in params.items() if k not in ("value", "items", "function")}
        given = [k for k in ("value", "items", "function") if k in params]
        if len(given) > 1:
            raise error(f"give one of `value`, `items` or `function`, not "
                        f"{' and '.join(given)}", (given[1],))
        if given == ["value"]:
            args["source"] = InputSource.from_data(params["value"])
        elif given == ["items"]:
            if not isinstance(params["items"], list):
                raise error("`items:` must be a list (it becomes a stream)", ("items",))
            args["source"] = InputSource.from_iterable(params["items"])
        elif given == ["function"]:
            fn = _function({"function": params["function"]}, names.function, error, ("function",))
            args["source"] = InputSource.from_callable(fn)
        return args

    def to_params(self, args: dict[str, Any], node: str) -> dict[str, Any]:
        out = dict(args)
        source = out.pop("source", None)
        if source is None:
            return out
        if hasattr(source, "data"):
            return {"value": source.data, **out}
        if isinstance(getattr(source, "items", None), (list, tuple)):
            return {"items": list(source.items), **out}
        if hasattr(source, "fn"):
            return {**to_spec(source.fn, node), **out}
        raise FlowError(f"node '{node}': its input source {source!r} cannot be written to a "
                        "flow file")


class ToolsAdapter(Adapter):
    """``tools: [module:name, ...]`` → the tool objects, each from a plugin module
    (an agent's ``params()`` already writes them back as ``module:name``)."""

    def to_args(self, params: dict[str, Any], names: Names,
                error: ErrorAt) -> dict[str, Any]:
        args = dict(params)
        refs = args.get("tools")
        if not isinstance(refs, list) or not refs or not all(isinstance(r, str) for r in refs):
            raise error("needs `tools:`, a list of 'module:name' references to @tool functions "
                        "of plugin modules", ("tools",) if "tools" in args else ())
        tools = []
        for i, ref in enumerate(refs):
            try:
                tools.append(names.tool(ref))
            except FlowError as exc:
                raise error(str(exc), ("tools", i)) from None
        args["tools"] = tools
        return args


IDENTITY = Adapter()
ADAPTERS: dict[str, Adapter] = {
    "input": InputAdapter(),
    "map": FunctionAdapter("map_function"),
    "streamify": FunctionAdapter("fn"),
    "join": FunctionAdapter("combine_function", variadic="inputs", required=False),
    "transform_stream": FunctionAdapter("fn", names=("chunk",)),
    "unstreamify": FunctionAdapter("fn", names=("chunks",), required=False),
    "reduce_stream": FunctionAdapter("reduce_function", names=("acc", "chunk")),
    "branch": BranchAdapter(),
    "agent": ToolsAdapter(),
}


def adapter_for(kind: str) -> Adapter:
    return ADAPTERS.get(kind, IDENTITY)


__all__ = ["ADAPTERS", "Adapter", "adapter_for"]
