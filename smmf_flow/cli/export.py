"""``smmf-flow export``: write a Python DAG as a YAML flow file."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from smmf_flow.cli.common import debug_option, plugins_option, write_output
from smmf_flow.errors import describe


@click.command()
@click.argument("target", metavar="MODULE:DAG_VAR")
@click.option(
    "-o",
    "--output",
    "out",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Write to FILE instead of stdout.",
)
@click.option(
    "--output-node",
    metavar="NODE",
    help="The node whose result the flow returns (when the DAG has several ends).",
)
@plugins_option
@debug_option
def export(target: str, out: str | None, output_node: str | None, plugins: Sequence[str]) -> int:
    """Write the Python DAG MODULE:DAG_VAR as a YAML flow file."""
    from smmf_flow.flowfile.export import dump_flow
    from smmf_flow.flowfile.registry import OperatorTypes
    from smmf_flow.runner.dag import DAG

    module_name, sep, attr = target.rpartition(":")
    if not sep or not module_name or not attr:
        raise click.UsageError(f"expected MODULE:DAG_VAR (e.g. examples.chain:dag), got {target!r}")
    module = _import_target(module_name)
    dag = getattr(module, attr, None)
    if not isinstance(dag, DAG):
        raise click.UsageError(
            f"{module_name}:{attr} is not a DAG "
            f"({type(dag).__name__ if dag is not None else 'missing'})"
        )
    types = OperatorTypes.default()
    for name in (*plugins, module.__name__):
        types.add_plugin(name, [Path.cwd()])
    text = dump_flow(dag, types=types, output=output_node)
    header = f"# exported by `smmf-flow export {target}`\n"
    if out is None:
        click.echo(header + text, nl=False)
    else:
        write_output(out, header + text)
    return 0


def _import_target(name: str) -> Any:
    """Import a module by dotted name or by ``path/to/file.py``."""
    sys.path.insert(0, str(Path.cwd()))
    try:
        if name.endswith(".py") or "/" in name:
            path = Path(name)
            if not path.is_file():
                raise click.UsageError(f"no such file: {name}")
            sys.path.insert(0, str(path.resolve().parent))
            name = path.stem
        return importlib.import_module(name)
    except click.UsageError:
        raise
    except Exception as exc:  # the module itself is broken: a syntax error, a failing import
        raise click.UsageError(f"cannot import {name}: {describe(exc)}") from None
