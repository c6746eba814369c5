"""``smmf-flow run``: run a flow and print its output, streaming tokens as they
come; ``--json`` for machines, ``--trace`` for the per-node table (stderr)."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import click
import yaml

from smmf_flow.cli.common import (
    debug_option,
    flow_registry,
    models_option,
    otel_option,
    plugins_option,
)
from smmf_flow.cli.console import Progress, dumps, human, one_line, trace_table
from smmf_flow.dag.trace import Trace
from smmf_flow.errors import InputError, NodeFailed
from smmf_flow.flowfile.flow import Flow, load_flow


@click.command()
@click.argument("flow_file", metavar="FLOW")
@click.option(
    "--input",
    "-i",
    "pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="An input value (repeatable); converted to the input's declared type.",
)
@click.option("--input-json", metavar="JSON", help="All inputs as a JSON object.")
@click.option(
    "--input-file",
    type=click.Path(exists=True, dir_okay=False),
    metavar="PATH",
    help="All inputs from a JSON or YAML file.",
)
@click.option(
    "--stream/--no-stream",
    default=None,
    help="Print tokens as they come (default: the flow's `stream:`).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--trace", is_flag=True, help="Print the per-node table (to stderr).")
@otel_option
@models_option
@plugins_option
@debug_option
def run(
    flow_file: str,
    pairs: Sequence[str],
    input_json: str | None,
    input_file: str | None,
    stream: bool | None,
    as_json: bool,
    trace: bool,
    models_path: str | None,
    plugins: Sequence[str],
) -> int:
    """Run FLOW and print its output."""
    flow = load_flow(flow_file, plugins=plugins)
    values, typed = _read_inputs(pairs, input_json, input_file)
    value = flow.prepare(values, from_strings=typed)
    progress = Progress()
    registry = flow_registry(flow, models_path, progress)
    flow.check(registry)
    streaming = flow.spec.stream if stream is None else stream
    record = Trace()

    async def main() -> None:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(progress.tick)
            try:
                options = {"registry": registry, "trace": record, "hooks": [progress]}
                if streaming:
                    await _print_stream(flow, value, options, progress, as_json)
                else:
                    out = await _collect(await flow.dag.arun(value, output=flow.output, **options))
                    progress.stop()
                    if as_json:
                        click.echo(dumps({"flow": flow.name, "output": out}))
                    else:
                        click.echo(human(out))
            except NodeFailed as failure:
                if isinstance(failure.__cause__, InputError):
                    flow.locate(failure.__cause__)
                raise
            finally:
                progress.stop()
                if trace:
                    _print_trace(flow, record, as_json)
                if registry is not None:
                    with anyio.CancelScope(shield=True):
                        await registry.aclose()

    anyio.run(main)
    return 0


async def _collect(out: Any) -> Any:
    """A stream output read to its end: the joined text of chunks that have text,
    else the list of chunks; any other output as it is."""
    if not isinstance(out, AsyncIterator):
        return out
    chunks = [chunk async for chunk in out]
    texts = [getattr(chunk, "text", chunk) for chunk in chunks]
    return "".join(texts) if all(isinstance(t, str) for t in texts) else chunks


async def _print_stream(
    flow: Flow, value: Any, options: dict[str, Any], progress: Progress, as_json: bool
) -> None:
    ended_line = True
    async for chunk in flow.dag.astream(value, output=flow.output, **options):
        progress.stop()
        if as_json:
            click.echo(dumps({"chunk": getattr(chunk, "text", chunk)}, indent=None))
            continue
        text = getattr(chunk, "text", None)
        if not isinstance(text, str):
            text = chunk if isinstance(chunk, str) else human(chunk) + "\n"
        sys.stdout.write(text)
        sys.stdout.flush()
        ended_line = text.endswith("\n") if text else ended_line
    if not as_json and not ended_line:
        sys.stdout.write("\n")


def _print_trace(flow: Flow, record: Any, as_json: bool) -> None:
    if as_json:
        click.echo(dumps({"trace": record.as_dicts()}, indent=None), err=True)
    else:
        kinds = {name: flow.kind(name) for name in flow.spec.nodes}
        click.echo(trace_table(record, kinds), err=True)


def _read_inputs(
    pairs: Sequence[str], input_json: str | None, input_file: str | None
) -> tuple[Any, list[str]]:
    """The run's input values, and the names whose values are command-line text."""
    if input_json is not None and input_file is not None:
        raise click.UsageError("give --input-json or --input-file, not both")
    values: Any = None
    if input_json is not None:
        values = _parse(input_json, "--input-json", yaml_ok=False)
    elif input_file is not None:
        values = _parse(_read_text(input_file), input_file, yaml_ok=True)
    typed: list[str] = []
    if pairs:
        if values is not None and not isinstance(values, dict):
            raise click.UsageError("--input KEY=VALUE needs the other inputs to be a JSON object")
        values = dict(values or {})
        for pair in pairs:
            key, sep, text = pair.partition("=")
            key = key.strip()
            if not sep or not key:
                raise click.UsageError(f"--input takes KEY=VALUE, got {pair!r}")
            if key in typed:  # the last one silently won
                raise click.UsageError(f"--input {key} given twice")
            values[key] = text
            typed.append(key)
    return values, typed


def _read_text(path: str) -> str:
    """The text of ``--input-file``; an ``InputError`` that names the file and the
    first bad byte when it is not UTF-8 (it was an internal error)."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: --input-file is not UTF-8 text (byte {exc.start})") from None


def _parse(text: str, source: str, *, yaml_ok: bool) -> Any:
    try:
        return yaml.safe_load(text) if yaml_ok else json.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise click.UsageError(
            f"{source} is not valid {'YAML/JSON' if yaml_ok else 'JSON'}: {one_line(str(exc))}"
        ) from None
