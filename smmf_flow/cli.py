"""The ``smmf-flow`` command: run, validate, draw and export flows; list models.

Exit codes: 0 ok, 1 the run failed, 2 a usage or validation error. An error
is one line on stderr (``--debug`` adds the traceback). Output goes to stdout;
progress and the ``--trace`` table go to stderr, so piping keeps the result
clean.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import click
import yaml

from smmf_flow.console import Progress, dumps, human, jsonable, one_line, redact, table, \
    trace_table
from smmf_flow.errors import ConfigError, FlowError, SmmfError, describe
from smmf_flow.flowfile.flow import Flow, load_flow

_state = {"debug": False, "secrets": set()}


def _set_debug(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        _state["debug"] = True
    return value


_debug = click.option("--debug", is_flag=True, expose_value=False, callback=_set_debug,
                      help="Show the traceback of an error.")
_models = click.option("--models", "models_path", type=click.Path(dir_okay=False),
                       metavar="TOML", help="Model config (default: the flow's `models:`, "
                       "$SMMF_MODELS, or configs/default.toml).")
_plugins = click.option("--plugin", "plugins", multiple=True, metavar="MODULE",
                        help="Import MODULE for its operator types and functions "
                        "(repeatable).")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="smmf-flow", prog_name="smmf-flow")
@_debug
def cli() -> None:
    """Run, check and draw smmf-flow YAML flows; list the configured models."""


# --- run -----------------------------------------------------------------------------


@cli.command()
@click.argument("flow_file", metavar="FLOW")
@click.option("--input", "-i", "pairs", multiple=True, metavar="KEY=VALUE",
              help="An input value (repeatable); converted to the input's declared type.")
@click.option("--input-json", metavar="JSON", help="All inputs as a JSON object.")
@click.option("--input-file", type=click.Path(exists=True, dir_okay=False), metavar="PATH",
              help="All inputs from a JSON or YAML file.")
@click.option("--stream/--no-stream", default=None,
              help="Print tokens as they come (default: the flow's `stream:`).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--trace", is_flag=True, help="Print the per-node table (to stderr).")
@_models
@_plugins
@_debug
def run(flow_file: str, pairs: Sequence[str], input_json: str | None, input_file: str | None,
        stream: bool | None, as_json: bool, trace: bool, models_path: str | None,
        plugins: Sequence[str]) -> int:
    """Run FLOW and print its output."""
    flow = load_flow(flow_file, plugins=plugins)
    values, typed = _read_inputs(pairs, input_json, input_file)
    value = flow.prepare(values, from_strings=typed)
    progress = Progress()
    registry = _registry(flow, models_path, progress)
    flow.check(registry)
    streaming = flow.spec.stream if stream is None else stream
    from smmf_flow.runner.trace import Trace

    record = Trace()

    async def main() -> None:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(progress.tick)
            try:
                options = {"registry": registry, "trace": record, "hooks": [progress]}
                if streaming:
                    await _print_stream(flow, value, options, progress, as_json)
                else:
                    out = await flow.dag.arun(value, output=flow.output, **options)
                    progress.stop()
                    if as_json:
                        click.echo(dumps({"flow": flow.name, "output": out}))
                    else:
                        click.echo(human(out))
            finally:
                progress.stop()
                if trace:
                    _print_trace(flow, record, as_json)
                if registry is not None:
                    with anyio.CancelScope(shield=True):
                        await registry.aclose()

    anyio.run(main)
    return 0


async def _print_stream(flow: Flow, value: Any, options: dict[str, Any], progress: Progress,
                        as_json: bool) -> None:
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


def _read_inputs(pairs: Sequence[str], input_json: str | None,
                 input_file: str | None) -> tuple[Any, list[str]]:
    """The run's input values, and the names whose values are command-line text."""
    if input_json is not None and input_file is not None:
        raise click.UsageError("give --input-json or --input-file, not both")
    values: Any = None
    if input_json is not None:
        values = _parse(input_json, "--input-json", yaml_ok=False)
    elif input_file is not None:
        values = _parse(Path(input_file).read_text(encoding="utf-8"), input_file, yaml_ok=True)
    typed: list[str] = []
    if pairs:
        if values is not None and not isinstance(values, dict):
            raise click.UsageError("--input KEY=VALUE needs the other inputs to be a JSON "
                                   "object")
        values = dict(values or {})
        for pair in pairs:
            key, sep, text = pair.partition("=")
            if not sep or not key.strip():
                raise click.UsageError(f"--input takes KEY=VALUE, got {pair!r}")
            values[key.strip()] = text
            typed.append(key.strip())
    return values, typed


def _parse(text: str, source: str, *, yaml_ok: bool) -> Any:
    import json

    try:
        return yaml.safe_load(text) if yaml_ok else json.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise click.UsageError(f"{source} is not valid {'YAML/JSON' if yaml_ok else 'JSON'}: "
                               f"{one_line(str(exc))}") from None


