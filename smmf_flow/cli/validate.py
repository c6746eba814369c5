"""``smmf-flow validate``: check flows without running them and print each
resolved plan: nodes, edges, and model → provider → instances."""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from typing import Any

import click

from smmf_flow.cli.common import (
    State,
    debug_option,
    flow_registry,
    message,
    models_option,
    plugins_option,
)
from smmf_flow.cli.console import table
from smmf_flow.errors import SmmfError
from smmf_flow.flowfile.flow import INPUT_SUFFIXES, Flow, load_flow


@click.command()
@click.argument("flow_files", nargs=-1, required=True, metavar="FLOW...")
@models_option
@plugins_option
@debug_option
def validate(flow_files: Sequence[str], models_path: str | None, plugins: Sequence[str]) -> int:
    """Check flows without running them; print each resolved plan."""
    failed = 0
    for path in flow_files:
        if path.endswith(INPUT_SUFFIXES):  # as `serve --flows` does: `validate flows/*`
            click.echo(f"{path}: an input file (NAME.input.yaml), not a flow; skipped")
            continue
        try:
            flow = load_flow(path, plugins=plugins)
            registry = flow_registry(flow, models_path)
            flow.check(registry)
            click.echo(_plan_text(flow, registry))
        except SmmfError as exc:
            if State.debug:
                traceback.print_exc()
            click.echo(f"error: {message(exc)}", err=True)
            failed += 1
    return 2 if failed else 0


def _plan_text(flow: Flow, registry: Any) -> str:
    bindings: dict[str, str] = {}
    if registry is not None:
        from smmf_flow.scheduler.resolve import plan

        for row in plan(flow.dag, registry):
            described = [b.describe() for b in row.bindings]
            bindings[row.node] = "; ".join(dict.fromkeys(described))
    graph = flow.dag.graph
    rows = [
        [name, flow.kind(name), ", ".join(graph.pred[name]) or "(input)", bindings.get(name, "")]
        for name in flow.spec.nodes
    ]
    edges = [f"{u} >> {v}" for u, v in graph.edges]
    head = (
        f"{flow.file}: ok — flow '{flow.name}', {_count(len(rows), 'node')}, "
        f"{_count(len(edges), 'edge')}, output '{flow.output}'"
        + (", streams" if flow.spec.stream else "")
    )
    lines = [head]
    if registry is not None:
        lines.append(f"models: {registry.source}")
    if flow.spec.inputs:
        lines.append(
            "inputs: "
            + ", ".join(
                f"{n}: {s.type}{'' if s.required else ' = ' + repr(s.default)}"
                for n, s in flow.spec.inputs.items()
            )
        )
    lines.append(table(rows, ["node", "type", "after", "model → provider → instances"]))
    return "\n".join(lines) + "\n"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
