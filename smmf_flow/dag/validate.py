"""Whole-graph checks run before a flow runs: anything found here is found before
any node has done any work."""

from __future__ import annotations

import networkx as nx

from smmf_flow.dag.operator import Operator
from smmf_flow.errors import CycleError, FlowError


def validate_graph(name: str, graph: nx.DiGraph[str]) -> None:
    """Raise a ``FlowError`` naming the nodes at fault, or return quietly.

    ``graph`` is a ``Graph``'s networkx graph (each node's operator in ``op``);
    ``name`` is the DAG's, for messages."""
    if graph.number_of_nodes() == 0:
        raise FlowError(f"DAG '{name}' has no nodes")
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        cycle = None
    if cycle:
        path = " >> ".join([u for u, _ in cycle] + [cycle[0][0]])
        raise CycleError(f"DAG '{name}' has a cycle: {path}")
    if graph.number_of_nodes() > 1:
        lonely = [n for n in graph.nodes if graph.degree(n) == 0]
        if len(lonely) == 1:
            raise FlowError("connects to nothing; chain it with >> or remove it", node=lonely[0])
        if lonely:
            raise FlowError(
                f"DAG '{name}': nodes {', '.join(repr(n) for n in lonely)} "
                "connect to nothing; chain them with >> or remove them"
            )
    for _, data in graph.nodes(data=True):
        op: Operator = data["op"]
        if op.is_branch:  # a branch names the nodes it may route to
            targets: list[str] = getattr(op, "targets", list)()
            children = set(graph.succ[op.name])
            missing = [t for t in targets if t not in children]
            if missing:
                raise FlowError(
                    f"the branch routes to {', '.join(map(repr, missing))}, which "
                    f"{'is' if len(missing) == 1 else 'are'} not downstream of it; "
                    f"add `{op.name} >> <node>` for each branch",
                    node=op.name,
                )