def _registry(flow: Flow, override: str | None, progress: Progress | None = None) -> Any:
    """The model registry a flow runs against, or None when it calls no model and
    names no config."""
    if not (override or flow.spec.models or flow.uses_models):
        return None
    from smmf_flow.models.registry import ModelRegistry

    registry = ModelRegistry.from_toml(flow.models_path(override),
                                       on_event=progress.on_event if progress else None)
    _remember_secrets(registry)
    return registry


def _remember_secrets(registry: Any) -> None:
    for name in registry.names:
        config = registry.get(name)
        key = getattr(config, "api_key", None)
        if key:
            _state["secrets"].add(key)  # type: ignore[attr-defined]


# --- validate ------------------------------------------------------------------------


@cli.command()
@click.argument("flow_files", nargs=-1, required=True, metavar="FLOW...")
@_models
@_plugins
@_debug
def validate(flow_files: Sequence[str], models_path: str | None,
             plugins: Sequence[str]) -> int:
    """Check flows without running them; print each resolved plan."""
    failed = 0
    for path in flow_files:
        try:
            flow = load_flow(path, plugins=plugins)
            registry = _registry(flow, models_path)
            flow.check(registry)
            click.echo(_plan_text(flow, registry))
        except SmmfError as exc:
            if _state["debug"]:
                traceback.print_exc()
            click.echo(f"error: {_message(exc)}", err=True)
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
    rows = [[name, flow.kind(name), ", ".join(graph.pred[name]) or "(input)",
             bindings.get(name, "")] for name in flow.spec.nodes]
    edges = [f"{u} >> {v}" for u, v in graph.edges]
    head = (f"{flow.file}: ok — flow '{flow.name}', {_count(len(rows), 'node')}, "
            f"{_count(len(edges), 'edge')}, output '{flow.output}'"
            + (", streams" if flow.spec.stream else ""))
    lines = [head]
    if registry is not None:
        lines.append(f"models: {registry.source}")
    if flow.spec.inputs:
        lines.append("inputs: " + ", ".join(
            f"{n}: {s.type}{'' if s.required else ' = ' + repr(s.default)}"
            for n, s in flow.spec.inputs.items()))
    lines.append(table(rows, ["node", "type", "after", "model → provider → instances"]))
    return "\n".join(lines) + "\n"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


# --- graph ---------------------------------------------------------------------------


@cli.command()
@click.argument("flow_file", metavar="FLOW")
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot", "svg", "png"]),
              default="mermaid", show_default=True)
@click.option("-o", "--output", "out", type=click.Path(dir_okay=False), metavar="FILE",
              help="Write to FILE instead of stdout.")
@_plugins
@_debug
def graph(flow_file: str, fmt: str, out: str | None, plugins: Sequence[str]) -> int:
    """Draw FLOW as Mermaid, DOT, SVG or PNG."""
    from smmf_flow.flowfile.drawing import render_png, render_svg
    from smmf_flow.flowfile.graph import to_dot, to_mermaid, view_of

    flow = load_flow(flow_file, plugins=plugins)
    view = view_of(flow.dag, {name: flow.kind(name) for name in flow.spec.nodes})
    if fmt == "png":
        if importlib.util.find_spec("PIL") is None:
            raise click.UsageError("--format png needs Pillow (pip install pillow); "
                                   "--format svg needs nothing")
        if out is None and sys.stdout.isatty():
            raise click.UsageError("PNG is binary: give -o FILE or redirect stdout")
        data = render_png(view)
        if out is None:
            sys.stdout.buffer.write(data)
        else:
            Path(out).write_bytes(data)
        return 0
    render = {"mermaid": to_mermaid, "dot": to_dot, "svg": render_svg}[fmt]
    text = render(view)
    if out is None:
        click.echo(text, nl=False)
    else:
        Path(out).write_text(text, encoding="utf-8")
    return 0


# --- models --------------------------------------------------------------------------


@cli.group()
def models() -> None:
    """The models a config defines, and their pools."""


@models.command("list")
@_models
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_debug
def models_list(models_path: str | None, as_json: bool) -> int:
    """List configured models and groups (secrets are never shown)."""
    registry = _config_registry(models_path)
    rows = []
    for row in registry.list():
        config = registry.get(row.name)
        default = ("default llm" if row.name == registry.default_llm else
                   "default embedding" if row.name == registry.default_embedding else "")
        where = getattr(config, "api_base", None) or getattr(config, "path", None) or ""
        key = "set" if getattr(config, "api_key", None) else ""
        rows.append({"name": row.name, "kind": row.kind, "provider": row.provider,
                     "instances": row.instances, "where": where, "api_key": key,
                     "default": default})
    if as_json:
        click.echo(redact(dumps({"models": registry.source, "entries": rows}),
                          _state["secrets"]))  # type: ignore[arg-type]
        return 0
    click.echo(f"models: {registry.source}")
    header = ["name", "kind", "provider", "instances", "path / api_base", "api_key", "default"]
    click.echo(redact(table([list(r.values()) for r in rows], header),
                      _state["secrets"]))  # type: ignore[arg-type]
    return 0


