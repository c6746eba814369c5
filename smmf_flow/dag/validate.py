"""Whole-graph checks run before a flow runs: anything found here is found before
any node has done any work."""

from __future__ import annotations

from typing import TYPE_CHECKING

import networkx as nx

from smmf_flow.errors import CycleError, FlowError

if TYPE_CHECKING:
    from smmf_flow.dag.graph import Graph


def validate_graph(dag: Graph) -> None:
    """Raise a ``FlowError`` naming the nodes at fault, or return quietly."""
    graph = dag.graph
    if graph.number_of_nodes() == 0:
        raise FlowError(f"DAG '{dag.name}' has no nodes")
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        cycle = None
    if cycle:
        path = " >> ".join([u for u, _ in cycle] + [cycle[0][0]])
        raise CycleError(f"DAG '{dag.name}' has a cycle: {path}")
    if graph.number_of_nodes() > 1:
        lonely = [n for n in graph.nodes if graph.degree(n) == 0]
        if len(lonely) == 1:
            raise FlowError("connects to nothing; chain it with >> or remove it", node=lonely[0])
        if lonely:
            raise FlowError(
                f"DAG '{dag.name}': nodes {', '.join(repr(n) for n in lonely)} "
                "connect to nothing; chain them with >> or remove them"
            )
    for op in dag.nodes:
        if op.is_branch:
            targets = getattr(op, "targets", list)()
            children = set(graph.succ[op.name])
            missing = [t for t in targets if t not in children]
            if missing:
                raise FlowError(
                    f"the branch routes to {', '.join(map(repr, missing))}, which "
                    f"{'is' if len(missing) == 1 else 'are'} not downstream of it; "
                    f"add `{op.name} >> <node>` for each branch",
                    node=op.name,
                )
