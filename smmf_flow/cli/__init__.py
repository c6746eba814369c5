"""The ``smmf-flow`` command: run, validate, draw and export flows; list models.

One module per command. Exit codes: 0 ok, 1 the run failed, 2 a usage or
validation error, or a run's input that a node refused. An error is one line on
stderr (``--debug`` adds the traceback). Output goes to stdout; progress and the
``--trace`` table go to stderr, so piping keeps the result clean.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence

import click

from smmf_flow.cli.common import State, debug_option, exit_code, message, shown
from smmf_flow.cli.console import one_line
from smmf_flow.cli.export import export
from smmf_flow.cli.graph import graph
from smmf_flow.cli.models import models
from smmf_flow.cli.run import run
from smmf_flow.cli.schema import schema
from smmf_flow.cli.serve import serve
from smmf_flow.cli.validate import validate
from smmf_flow.errors import SmmfError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="smmf-flow", prog_name="smmf-flow")
@debug_option
def cli() -> None:
    """Run, check and draw smmf-flow YAML flows; list the configured models; serve both;
    print the flow files' JSON Schema."""


for command in (run, validate, graph, models, export, schema, serve):
    cli.add_command(command)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    # the progress line is ours: keep libraries' download/load bars off the terminal
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        code = cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="smmf-flow",
            standalone_mode=False,
        )
    except click.ClickException as exc:
        context = getattr(exc, "ctx", None)
        hint = f" (see '{context.command_path} --help')" if context is not None else ""
        click.echo(f"error: {one_line(exc.format_message())}{hint}", err=True)
        code = exc.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("interrupted", err=True)
        code = 130
    except BaseException as caught:  # the one place every error ends up
        error = shown(caught)
        if isinstance(error, SystemExit):
            raise
        if State.debug:
            traceback.print_exception(error)
        if isinstance(error, SmmfError):
            click.echo(f"error: {message(error)}", err=True)
        else:
            hint = "" if State.debug else " (--debug shows the traceback)"
            click.echo(f"error: internal error: {message(error)}{hint}", err=True)
        code = exit_code(error)
    sys.exit(code if isinstance(code, int) else 0)


__all__ = ["cli", "main"]
