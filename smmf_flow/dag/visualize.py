"""``dag.visualize_dag()``: AWEL's look at a DAG, with no Graphviz needed.

AWEL prints the DAG as a tree, then renders it with the ``graphviz`` package
(or, without it, warns and draws nothing). Here the tree is printed the same
way and the picture's sources are written as AWEL names them, Graphviz DOT
(``dag-vis-NAME.gv``) and Mermaid (``dag-vis-NAME.md``), which need nothing
installed to write; ``smmf-flow graph`` draws SVG and PNG pictures.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import networkx as nx


def print_tree(graph: nx.DiGraph[str]) -> None:
    """Each root and what follows it, one node a line (AWEL's ``print_tree``)."""

    def show(name: str, level: int, prefix: str, last: bool) -> None:
        print(prefix + (" -> " if level else "") + repr(graph.nodes[name]["op"]))
        deeper = prefix + ("" if not level else "  " if last else "| ")
        children = list(graph.succ[name])
        for i, child in enumerate(children):
            show(child, level + 1, deeper, i == len(children) - 1)

    for root in [n for n, degree in graph.in_degree() if degree == 0]:
        show(root, 0, "", True)


def write_sources(
    graph: nx.DiGraph[str], name: str, directory: str | os.PathLike[str], filename: str | None
) -> Path:
    """Write the DOT and Mermaid sources of the graph; return the DOT file's path."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    dot_path = folder / (filename or f"dag-vis-{name}.gv")
    edges = list(graph.edges)
    dot = [f"digraph {_quote(name)} {{"]
    dot += [f"  {_quote(a)} -> {_quote(b)};" for a, b in edges]
    dot += [f"  {_quote(n)};" for n in graph.nodes if not graph.degree(n)]
    dot_path.write_text("\n".join([*dot, "}"]) + "\n", encoding="utf-8")
    mermaid = ["graph TD;"] + [f"    {a} --> {b};" for a, b in edges]
    mermaid += [f"    {n};" for n in graph.nodes if not graph.degree(n)]
    dot_path.with_suffix(".md").write_text("\n".join(mermaid) + "\n", encoding="utf-8")
    return dot_path


def _quote(text: Any) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'
