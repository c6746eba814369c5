"""``smmf-flow schema``: print the JSON Schema of flow files (for editors)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import click

from smmf_flow.cli.common import debug_option, plugins_option, write_output


@click.command()
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
def schema(out: str | None, plugins: Sequence[str]) -> int:
    """Print the JSON Schema of flow files: the built-in node types, and those of
    --plugin modules. Name it in a flow's first line for completion and checks:
    `# yaml-language-server: $schema=flow.schema.json`."""
    from smmf_flow.flowfile.json_schema import flow_schema
    from smmf_flow.flowfile.registry import OperatorTypes

    types = OperatorTypes()
    for module in plugins:
        types.add_plugin(module, [Path.cwd()])
    text = schema_text(flow_schema(types))
    if out:
        write_output(out, text)
    else:
        click.echo(text, nl=False)
    return 0


def schema_text(data: object) -> str:
    """The schema as the published file holds it: indented JSON and a final newline."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


__all__ = ["schema", "schema_text"]
