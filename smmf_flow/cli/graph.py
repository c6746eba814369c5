"""``smmf-flow graph``: draw a flow as Mermaid, DOT, SVG or PNG (no Graphviz
needed; PNG uses Pillow)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence

import click

from smmf_flow.cli.common import debug_option, plugins_option, write_output
from smmf_flow.flowfile.flow import load_flow


@click.command()
@click.argument("flow_file", metavar="FLOW")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mermaid", "dot", "svg", "png"]),
    default="mermaid",
    show_default=True,
)
@click.option(
    "-o",
    "--output",
    "out",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Write to FILE instead of stdout.",
)
@plugins_option
@debug_option
def graph(flow_file: str, fmt: str, out: str | None, plugins: Sequence[str]) -> int:
    """Draw FLOW as Mermaid, DOT, SVG or PNG."""
    from smmf_flow.flowfile.drawing import render_png, render_svg
    from smmf_flow.flowfile.graph import to_dot, to_mermaid, view_of

    flow = load_flow(flow_file, plugins=plugins)
    view = view_of(flow.dag, {name: flow.kind(name) for name in flow.spec.nodes})
    if fmt == "png":
        if importlib.util.find_spec("PIL") is None:
            raise click.UsageError(
                "--format png needs Pillow (pip install pillow); --format svg needs nothing"
            )
        if out is None and sys.stdout.isatty():
            raise click.UsageError("PNG is binary: give -o FILE or redirect stdout")
        data = render_png(view)
        if out is None:
            sys.stdout.buffer.write(data)
        else:
            write_output(out, data)
        return 0
    render = {"mermaid": to_mermaid, "dot": to_dot, "svg": render_svg}[fmt]
    text = render(view)
    if out is None:
        click.echo(text, nl=False)
    else:
        write_output(out, text)
    return 0
