"""Drawing a flow as text: Mermaid and Graphviz DOT.

Both are made from one ``View`` of the DAG — boxes with the node's name, its
type and its most telling parameter (the model, the expression), and edges with
the branch condition that guards them — so the two formats, and the SVG/PNG
drawing in ``drawing.py``, always show the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from smmf_flow.dag.operator import Operator
from smmf_flow.runner.dag import DAG

_DETAIL_KEYS = ("model", "models", "expr", "template", "function")


@dataclass(frozen=True, slots=True)
class Box:
    name: str
    kind: str
    detail: str = ""
    shape: str = "box"  # box | diamond | round


@dataclass(frozen=True, slots=True)
class Arrow:
    up: str
    down: str
    label: str = ""
    stream: bool = False  # the upstream node emits a stream
    default: bool = False  # a branch's default route


@dataclass(slots=True)
class View:
    name: str
    boxes: list[Box] = field(default_factory=list)
    arrows: list[Arrow] = field(default_factory=list)


def view_of(dag: DAG, kinds: dict[str, str] | None = None) -> View:
    """What to draw for ``dag``; ``kinds`` overrides node type names (a flow file's)."""
    import networkx as nx

    view = View(dag.name)
    for name in nx.topological_sort(dag.graph):
        op = dag.node(name)
        kind = (kinds or {}).get(name) or op.kind or type(op).__name__
        shape = "diamond" if op.is_branch else "round" if kind == "input" else "box"
        view.boxes.append(Box(name, kind, _detail(op), shape))
    for up, down in dag.graph.edges:
        op = dag.node(up)
        label, default = _route(op, down)
        view.arrows.append(Arrow(up, down, label, op.streams, default))
    return view


def _detail(op: Operator) -> str:
    try:
        params = op.params()
    except Exception:  # a drawing never fails on an operator's params()
        params = {}
    for key in _DETAIL_KEYS:
        value = params.get(key)
        if isinstance(value, str) and value:
            return _short(value)
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return _short(" → ".join(value))
    fn = params.get("map_function") or params.get("combine_function") or params.get("fn")
    source = getattr(fn, "source", None) or getattr(fn, "__name__", None)
    return _short(source) if isinstance(source, str) and source != "<lambda>" else ""


def _route(op: Operator, child: str) -> tuple[str, bool]:
    if not op.is_branch:
        return "", False
    for predicate, target in getattr(op, "branch_pairs", None) or []:
        if getattr(target, "name", target) == child:
            text = str(getattr(predicate, "source", None) or getattr(predicate, "__name__", ""))
            return _short(text, 30), False
    default = getattr(op, "default", None)
    return ("default", True) if getattr(default, "name", default) == child else ("", False)


def _short(text: str, limit: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- Mermaid -------------------------------------------------------------------------


def to_mermaid(view: View) -> str:
    """A Mermaid ``flowchart`` (renders on GitHub and in most Markdown viewers)."""
    lines = ["flowchart TD"]
    opening = {"box": ('["', '"]'), "diamond": ('{"', '"}'), "round": ('(["', '"])')}
    for box in view.boxes:
        label = f"<b>{_m(box.name)}</b><br/><i>{_m(box.kind)}</i>"
        if box.detail:
            label += f"<br/>{_m(box.detail)}"
        left, right = opening[box.shape]
        lines.append(f"    {_mid(box.name)}{left}{label}{right}")
    for arrow in view.arrows:
        link = "-.->" if arrow.default else "==>" if arrow.stream else "-->"
        text = f'|"{_m(arrow.label)}"|' if arrow.label else ""
        lines.append(f"    {_mid(arrow.up)} {link}{text} {_mid(arrow.down)}")
    return "\n".join(lines) + "\n"


def _mid(name: str) -> str:
    return "n_" + name.replace("-", "__")


def _m(text: str) -> str:
    return (
        text.replace("&", "#amp;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")
    )


# --- DOT -----------------------------------------------------------------------------


def to_dot(view: View) -> str:
    """A Graphviz digraph (``dot -Tsvg``)."""
    shapes = {"box": "box", "diamond": "diamond", "round": "ellipse"}
    lines = [
        f"digraph {_q(view.name)} {{",
        "    rankdir=TB;",
        '    node [shape=box, style="rounded,filled", fillcolor="#eef3fb", '
        'fontname="Helvetica", fontsize=11];',
        '    edge [fontname="Helvetica", fontsize=9];',
    ]
    for box in view.boxes:
        label = f"{box.name}\n({box.kind})" + (f"\n{box.detail}" if box.detail else "")
        lines.append(f"    {_q(box.name)} [label={_q(label)}, shape={shapes[box.shape]}];")
    for arrow in view.arrows:
        attrs = []
        if arrow.label:
            attrs.append(f"label={_q(arrow.label)}")
        if arrow.default:
            attrs.append("style=dashed")
        if arrow.stream:
            attrs.append("penwidth=2")
        suffix = f" [{', '.join(attrs)}]" if attrs else ""
        lines.append(f"    {_q(arrow.up)} -> {_q(arrow.down)}{suffix};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


__all__ = ["Arrow", "Box", "View", "to_dot", "to_mermaid", "view_of"]
