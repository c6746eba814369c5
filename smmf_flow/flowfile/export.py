"""Writing a Python DAG as a flow file, so that loading it back gives an
equivalent DAG: the same nodes, types, parameters, timeouts, retry policies,
and edges in the same input order.

Only what a file can say is exported: registered operator types (each node's
class must be the one its ``kind`` names), parameters that are plain data, and
functions that are jinja2 ``Expression``s or module-level functions (whose
modules become the flow's ``plugins:``). Anything else is a ``FlowError``
naming the node, rather than a file that would load differently.
"""

from __future__ import annotations

from typing import Any

import networkx as nx
import yaml

from smmf_flow.dag.operator import Operator
from smmf_flow.dag.retry import RetryPolicy
from smmf_flow.errors import FlowError, located
from smmf_flow.flowfile.edges import format_chain
from smmf_flow.flowfile.node_params import adapter_for
from smmf_flow.flowfile.registry import OperatorTypes
from smmf_flow.runner.dag import DAG

_PLAIN = (str, int, float, bool, type(None))


def export_dag(
    dag: DAG,
    *,
    types: OperatorTypes | None = None,
    output: str | None = None,
    models: str | None = None,
) -> dict[str, Any]:
    """The flow-file data for ``dag`` (``dump_flow`` gives it as YAML text)."""
    types = types or OperatorTypes.default()
    if dag.graph.number_of_nodes() == 0:
        raise FlowError(f"DAG '{dag.name}' has no nodes to export")
    leaves = [n for n, d in dag.graph.out_degree() if d == 0]
    if output is None and len(leaves) > 1:
        raise FlowError(
            f"DAG '{dag.name}' has {len(leaves)} end nodes ({', '.join(leaves)}); "
            "say which one is the output"
        )
    order = list(nx.topological_sort(dag.graph))
    nodes = {name: _node(dag.node(name), types) for name in order}
    data: dict[str, Any] = {"version": 1, "name": dag.name}
    if dag.description:
        data["description"] = dag.description
    if models:
        data["models"] = models
    plugins = sorted(_modules(nodes.values()) | _plugin_modules(dag, types))
    if plugins:
        data["plugins"] = plugins
    data["nodes"] = nodes
    edges = _chains(dag, order)
    if edges:
        data["edges"] = edges
    if output is not None:
        dag.node(output)  # raises for an unknown name
        data["output"] = output
    return data


def dump_flow(dag: DAG, **options: Any) -> str:
    """``dag`` as flow-file YAML text."""
    data = export_dag(dag, **options)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def _node(op: Operator, types: OperatorTypes) -> dict[str, Any]:
    kind = types.kind_of(op)
    params = adapter_for(kind).to_params(op.params(), op.name)
    entry: dict[str, Any] = {"type": kind}
    for key, value in params.items():
        with located(node=op.name, param=key):
            entry[key] = _plain(value, f"parameter '{key}'")
    if op.timeout is not None:
        entry["timeout"] = op.timeout
    if op.retry is not None:
        entry["retry"] = _retry(op.retry)
    return entry


def _plain(value: Any, where: str) -> Any:
    """``value`` as YAML-safe data, or a ``FlowError`` saying where it is not."""
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, where) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise FlowError(f"{where}: mapping keys must be strings to be written to a file")
        return {k: _plain(v, where) for k, v in value.items()}
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return _plain(dump(mode="json", exclude_defaults=True), where)
    raise FlowError(
        f"{where} is a {type(value).__name__}, which a flow file cannot hold; "
        "give the operator plain-data parameters"
    )


def _retry(policy: RetryPolicy) -> dict[str, Any]:
    default = RetryPolicy()
    out: dict[str, Any] = {"attempts": policy.attempts}
    for name in ("backoff", "max_backoff", "jitter"):
        if getattr(policy, name) != getattr(default, name):
            out[name] = getattr(policy, name)
    if policy.on != default.on:
        out["on"] = [cls.__name__ for cls in policy.on]
    return out


def _modules(nodes: Any) -> set[str]:
    """Modules named by ``function:`` references anywhere in the nodes."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            ref = value.get("function")
            if isinstance(ref, str) and ":" in ref:
                found.add(ref.split(":", 1)[0])
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(list(nodes))
    return found


def _plugin_modules(dag: DAG, types: OperatorTypes) -> set[str]:
    """Modules of operator classes that only a plugin registers."""
    return {type(op).__module__ for op in dag.nodes if type(op).__module__ in types.plugins}


def _chains(dag: DAG, order: list[str]) -> list[str]:
    """The edges as ``a >> b >> c`` strings, each node's inputs in slot order.

    An edge into a node with one input extends the chain ending at its parent
    when that parent has one child; every other edge starts a new chain. Edges
    into a node with several inputs therefore appear in slot order.
    """
    graph = dag.graph
    chains: list[list[str]] = []
    tail: dict[str, list[str]] = {}
    for node in order:
        parents = sorted(graph.pred[node], key=lambda p: graph.pred[node][p]["slot"])
        for parent in parents:
            chain = tail.pop(parent, None)
            if chain is not None and graph.in_degree(node) == 1 and graph.out_degree(parent) == 1:
                chain.append(node)
            else:
                if chain is not None:
                    tail[parent] = chain
                chain = [parent, node]
                chains.append(chain)
            tail[node] = chain
    return [format_chain(c) for c in chains]


__all__ = ["dump_flow", "export_dag"]
