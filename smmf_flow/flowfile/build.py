"""Building a DAG from a parsed flow file, with every error located.

The order is fixed, so errors come in a predictable order and edges get
predictable input slots: plugins, then nodes (type, parameters, construction),
then edges (the ``edges:`` list in order, then each node's ``after:``, then the
edges implied by branch targets), then the output node and the whole-graph
checks. A ``FlowError`` keeps its class; the file's ``Document`` fills in its
file, line and column from the node and parameter it names (or from the place
being built), never from its message.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import networkx as nx

import smmf_flow.errors as errors_module
from smmf_flow.dag import InputOperator, Operator, RetryPolicy, compatible, type_name
from smmf_flow.dag.validate import validate_graph
from smmf_flow.errors import FlowError, UnknownParameter, did_you_mean
from smmf_flow.flowfile.edges import parse_edges
from smmf_flow.flowfile.loader import Document
from smmf_flow.flowfile.node_params import node_args, params_model_of
from smmf_flow.flowfile.registry import OperatorTypes
from smmf_flow.flowfile.schema import FlowSpec, NodeSpec, RetrySpec, parse_spec
from smmf_flow.runner.dag import DAG


def build_dag(doc: Document, types: OperatorTypes) -> tuple[FlowSpec, DAG, OperatorTypes]:
    """Parse and build ``doc``; return its spec, its DAG and the types it used.
    The flow's ``plugins:`` must be modules in the flow file's folder."""
    spec = parse_spec(doc)
    types = types.copy()
    folder = Path(doc.file).parent.resolve()
    for i, module in enumerate(spec.plugins):
        with doc.locating(("plugins", i)):
            types.add_plugin(module, local_to=folder)
    dag = DAG(spec.name or Path(doc.file).stem, description=spec.description)
    for name, node in spec.nodes.items():
        _make_node(doc, dag, types, name, node)
    _connect_all(doc, dag, spec)
    _check_output(doc, dag, spec)
    _check_graph(doc, dag)
    _check_roots(doc, dag, spec)
    return spec, dag, types


# --- nodes ---------------------------------------------------------------------------


def _make_node(
    doc: Document, dag: DAG, types: OperatorTypes, name: str, node: NodeSpec
) -> Operator:
    with doc.locating(node=name, param="type"):
        cls = types.resolve(node.type)
    with doc.locating(node=name):
        for reserved in ("name", "dag"):
            if reserved in node.params:
                raise UnknownParameter(
                    f"'{reserved}' is not a parameter: the node's "
                    f"{reserved} comes from the flow (its key under "
                    "`nodes:`)",
                    param=reserved,
                )
        args = node_args(node.type, cls, node.params, types)
        options: dict[str, Any] = {"name": name}
        if node.timeout is not None:
            options["timeout"] = node.timeout
        if node.retry is not None:
            options["retry"] = _retry_policy(node.retry)
        try:
            return cls(**args, **options, dag=dag)
        except FlowError:
            raise
        except Exception as exc:
            raise FlowError(
                f"cannot build a '{node.type}' node: {type(exc).__name__}: {exc}"
            ) from exc


def _retry_policy(spec: RetrySpec) -> RetryPolicy:
    classes: list[type[BaseException]] = []
    for i, class_name in enumerate(spec.on):
        cls = _error_class(class_name)
        if cls is None:
            raise FlowError(
                f"retry.on: '{class_name}' is not an error class; use names from "
                "smmf_flow.errors (BackendTimeout, WorkerUnavailable, ...) or "
                "Exception",
                param=f"retry.on.{i}",
            )
        classes.append(cls)
    return spec.policy(on=tuple(classes))


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
        with doc.locating(("edges", i)):
            pairs = parse_edges(text)
        for up, down in pairs:
            _connect(doc, dag, up, down, ("edges", i), f"edge {text!r}")
    for name, node in spec.nodes.items():
        for j, parent in enumerate(node.after):
            _connect(
                doc,
                dag,
                parent,
                name,
                ("nodes", name, "after", j),
                f"`after: {parent}` of '{name}'",
            )
    for op in dag.nodes:
        if not op.is_branch:
            continue
        raw = spec.nodes[op.name].params
        places: list[tuple[str | int, ...]] = [
            ("branches", k, "to") for k in range(len(raw.get("branches", [])))
        ]
        places += [("default",)] if raw.get("default") is not None else []
        # a plugin's branch type may keep its targets elsewhere: unplaced ones are refused
        # by validation (not downstream of the branch), so the shorter list decides
        targets: list[str] = getattr(op, "targets", list)()  # a branch names them
        for target, place in zip(targets, places, strict=False):
            _connect(
                doc, dag, op.name, target, ("nodes", op.name, *place), f"branch target '{target}'"
            )


def _connect(doc: Document, dag: DAG, up: str, down: str, path: tuple[Any, ...], what: str) -> None:
    for end in (up, down):
        if end not in dag.graph:
            raise doc.error(f"{what} names unknown node '{end}'{_close(end, dag)}", path)
    if dag.graph.has_edge(up, down):
        return
    if up == down or nx.has_path(dag.graph, down, up):
        loop = nx.shortest_path(dag.graph, down, up) if up != down else [up]
        cycle = " >> ".join([*loop, down])
        raise doc.error(f"{what} closes a cycle: {cycle}", path)
    with doc.locating(path, node=down):
        dag.add_edge(dag.node(up), dag.node(down))


def _close(name: str, dag: DAG) -> str:
    return f"{did_you_mean(name, dag.graph.nodes)} (nodes: {', '.join(dag.graph.nodes)})"


# --- the whole graph -----------------------------------------------------------------


def _check_output(doc: Document, dag: DAG, spec: FlowSpec) -> None:
    if spec.output is not None:
        if spec.output not in dag.graph:
            raise doc.error(
                f"output names unknown node '{spec.output}'{_close(spec.output, dag)}", ("output",)
            )
        return
    leaves = [n for n, d in dag.graph.out_degree() if d == 0]
    if len(leaves) > 1:
        raise doc.error(
            f"the flow has {len(leaves)} end nodes ({', '.join(leaves)}); set "
            "`output:` to the node whose result is returned",
            ("nodes",),
            key=True,
        )


def _check_graph(doc: Document, dag: DAG) -> None:
    try:
        validate_graph(dag.name, dag.graph)
    except FlowError as exc:
        doc.locate(exc, None if exc.node else ("nodes",), key=True)
        raise


def _check_roots(doc: Document, dag: DAG, spec: FlowSpec) -> None:
    """A node that starts the flow gets the flow's inputs, a mapping, when the flow
    declares them: one whose port takes no mapping needs ``input_key`` (or a map
    node before it)."""
    if not spec.inputs:
        return
    for op in dag.nodes:
        port = op.input_type_at(0)
        if (
            dag.graph.in_degree(op.name)
            or isinstance(op, InputOperator)
            or port is None
            or compatible(Mapping[str, Any], port)
        ):
            continue
        first = next(iter(spec.inputs))
        model = params_model_of(type(op))
        fix = (
            f"add `input_key: {first}`"
            if model and "input_key" in model.model_fields
            else f"put a map node before it (expr: input.{first})"
        )
        error = FlowError(
            f"starts the flow, so it gets the flow's inputs, a mapping "
            f"({', '.join(spec.inputs)}), but it takes {type_name(port)}; "
            f"{fix}",
            node=op.name,
        )
        raise doc.locate(error)


__all__ = ["build_dag"]
