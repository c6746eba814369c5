"""Node parameters: how a node's YAML parameters map to its operator's
constructor arguments.

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
through ``Names``. A problem is a ``FlowError`` whose ``param`` is the path to
it inside the node (``branches.0.when``), so the flow file points there.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Protocol

from smmf_flow.dag import Operator
from smmf_flow.dag.awel_calls import AWEL_KEYWORDS
from smmf_flow.dag.input_operator import InputSource
from smmf_flow.errors import FlowError, UnknownParameter, did_you_mean, located
from smmf_flow.flowfile.functions import from_spec, to_spec
from smmf_flow.flowfile.primitive_params import PRIMITIVE_PARAMS
from smmf_flow.operators.params import NODE_OPTIONS, OperatorParams, parse_params

Resolver = Callable[[str], Callable[..., Any]]


class Names(Protocol):
    """What a flow file's ``module:name`` references resolve through
    (``OperatorTypes``)."""

    def function(self, ref: str) -> Callable[..., Any]: ...

    def tool(self, ref: str) -> Any: ...


FUNCTION_KEYS = ("expr", "function")


def _function(spec: Any, functions: Resolver, param: str, **how: Any) -> Callable[..., Any]:
    with located(param=param):
        return from_spec(spec, functions, **how)


class Adapter:
    """The identity mapping."""

    #: the YAML keys this adapter reads in place of constructor arguments
    yaml_keys: tuple[str, ...] = ()

    def to_args(self, params: dict[str, Any], names: Names) -> dict[str, Any]:
        return dict(params)

    def to_params(self, args: dict[str, Any], node: str) -> dict[str, Any]:
        return dict(args)


class FunctionAdapter(Adapter):
    """An operator whose callable argument ``arg`` is written as ``expr``/``function``."""

    yaml_keys = FUNCTION_KEYS

    def __init__(
        self,
        arg: str,
        names: tuple[str, ...] = ("input",),
        variadic: str | None = None,
        required: bool = True,
    ) -> None:
        self.arg, self.names, self.variadic, self.required = arg, names, variadic, required

    def to_args(self, params: dict[str, Any], names: Names) -> dict[str, Any]:
        args = {k: v for k, v in params.items() if k not in FUNCTION_KEYS}
        given = {k: params[k] for k in FUNCTION_KEYS if k in params}
        if len(given) > 1:
            raise FlowError("give either `expr:` or `function:`, not both", param="function")
        if given:
            key = next(iter(given))
            args[self.arg] = _function(
                given, names.function, key, names=self.names, variadic=self.variadic
            )
        elif self.required and self.arg not in args:
            variables = (self.variadic, "input") if self.variadic else self.names
            raise FlowError(
                "needs a function: add `expr: <jinja2 expression>` (variables: "
                f"{', '.join(variables)}) or `function: module:name`"
            )
        return args

    def to_params(self, args: dict[str, Any], node: str) -> dict[str, Any]:
        out = dict(args)
        fn = out.pop(self.arg, None)
        return {**to_spec(fn, node), **out} if fn is not None else out


class BranchAdapter(Adapter):
    """``branches: [{when: EXPR, to: NODE}, ...]`` ↔ ``[(predicate, "NODE"), ...]``."""

    def to_args(self, params: dict[str, Any], names: Names) -> dict[str, Any]:
        args = dict(params)
        branches = args.get("branches")
        if not isinstance(branches, list) or not branches:
            raise FlowError(
                "needs `branches:`, a list of {when: <expression>, to: <node>}",
                param="branches" if "branches" in args else None,
            )
        pairs = []
        for i, item in enumerate(branches):
            if not isinstance(item, dict) or set(item) != {"when", "to"}:
                raise FlowError(
                    f"branches[{i}] must have exactly `when:` and `to:`", param=f"branches.{i}"
                )
            if not isinstance(item["to"], str):
                raise FlowError(f"branches[{i}].to must be a node name", param=f"branches.{i}.to")
            pairs.append(
                (_function(item["when"], names.function, f"branches.{i}.when"), item["to"])
            )
        args["branches"] = pairs
        return args

    def to_params(self, args: dict[str, Any], node: str) -> dict[str, Any]:
        out = dict(args)
        out["branches"] = [
            {"when": _when(pred, node), "to": to} for pred, to in args.get("branches", [])
        ]
        return out


def _when(pred: Callable[..., Any], node: str) -> Any:
    spec = to_spec(pred, node)
    return spec.get("expr", spec)


class InputAdapter(Adapter):
    """``value`` / ``items`` / ``function`` ↔ an ``InputSource``."""

    yaml_keys = ("value", "items", "function")

    def to_args(self, params: dict[str, Any], names: Names) -> dict[str, Any]:
        args = {k: v for k, v in params.items() if k not in self.yaml_keys}
        given = [k for k in self.yaml_keys if k in params]
        if len(given) > 1:
            raise FlowError(
                f"give one of `value`, `items` or `function`, not {' and '.join(given)}",
                param=given[1],
            )
        if given == ["value"]:
            args["source"] = InputSource.from_data(params["value"])
        elif given == ["items"]:
            if not isinstance(params["items"], list):
                raise FlowError("`items:` must be a list (it becomes a stream)", param="items")
            args["source"] = InputSource.from_iterable(params["items"])
        elif given == ["function"]:
            fn = _function({"function": params["function"]}, names.function, "function")
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
        raise FlowError(f"its input source {source!r} cannot be written to a flow file", node=node)


class ToolsAdapter(Adapter):
    """``tools: [module:name, ...]`` → the tool objects, each from a plugin module
    (an agent's ``params()`` already writes them back as ``module:name``)."""

    def to_args(self, params: dict[str, Any], names: Names) -> dict[str, Any]:
        args = dict(params)
        refs = args.get("tools")
        if not isinstance(refs, list) or not refs or not all(isinstance(r, str) for r in refs):
            raise FlowError(
                "needs `tools:`, a list of 'module:name' references to @tool "
                "functions of plugin modules",
                param="tools" if "tools" in args else None,
            )
        tools = []
        for i, ref in enumerate(refs):
            with located(param=f"tools.{i}"):
                tools.append(names.tool(ref))
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


# --- checking a node's parameters ------------------------------------------------------


def node_args(
    kind: str, cls: type[Operator], params: dict[str, Any], names: Names
) -> dict[str, Any]:
    """The constructor arguments for a node's YAML ``params``, checked by one model:
    the primitive types' YAML form, else the operator's ``params_model``, else (a
    plugin without one) its constructor's signature. Errors carry ``param``."""
    yaml_model = PRIMITIVE_PARAMS.get(kind)
    if yaml_model is not None:
        parse_params(yaml_model, params, kind=kind)
    args = adapter_for(kind).to_args(params, names)
    if yaml_model is None:
        model = params_model_of(cls)
        if model is not None:
            parse_params(model, args, kind=kind)
        else:
            check_call(cls, args, kind)
    return args


def params_model_of(cls: type[Operator]) -> type[OperatorParams] | None:
    """``cls.params_model`` when it describes ``cls``'s constructor: declared by the
    class that defines ``__init__`` or by one of its subclasses (a plugin subclass
    with a constructor of its own and no model is checked by its signature)."""
    model = getattr(cls, "params_model", None)
    if model is None:
        return None
    mro = cls.__mro__
    owner = next(c for c in mro if "params_model" in vars(c))
    init = next(c for c in mro if "__init__" in vars(c))
    return model if mro.index(owner) <= mro.index(init) else None


def check_call(cls: type[Operator], args: dict[str, Any], kind: str) -> None:
    """Check ``args`` against ``cls``'s constructor (and the constructors its
    ``**options`` lead to): unknown and missing names, then ``bind``."""
    accepted, required, open_ended = constructor_parameters(cls)
    listed = [n for n in accepted if n not in NODE_OPTIONS]
    for name in args:
        if name in NODE_OPTIONS or (name not in accepted and not open_ended):
            raise UnknownParameter(
                f"unknown parameter '{name}'{did_you_mean(name, listed)} "
                f"({kind} parameters: {', '.join(listed) or 'none'})",
                param=name,
            )
    missing = [n for n in required if n not in args]
    if missing:
        raise FlowError(
            f"missing required parameter '{missing[0]}' ({kind} parameters: {', '.join(listed)})"
        )
    try:
        inspect.signature(cls).bind(**args)
    except TypeError as exc:
        raise FlowError(f"cannot call {cls.__qualname__} with these parameters: {exc}") from None


def constructor_parameters(cls: type[Operator]) -> tuple[list[str], list[str], bool]:
    """The keyword names ``cls(...)`` takes, following ``**options`` up the classes'
    ``__init__``s; the ones its own constructor requires; and whether it takes any
    name at all (``**kwargs`` that lead nowhere known)."""
    accepted: list[str] = []
    required: list[str] = []
    for i, klass in enumerate(c for c in cls.__mro__ if "__init__" in vars(c)):
        try:
            params = list(inspect.signature(vars(klass)["__init__"]).parameters.values())[1:]
        except (TypeError, ValueError):
            return accepted, required, True
        named = [
            p
            for p in params
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in AWEL_KEYWORDS
        ]
        accepted += [p.name for p in named if p.name not in accepted]
        if i == 0:
            required = [p.name for p in named if p.default is p.empty]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return accepted, required, False
        if klass is Operator:
            break
    return accepted, required, klass is not Operator


__all__ = [
    "ADAPTERS",
    "Adapter",
    "adapter_for",
    "check_call",
    "constructor_parameters",
    "node_args",
    "params_model_of",
]
