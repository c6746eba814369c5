"""What the commands share: the ``--debug``, ``--models``, ``--plugin`` and
``--otel`` options, loading the model registry, writing an ``-o FILE``, and turning
an error into its one line with every secret the registry holds replaced by ``***``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import click

from smmf_flow import telemetry
from smmf_flow.cli.console import Progress, one_line, redact
from smmf_flow.errors import ConfigError, FlowError, InputError, NodeFailed, SmmfError, describe
from smmf_flow.flowfile.flow import Flow


class State:
    """Process-wide settings of one command invocation."""

    debug: ClassVar[bool] = False
    secrets: ClassVar[set[str]] = set()


def _set_debug(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        State.debug = True
    return value


debug_option = click.option(
    "--debug",
    is_flag=True,
    expose_value=False,
    callback=_set_debug,
    help="Show the traceback of an error.",
)


_Command = TypeVar("_Command", bound=Callable[..., Any])


def _models_option(default: str) -> Callable[[_Command], _Command]:
    return click.option(
        "--models",
        "models_path",
        type=click.Path(dir_okay=False),
        metavar="TOML",
        help=f"Model config (default: {default}).",
    )


models_option = _models_option("the flow's `models:`, $SMMF_MODELS, or the packaged default.toml")
#: the same for the commands that take no flow
registry_models_option = _models_option("$SMMF_MODELS, or the packaged default.toml")


def _set_telemetry(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    telemetry.configure(value)  # also when not given: the OTEL_* environment may ask
    return value


otel_option = click.option(
    "--otel",
    is_flag=True,
    expose_value=False,
    callback=_set_telemetry,
    help="Export OpenTelemetry traces of runs, nodes and model calls (where to: the "
    "OTEL_* environment; default OTLP over HTTP to localhost:4318). Setting "
    "OTEL_TRACES_EXPORTER or OTEL_EXPORTER_OTLP_ENDPOINT turns it on too.",
)
plugins_option = click.option(
    "--plugin",
    "plugins",
    multiple=True,
    metavar="MODULE",
    help="Import MODULE for its operator types and functions (repeatable).",
)


def flow_registry(flow: Flow, override: str | None, progress: Progress | None = None) -> Any:
    """The model registry a flow runs against, or None when it calls no model and
    names no config."""
    if not (override or flow.spec.models or flow.uses_models):
        return None
    if override or not flow.spec.models:
        return _load(flow.models_path(override), progress)
    try:
        return _load(flow.models_path(), progress)
    except ConfigError as exc:  # the flow's own `models:` names it: point there too
        raise flow.doc.error(f"the model config named here: {exc}", ("models",)) from exc


def config_registry(models_path: str | None, progress: Progress | None = None) -> Any:
    """The registry of ``--models``, else of the default config."""
    from smmf_flow.models.defaults import default_config

    return _load(Path(models_path) if models_path else default_config(), progress)


def _load(path: Path, progress: Progress | None) -> Any:
    from smmf_flow.models.registry import ModelRegistry

    registry = ModelRegistry.from_toml(path, on_event=progress.on_event if progress else None)
    for name in registry.names:
        key = getattr(registry.get(name), "api_key", None)
        if key:
            State.secrets.add(key)
    return registry


def write_output(path: str, data: str | bytes) -> None:
    """Write a command's result to its ``-o FILE``. A path that cannot be written is
    the user's to fix: a usage error (exit 2) naming the path and why, as click
    already names an ``-o`` that is a folder; it was an internal error."""
    target = Path(path)
    try:
        if isinstance(data, bytes):
            target.write_bytes(data)
        else:
            target.write_text(data, encoding="utf-8")
    except OSError as exc:
        raise click.BadParameter(
            f"cannot write '{path}': {_why_not(target, exc)}", param_hint="'-o' / '--output'"
        ) from None


def _why_not(target: Path, exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return f"the folder '{target.parent}' does not exist"
    if isinstance(exc, NotADirectoryError):
        blocker = next((p for p in reversed(target.parents) if p.is_file()), target.parent)
        return f"'{blocker}' is a file, not a folder"
    if isinstance(exc, IsADirectoryError):
        return "it is a folder"
    if isinstance(exc, PermissionError):
        return "permission denied"
    return exc.strerror or type(exc).__name__


def safe(text: str) -> str:
    """``text`` with every known secret replaced."""
    return redact(text, State.secrets)


def message(exc: BaseException) -> str:
    """The one line a user sees for ``exc``; control characters a file carried
    (an escape sequence in a node name) are shown escaped, never sent to the terminal."""
    return safe(printable(one_line(describe(exc))))


def printable(text: str) -> str:
    """``text`` with every control character written as ``\\xNN`` / ``\\uNNNN``."""
    return "".join(ch if ch.isprintable() or ch == " " else ascii(ch)[1:-1] for ch in text)


def shown(exc: BaseException) -> BaseException:
    """The error a user is shown for ``exc``: the one error of a task group, and a
    node's ``InputError`` rather than the ``NodeFailed`` around it (it names the
    node itself, and the input was wrong, not the run: exit 2, as a server's 422)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    if isinstance(exc, NodeFailed) and isinstance(exc.__cause__, InputError):
        return exc.__cause__
    return exc


def exit_code(exc: BaseException) -> int:
    """2 for a flow, config or run input that is wrong (a usage error), 1 otherwise;
    an error that knows its own (``exit_code``, the admin client's) says so."""
    own = getattr(exc, "exit_code", None)
    if isinstance(exc, SmmfError) and isinstance(own, int):
        return own
    return 2 if isinstance(exc, (FlowError, ConfigError, InputError)) else 1