@models.command("status")
@click.argument("names", nargs=-1, metavar="[MODEL...]")
@_models
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_debug
def models_status(names: Sequence[str], models_path: str | None, as_json: bool) -> int:
    """Load models (all, or those named), check their health, show each pool."""
    progress = Progress()
    registry = _config_registry(models_path, progress)
    wanted = list(names) or [r.name for r in registry.list() if r.kind != "group"]
    for name in wanted:
        registry.model(name)  # unknown names and groups fail before anything loads
    errors: dict[str, str] = {}
    stats: list[Any] = []

    async def start(name: str) -> None:
        try:
            await registry.pool(name).start()
            await registry.pool(name).check_health()
        except Exception as exc:
            errors[name] = describe(exc)

    async def main() -> None:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(progress.tick)
            async with anyio.create_task_group() as loads:
                for name in wanted:
                    loads.start_soon(start, name)
            progress.stop()
        stats.extend(registry.pool(name).stats() for name in wanted)
        await registry.aclose()

    anyio.run(main)
    rows = [[s.model, s.provider, s.status, i.id, i.state, i.done, i.failed,
             i.last_error or errors.get(s.model, "")] for s in stats for i in s.instances]
    secrets = _state["secrets"]
    if as_json:
        click.echo(redact(dumps({"models": registry.source, "pools": stats}), secrets))  # type: ignore[arg-type]
    else:
        click.echo(f"models: {registry.source}")
        click.echo(redact(table(rows, ["model", "provider", "pool", "instance", "state",
                                       "done", "failed", "last error"]), secrets))  # type: ignore[arg-type]
    return 1 if any(s.status != "ready" for s in stats) else 0


def _config_registry(models_path: str | None, progress: Progress | None = None) -> Any:
    from smmf_flow.models.registry import ModelRegistry
    from smmf_flow.scheduler.resolve import default_config_path

    path = Path(models_path) if models_path else default_config_path()
    registry = ModelRegistry.from_toml(path, on_event=progress.on_event if progress else None)
    _remember_secrets(registry)
    return registry


# --- export --------------------------------------------------------------------------


@cli.command()
@click.argument("target", metavar="MODULE:DAG_VAR")
@click.option("-o", "--output", "out", type=click.Path(dir_okay=False), metavar="FILE",
              help="Write to FILE instead of stdout.")
@click.option("--output-node", metavar="NODE",
              help="The node whose result the flow returns (when the DAG has several ends).")
@_plugins
@_debug
def export(target: str, out: str | None, output_node: str | None,
           plugins: Sequence[str]) -> int:
    """Write the Python DAG MODULE:DAG_VAR as a YAML flow file."""
    from smmf_flow.dag.dag import DAG
    from smmf_flow.flowfile.export import dump_flow
    from smmf_flow.flowfile.registry import OperatorTypes

    module_name, sep, attr = target.rpartition(":")
    if not sep or not module_name or not attr:
        raise click.UsageError(f"expected MODULE:DAG_VAR (e.g. examples.chain:dag), got "
                               f"{target!r}")
    module = _import_target(module_name)
    dag = getattr(module, attr, None)
    if not isinstance(dag, DAG):
        raise click.UsageError(f"{module_name}:{attr} is not a DAG "
                               f"({type(dag).__name__ if dag is not None else 'missing'})")
    types = OperatorTypes.default()
    for name in (*plugins, module.__name__):
        types.add_plugin(name, [Path.cwd()])
    text = dump_flow(dag, types=types, output=output_node)
    header = f"# exported by `smmf-flow export {target}`\n"
    if out is None:
        click.echo(header + text, nl=False)
    else:
        Path(out).write_text(header + text, encoding="utf-8")
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
    except ImportError as exc:
        raise click.UsageError(f"cannot import {name}: {exc}") from None


# --- entry point ---------------------------------------------------------------------


def _message(exc: BaseException) -> str:
    return redact(one_line(describe(exc)), _state["secrets"])  # type: ignore[arg-type]


def _exit_code(exc: BaseException) -> int:
    return 2 if isinstance(exc, (FlowError, ConfigError)) else 1


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    # the progress line is ours: keep libraries' download/load bars off the terminal
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        code = cli.main(args=list(argv) if argv is not None else None, prog_name="smmf-flow",
                        standalone_mode=False)
    except click.ClickException as exc:
        context = getattr(exc, "ctx", None)
        hint = f" (see '{context.command_path} --help')" if context is not None else ""
        click.echo(f"error: {one_line(exc.format_message())}{hint}", err=True)
        code = exc.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("interrupted", err=True)
        code = 130
    except BaseException as exc:  # noqa: BLE001 - the one place every error ends up
        while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
            exc = exc.exceptions[0]
        if isinstance(exc, SystemExit):
            raise
        if _state["debug"]:
            traceback.print_exception(exc)
        if isinstance(exc, SmmfError):
            click.echo(f"error: {_message(exc)}", err=True)
        else:
            hint = "" if _state["debug"] else " (--debug shows the traceback)"
            click.echo(f"error: internal error: {_message(exc)}{hint}", err=True)
        code = _exit_code(exc)
    sys.exit(code if isinstance(code, int) else 0)


__all__ = ["cli", "main"]
