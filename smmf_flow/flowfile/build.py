"""Building a DAG from a parsed flow file, with every error located.

The order is fixed, so errors come in a predictable order and edges get
predictable input slots: plugins, then nodes (type, parameters, construction),
then edges (the ``edges:`` list in order, then each node's ``after:``, then the
edges implied by branch targets), then the output node and the whole-graph
checks. Each step turns a ``FlowError`` into a ``FlowFileError`` naming the
file, line, column and node.
"""

from __future__ import annotations

import builtins
import inspect
import re
from pathlib import Path
from typing import Any

import networkx as nx
from pydantic import ValidationError

import smmf_flow.errors as errors_module
from smmf_flow.runner.dag import DAG
from smmf_flow.dag.operator import Operator
from smmf_flow.dag.validate import validate_graph
from smmf_flow.errors import CycleError, FlowError, FlowFileError, TemplateError
from smmf_flow.flowfile.adapters import adapter_for
from smmf_flow.flowfile.edges import parse_edges
from smmf_flow.flowfile.loader import Document
from smmf_flow.flowfile.registry import OperatorTypes
from smmf_flow.flowfile.schema import NODE_FIELDS, FlowSpec, NodeSpec, RetrySpec, parse_spec
from smmf_flow.runner.retry import RetryPolicy

_UNEXPECTED = re.compile(r"unexpected keyword argument '([^']+)'")
_MISSING = re.compile(r"missing \d+ required (?:keyword-only |positional )?arguments?: (.+)$")


def build_dag(doc: Document, types: OperatorTypes) -> tuple[FlowSpec, DAG, OperatorTypes]:
    """Parse and build ``doc``; return its spec, its DAG and the types it used.
    The flow's ``plugins:`` must be modules in the flow file's folder."""
    spec = parse_spec(doc)
    types = types.copy()
    folder = Path(doc.file).parent.resolve()
    for i, module in enumerate(spec.plugins):
        try:
            types.add_plugin(module, local_to=folder)
        except FlowError as exc:
            raise doc.error(str(exc), ("plugins", i)) from exc
    dag = DAG(spec.name or Path(doc.file).stem, description=spec.description)
    for name, node in spec.nodes.items():
        _make_node(doc, dag, types, name, node)
    _connect_all(doc, dag, spec)
    _check_output(doc, dag, spec)
    _check_graph(doc, dag)
    return spec, dag, types


# --- nodes ---------------------------------------------------------------------------


def _make_node(doc: Document, dag: DAG, types: OperatorTypes, name: str,
               node: NodeSpec) -> Operator:
    path = ("nodes", name)
    try:
        cls = types.resolve(node.type)
    except FlowError as exc:
        raise doc.error(str(exc), (*path, "type"), node=name) from exc

    def error_at(message: str, sub: tuple[str | int, ...]) -> FlowFileError:
        return doc.error(message, (*path, *sub), key=len(sub) <= 1, node=name)

    for reserved in ("name", "dag"):
        if reserved in node.params:
            raise error_at(f"'{reserved}' is not a parameter: the node's {reserved} comes "
                           "from the flow (its key under `nodes:`)", (reserved,))
    args = adapter_for(node.type).to_args(node.params, types, error_at)
    options: dict[str, Any] = {"name": name}
    if node.timeout is not None:
        options["timeout"] = node.timeout
    if node.retry is not None:
        options["retry"] = _retry_policy(doc, name, node.retry)
    try:
        return cls(**args, **options, dag=dag)
    except TypeError as exc:
        raise _bad_call(doc, name, node, cls, exc) from exc
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        param = str(first["loc"][0]) if first["loc"] else ""
        sub = (param,) if param in node.params else ()
        where = f"parameter '{param}': " if sub else ""
        raise error_at(f"{where}{first['msg']}", sub) from exc
    except FlowError as exc:
        raise error_at(str(exc), _param_named(exc, node)) from exc
    except Exception as exc:
        raise error_at(f"cannot build a '{node.type}' node: {type(exc).__name__}: {exc}",
                       ()) from exc


def _param_named(exc: FlowError, node: NodeSpec) -> tuple[str, ...]:
    """The parameter an operator's error is about, to point at its line: the
    template that does not parse, else the first parameter the message quotes."""
    if isinstance(exc, TemplateError):
        for key in ("system", "template", "messages"):
            if key in node.params and not _parses(node.params[key]):
                return (key,)
    quoted = re.findall(r"['`]([^'`]+)['`]", str(exc))
    return next(((q,) for q in quoted if q in node.params), ())


def _parses(value: Any) -> bool:
    import jinja2

    texts = [m.get("content", "") for m in value if isinstance(m, dict)] \
        if isinstance(value, list) else [value]
    try:
        for text in texts:
            jinja2.Environment().parse(str(text))
    except jinja2.TemplateSyntaxError:
        return False
    return True


def _bad_call(doc: Document, name: str, node: NodeSpec, cls: type[Operator],
              exc: TypeError) -> FlowFileError:
    accepted = _parameters(cls)
    listed = f" (parameters: {', '.join(accepted)})" if accepted else ""
    unexpected = _UNEXPECTED.search(str(exc))
    if unexpected and unexpected.group(1) in node.params:
        param = unexpected.group(1)
        return doc.error(f"type '{node.type}' takes no parameter '{param}'{listed}",
                         ("nodes", name, param), key=True, node=name)
    missing = _MISSING.search(str(exc))
    if missing:
        return doc.error(f"type '{node.type}' needs parameter {missing.group(1)}{listed}",
                         ("nodes", name), key=True, node=name)
    return doc.error(f"cannot build a '{node.type}' node: {exc}", ("nodes", name), key=True,
                     node=name)


