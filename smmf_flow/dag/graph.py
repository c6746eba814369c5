"""``Graph``: a named graph of operators, held in one ``networkx.DiGraph``.

The graph is the single source of truth: nodes are operator names (with the
operator in the node's ``op`` attribute), and each edge remembers the input
slot it feeds. This is the part of a flow that operators see: collecting nodes
(``with``), edges, lookups and validation (``validate.py``). Running lives one
layer up: ``smmf_flow.DAG`` (``runner/dag.py``) is the ``Graph`` you build flows
with, and it adds ``run``/``arun``/``astream``.
"""

from __future__ import annotations

import itertools
import os
from contextvars import Token
from typing import Any, Self

import networkx as nx

from smmf_flow.dag.operator import CURRENT_DAG, Operator, OwningDag
from smmf_flow.dag.ports import compatible, is_stream, type_name
from smmf_flow.dag.validate import validate_graph
from smmf_flow.dag.visualize import print_tree, write_sources
from smmf_flow.errors import DuplicateNodeError, EdgeTypeError, FlowError, ForeignNodeError


class Graph:
    """Operators and the edges between them.

    ``with DAG("name") as dag:`` collects the operators created inside it.
    """

    def __init__(self, name: str, *, description: str = "") -> None:
        self.name = name
        self.description = description
        self.graph: nx.DiGraph[str] = nx.DiGraph()
        #: bumped on every change, so cached plans and validations know they are stale
        self.version = 0
        self._tokens: list[Token[OwningDag | None]] = []
        self._counter = itertools.count(1)
        self._checked: tuple[int, int] | None = None

    # --- collecting nodes ----------------------------------------------------------

    def __enter__(self) -> Self:
        self._tokens.append(CURRENT_DAG.set(self))
        return self

    def __exit__(self, *exc: object) -> None:
        CURRENT_DAG.reset(self._tokens.pop())

    def add(self, op: Operator) -> Operator:
        """Add ``op`` as a node (naming it if it has no name)."""
        if op.dag is self:
            return op
        if op.dag is not None:
            raise ForeignNodeError(
                f"operator '{op.name}' already belongs to DAG "
                f"'{op.dag.name}'; it cannot join DAG '{self.name}'"
            )
        if not op.name:
            base = op.kind or type(op).__name__.lower()
            op.name = f"{base}_{next(self._counter)}"
            while op.name in self.graph:
                op.name = f"{base}_{next(self._counter)}"
        elif op.name in self.graph:
            raise DuplicateNodeError(
                f"DAG '{self.name}' already has a node named "
                f"'{op.name}'; give each node a unique name"
            )
        op.dag = self
        self.graph.add_node(op.name, op=op)
        self.version += 1
        return op

    def add_edge(self, upstream: Operator, downstream: Operator) -> None:
        """Add upstream→downstream; both must be nodes of this DAG."""
        for node in (upstream, downstream):
            if node.dag is not self:
                other = f"DAG '{node.dag.name}'" if node.dag else "no DAG"
                raise ForeignNodeError(
                    f"cannot connect '{upstream.name}' >> '{downstream.name}' in DAG "
                    f"'{self.name}': '{node.name}' belongs to {other}"
                )
        if self.graph.has_edge(upstream.name, downstream.name):
            return
        slot = self.graph.in_degree(downstream.name)
        check_edge(upstream, downstream, slot)
        self.graph.add_edge(upstream.name, downstream.name, slot=slot)
        self.version += 1

    # --- looking at the graph ------------------------------------------------------

    def node(self, name: str) -> Operator:
        """The operator called ``name``."""
        try:
            op: Operator = self.graph.nodes[name]["op"]
        except KeyError:
            raise FlowError(
                f"DAG '{self.name}' has no node '{name}' (nodes: {', '.join(self.graph.nodes)})"
            ) from None
        return op

    @property
    def nodes(self) -> list[Operator]:
        return [data["op"] for _, data in self.graph.nodes(data=True)]

    @property
    def roots(self) -> list[Operator]:
        return [self.node(n) for n, deg in self.graph.in_degree() if deg == 0]

    @property
    def leaves(self) -> list[Operator]:
        return [self.node(n) for n, deg in self.graph.out_degree() if deg == 0]

    def upstream(self, op: Operator) -> list[Operator]:
        """Parents of ``op`` in input-slot order."""
        pred = self.graph.pred[op.name]
        return [self.node(n) for n in sorted(pred, key=lambda p: pred[p]["slot"])]

    def downstream(self, op: Operator) -> list[Operator]:
        return [self.node(n) for n in self.graph.succ[op.name]]

    # --- checking and running --------------------------------------------------------

    def validate(self, registry: Any = None) -> None:
        """Check the whole flow (structure, then each node's ``check``); raise a ``FlowError``."""
        key = (self.version, id(registry))
        if self._checked == key:
            return
        validate_graph(self.name, self.graph)
        for op in self.nodes:
            op.check(registry)
        self._checked = key

    async def arun(self, input: Any = None, **options: Any) -> Any:
        """Running belongs to the runner layer: a plain ``Graph`` cannot run."""
        raise FlowError(
            f"graph '{self.name}' cannot run: build flows with smmf_flow.DAG, which runs them"
        )

    def visualize_dag(
        self,
        view: bool = False,
        *,
        directory: str | os.PathLike[str] = ".",
        filename: str | None = None,
    ) -> str:
        """AWEL's look at the DAG: print it as a tree, write its Graphviz (DOT)
        and Mermaid sources; return the DOT file's path. ``view`` is accepted
        for AWEL's sake; nothing is opened (``smmf-flow graph`` draws pictures)."""
        print_tree(self.graph)
        return str(write_sources(self.graph, self.name, directory, filename))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} '{self.name}': {self.graph.number_of_nodes()} nodes>"


def check_edge(upstream: Operator, downstream: Operator, slot: int) -> None:
    """Raise ``EdgeTypeError`` if ``upstream``'s output cannot feed input ``slot``."""
    expected = downstream.input_type_at(slot)
    ends = f"'{upstream.name}' >> '{downstream.name}'"
    if expected is None:
        arity = len(downstream.input_types)
        raise EdgeTypeError(
            f"cannot connect {ends}: '{downstream.name}' takes {arity} input"
            f"{'s' if arity != 1 else ''} and already has {slot} upstream; "
            "combine several upstreams with a JoinOperator first"
        )
    produced = upstream.output_type
    if compatible(produced, expected):
        return
    hint = ""
    if is_stream(produced) and not is_stream(expected):
        hint = (
            "; a stream cannot feed a node that takes a value: put an "
            "UnstreamifyOperator or ReduceStreamOperator between them"
        )
    elif is_stream(expected) and not is_stream(produced):
        hint = "; a value cannot feed a stream input: put a StreamifyOperator between them"
    raise EdgeTypeError(
        f"cannot connect {ends}: '{upstream.name}' outputs {type_name(produced)} but "
        f"'{downstream.name}' input {slot + 1} expects {type_name(expected)}{hint}"
    )


__all__ = ["Graph", "check_edge"]
