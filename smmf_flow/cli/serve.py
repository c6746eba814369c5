"""``smmf-flow serve``: the models behind an OpenAI-compatible API, and the flows
of a folder as HTTP endpoints (see ``smmf_flow.server``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from smmf_flow.cli.common import State, config_registry, debug_option, otel_option
from smmf_flow.errors import ServeError


@click.command()
@click.option(
    "--models",
    "models_path",
    type=click.Path(dir_okay=False, exists=True),
    metavar="TOML",
    help="Model config (default: $SMMF_MODELS, or the packaged default.toml).",
)
@click.option(
    "--flows",
    "flows_dir",
    type=click.Path(file_okay=False, exists=True),
    metavar="DIR",
    help="Serve every YAML flow in DIR at /v1/flows/NAME/run "
    "(NAME.input.yaml files are sample inputs, not flows).",
)
@click.option(
    "--strict-flows",
    is_flag=True,
    help="Stop (exit 2) if any flow in --flows is broken, instead of logging it "
    "and serving the others.",
)
@click.option(
    "--data-root",
    type=click.Path(file_okay=False, exists=True),
    metavar="DIR",
    help="The only folder a path in a flow run's input may name (default: each "
    "flow file's folder).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind; anything but loopback needs --api-key.",
)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--api-key",
    "api_keys",
    multiple=True,
    metavar="KEY",
    help="Require this key (repeatable). $SMMF_API_KEYS (comma-separated) keeps "
    "keys off the process list.",
)
@click.option(
    "--admin-key",
    "admin_keys",
    multiple=True,
    metavar="KEY",
    help="Open the admin API (/admin: start, stop, restart and scale models) to this "
    "key (repeatable); it is no API key. $SMMF_ADMIN_KEYS works too.",
)
@click.option(
    "--insecure-no-auth", is_flag=True, help="Allow a non-loopback --host without any API key."
)
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    metavar="NAME",
    help="Answer requests whose Host header is NAME (repeatable; '*' for any). "
    "IP addresses, localhost and --host are always allowed.",
)
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    metavar="ORIGIN",
    help="Let web pages at ORIGIN (e.g. https://app.example) call the server "
    "(repeatable; '*' for any). Other pages are refused.",
)
@click.option(
    "--max-body-bytes",
    type=click.IntRange(min=1024),
    default=None,
    help="Largest request body (default 4 MiB); larger is a 413.",
)
@click.option(
    "--default-max-tokens",
    type=click.IntRange(min=1),
    default=None,
    help="max_tokens of a request that gives none (default 512), within the "
    "model's context window.",
)
@click.option(
    "--limit",
    "limit_items",
    multiple=True,
    metavar="NAME=VALUE",
    help="Any other request limit (repeatable), e.g. --limit max_messages=64; see "
    "smmf_flow.server.limits.ServerLimits for the names.",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="'info' writes one JSON access-log line per request to stderr.",
)
@otel_option
@debug_option
def serve(
    models_path: str | None,
    flows_dir: str | None,
    strict_flows: bool,
    data_root: str | None,
    host: str,
    port: int,
    api_keys: Sequence[str],
    admin_keys: Sequence[str],
    insecure_no_auth: bool,
    allowed_hosts: Sequence[str],
    cors_origins: Sequence[str],
    max_body_bytes: int | None,
    default_max_tokens: int | None,
    limit_items: Sequence[str],
    log_level: str,
) -> int:
    """Serve the models (/v1/chat/completions, /v1/embeddings, ...) and flows over HTTP."""
    from smmf_flow.server.serve import ADMIN_KEYS_ENV, bind_socket, check_bind, keys_from_env
    from smmf_flow.server.serve import serve as run_server

    keys = [*api_keys, *keys_from_env()]
    admins = [*admin_keys, *keys_from_env(ADMIN_KEYS_ENV)]
    State.secrets.update(keys, admins)
    try:
        check_bind(host, keys, insecure_no_auth)
        if set(keys) & set(admins):
            raise ServeError("a key is given both as --api-key and as --admin-key")
        sock = bind_socket(host, port)  # before the models load: a busy port fails at once
    except ServeError as exc:
        raise click.UsageError(str(exc)) from None
    named = {"max_body_bytes": max_body_bytes, "default_max_tokens": default_max_tokens}
    limits = server_limits(limit_items, {k: v for k, v in named.items() if v is not None})
    registry = config_registry(models_path)
    run_server(
        registry=registry,
        flows=flows_dir,
        host=host,
        port=port,
        api_keys=api_keys,
        insecure_no_auth=insecure_no_auth,
        log_level=log_level,
        limits=limits,
        data_root=data_root,
        strict_flows=strict_flows,
        allowed_hosts=allowed_hosts,
        cors_origins=cors_origins,
        admin_keys=admin_keys,
        sock=sock,
    )
    return 0


def server_limits(items: Sequence[str], named: dict[str, Any]) -> Any:
    """``ServerLimits`` from ``--limit NAME=VALUE`` items and the named flags; a usage
    error that names the bad item."""
    from pydantic import ValidationError

    from smmf_flow.server.limits import ServerLimits

    values: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name.strip() not in ServerLimits.model_fields:
            known = ", ".join(ServerLimits.model_fields)
            raise click.UsageError(f"--limit {item!r}: give NAME=VALUE with NAME one of {known}")
        values[name.strip()] = value.strip()
    try:
        return ServerLimits(**{**values, **named})
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise click.UsageError(f"--limit {where}: {first['msg']}") from None