def _parameters(cls: type[Operator]) -> list[str]:
    """Keyword parameters ``cls`` names (the node's own fields excluded)."""
    try:
        sig = inspect.signature(cls.__init__)
    except (TypeError, ValueError):
        return []
    skip = {"self", "name", "dag", "timeout", "retry", "input_type", "output_type",
            *NODE_FIELDS}
    return [p.name for p in sig.parameters.values()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name not in skip]


def _retry_policy(doc: Document, name: str, spec: RetrySpec) -> RetryPolicy:
    classes: list[type[BaseException]] = []
    for i, class_name in enumerate(spec.on):
        cls = _error_class(class_name)
        if cls is None:
            raise doc.error(f"retry.on: '{class_name}' is not an error class; use names from "
                            "smmf_flow.errors (BackendTimeout, WorkerUnavailable, ...) or "
                            "Exception", ("nodes", name, "retry", "on", i), node=name)
        classes.append(cls)
    return RetryPolicy(attempts=spec.attempts, backoff=spec.backoff,
                       max_backoff=spec.max_backoff, jitter=spec.jitter, on=tuple(classes))


def _error_class(name: str) -> type[Exception] | None:
    """The exception class a ``retry.on`` entry names: a public class of
    ``smmf_flow.errors`` or a built-in exception, nothing else."""
    if not name.isidentifier() or name.startswith("_"):
        return None
    public = vars(errors_module) if name in errors_module.__all__ else {}
    cls = public.get(name) or vars(builtins).get(name)
    return cls if isinstance(cls, type) and issubclass(cls, Exception) else None


# --- edges ---------------------------------------------------------------------------


def _connect_all(doc: Document, dag: DAG, spec: FlowSpec) -> None:
    for i, text in enumerate(spec.edges):
        try:
            pairs = parse_edges(text)
        except FlowError as exc:
            raise doc.error(str(exc), ("edges", i)) from exc
        for up, down in pairs:
            _connect(doc, dag, up, down, ("edges", i), f"edge {text!r}")
    for name, node in spec.nodes.items():
        for j, parent in enumerate(node.after):
            _connect(doc, dag, parent, name, ("nodes", name, "after", j),
                     f"`after: {parent}` of '{name}'")
    for op in dag.nodes:
        if not op.is_branch:
            continue
        raw = spec.nodes[op.name].params
        places = [("branches", k, "to") for k in range(len(raw.get("branches", [])))]
        places += [("default",)] if raw.get("default") is not None else []
        for target, place in zip(op.targets(), places):  # type: ignore[attr-defined]
            _connect(doc, dag, op.name, target, ("nodes", op.name, *place),
                     f"branch target '{target}'")


def _connect(doc: Document, dag: DAG, up: str, down: str, path: tuple[Any, ...],
             what: str) -> None:
    for end in (up, down):
        if end not in dag.graph:
            raise doc.error(f"{what} names unknown node '{end}'{_close(end, dag)}", path)
    if dag.graph.has_edge(up, down):
        return
    if up == down or nx.has_path(dag.graph, down, up):
        loop = nx.shortest_path(dag.graph, down, up) if up != down else [up]
        cycle = " >> ".join([*loop, down])
        raise doc.error(f"{what} closes a cycle: {cycle}", path)
    try:
        dag.add_edge(dag.node(up), dag.node(down))
    except FlowError as exc:
        raise doc.error(str(exc), path, node=down) from exc


def _close(name: str, dag: DAG) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(dag.graph.nodes), n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"{hint} (nodes: {', '.join(dag.graph.nodes)})"


# --- the whole graph -----------------------------------------------------------------


def _check_output(doc: Document, dag: DAG, spec: FlowSpec) -> None:
    if spec.output is not None:
        if spec.output not in dag.graph:
            raise doc.error(f"output names unknown node '{spec.output}'"
                            f"{_close(spec.output, dag)}", ("output",))
        return
    leaves = [n for n, d in dag.graph.out_degree() if d == 0]
    if len(leaves) > 1:
        raise doc.error(f"the flow has {len(leaves)} end nodes ({', '.join(leaves)}); set "
                        "`output:` to the node whose result is returned", ("nodes",), key=True)


def _check_graph(doc: Document, dag: DAG) -> None:
    try:
        validate_graph(dag)
    except FlowError as exc:
        message = str(exc).replace(f"DAG '{dag.name}': ", "").replace(
            f"DAG '{dag.name}'", "the flow")
        named = _named_nodes(message, exc, dag)
        path = ("nodes", named) if named else ("nodes",)
        raise doc.error(message, path, key=True) from exc


def _named_nodes(message: str, exc: FlowError, dag: DAG) -> str | None:
    """The first node a graph-check message names, to point the error at it."""
    if isinstance(exc, CycleError):
        candidates = message.rsplit(": ", 1)[-1].split(" >> ")
    else:
        candidates = re.findall(r"'([^']+)'", message)
    return next((c for c in candidates if c in dag.graph), None)


__all__ = ["build_dag"]
