"""``smmf-flow models list|status``: the models a config defines, and their
pools' health. ``smmf-flow models start|stop|restart|scale NAME --server URL``:
control a running server's model through its admin API (``admin_client.py``).
Secrets are never printed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio
import click

from smmf_flow.cli.common import (
    State,
    config_registry,
    debug_option,
    registry_models_option,
    safe,
)
from smmf_flow.cli.console import Progress, dumps, table
from smmf_flow.errors import describe


@click.group()
def models() -> None:
    """The models a config defines, and their pools."""


@models.command("list")
@registry_models_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@debug_option
def models_list(models_path: str | None, as_json: bool) -> int:
    """List configured models and groups (secrets are never shown)."""
    registry = config_registry(models_path)
    rows = []
    for row in registry.list():
        config = registry.get(row.name)
        default = (
            "default llm"
            if row.name == registry.default_llm
            else "default embedding"
            if row.name == registry.default_embedding
            else ""
        )
        where = getattr(config, "api_base", None) or getattr(config, "path", None) or ""
        key = "set" if getattr(config, "api_key", None) else ""
        rows.append(
            {
                "name": row.name,
                "kind": row.kind,
                "provider": row.provider,
                "instances": row.instances,
                "where": where,
                "api_key": key,
                "default": default,
            }
        )
    if as_json:
        click.echo(safe(dumps({"models": registry.source, "entries": rows})))
        return 0
    click.echo(f"models: {registry.source}")
    header = ["name", "kind", "provider", "instances", "path / api_base", "api_key", "default"]
    click.echo(safe(table([list(r.values()) for r in rows], header)))
    return 0


@models.command("status")
@click.argument("names", nargs=-1, metavar="[MODEL...]")
@registry_models_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--server",
    metavar="URL",
    help="Show a running server's pools (through its admin API) instead of loading here.",
)
@click.option(
    "--admin-key", envvar="SMMF_ADMIN_KEY", metavar="KEY", help="With --server: an admin key."
)
@debug_option
def models_status(
    names: Sequence[str],
    models_path: str | None,
    as_json: bool,
    server: str | None = None,
    admin_key: str | None = None,
) -> int:
    """Load models (all, or those named), check their health, show each pool."""
    if server:
        return _server_status(names, server, admin_key, as_json)
    progress = Progress()
    registry = config_registry(models_path, progress)
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
    rows = [
        [
            s.model,
            s.provider,
            s.status,
            i.id,
            i.state,
            i.placement if i.node is None else f"{i.placement} {i.node}",
            i.done,
            i.failed,
            i.last_error or errors.get(s.model, ""),
        ]
        for s in stats
        for i in s.instances
    ]
    if as_json:
        click.echo(safe(dumps({"models": registry.source, "pools": stats})))
    else:
        click.echo(f"models: {registry.source}")
        click.echo(
            safe(
                table(
                    rows,
                    [
                        "model",
                        "provider",
                        "pool",
                        "instance",
                        "state",
                        "where",
                        "done",
                        "failed",
                        "last error",
                    ],
                )
            )
        )
    return 1 if any(s.status != "ready" for s in stats) else 0


# --- a running server's models, through its admin API ------------------------------------

server_option = click.option(
    "--server",
    required=True,
    envvar="SMMF_SERVER",
    metavar="URL",
    help="The running server, e.g. http://127.0.0.1:8000 ($SMMF_SERVER).",
)
admin_key_option = click.option(
    "--admin-key",
    envvar="SMMF_ADMIN_KEY",
    metavar="KEY",
    help="An admin key of that server ($SMMF_ADMIN_KEY keeps it off the process list).",
)
grace_option = click.option(
    "--grace",
    "grace_s",
    type=click.FloatRange(0, 600),
    default=30.0,
    show_default=True,
    help="Seconds to let calls in flight finish before an instance is freed anyway.",
)
timeout_option = click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=900.0,
    show_default=True,
    help="Seconds to wait for the server's answer (loading a model takes a while).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


def _control(
    name: str,
    action: str,
    body: dict[str, Any],
    server: str,
    admin_key: str | None,
    timeout: float,
    as_json: bool,
) -> int:
    from smmf_flow.cli.admin_client import admin_request, model_path

    if admin_key:
        State.secrets.add(admin_key)
    answer = admin_request(server, admin_key, "POST", model_path(name, action), body, timeout)
    if as_json:
        click.echo(safe(dumps(answer)))
    else:
        click.echo(f"{action}: model '{answer['model']}' is {answer['status']}")
        rows = [_instance_row(i) for i in answer["instances"]]
        header = ["instance", "state", "in flight", "done", "failed", "last error"]
        click.echo(safe(table(rows, header)))
    return 0


def _server_status(names: Sequence[str], server: str, admin_key: str | None, as_json: bool) -> int:
    """``models status --server``: the server's pools as its admin API lists them."""
    from smmf_flow.cli.admin_client import admin_request, model_path

    if admin_key:
        State.secrets.add(admin_key)
    if names:  # each must be a model of that server (else a 404 naming it)
        listed = [admin_request(server, admin_key, "GET", model_path(n), None, 60) for n in names]
    else:
        listed = admin_request(server, admin_key, "GET", "/admin/models", None, 60)["models"]
    if as_json:
        click.echo(safe(dumps({"server": server, "models": listed})))
    else:
        click.echo(f"server: {server}")
        rows = [
            [m["model"], m["status"], *_instance_row(i), _where(i)]
            for m in listed
            for i in m["instances"]
        ]
        header = ["model", "pool", "instance", "state", "in flight", "done", "failed"]
        click.echo(safe(table(rows, [*header, "last error", "where"])))
    return 1 if any(m["status"] != "ready" for m in listed) else 0


def _where(instance: dict[str, Any]) -> str:
    placement, node = instance.get("placement", "local"), instance.get("node")
    return f"{placement} {node}" if node else str(placement)


def _instance_row(instance: dict[str, Any]) -> list[Any]:
    i = instance
    return [i["id"], i["state"], i["in_flight"], i["done"], i["failed"], i["last_error"] or ""]


def _instance_body(instance: int | None, grace_s: float | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {} if instance is None else {"instance": instance}
    if grace_s is not None:
        body["grace_s"] = grace_s
    return body


instance_option = click.option(
    "--instance",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Only instance N of the model (default: all of them).",
)


@models.command("start")
@click.argument("name")
@instance_option
@server_option
@admin_key_option
@timeout_option
@json_option
@debug_option
def models_start(
    name: str,
    instance: int | None,
    server: str,
    admin_key: str | None,
    timeout: float,
    as_json: bool,
) -> int:
    """Start a server's stopped model (or one instance of it), loading its weights."""
    return _control(name, "start", _instance_body(instance), server, admin_key, timeout, as_json)


@models.command("stop")
@click.argument("name")
@instance_option
@grace_option
@server_option
@admin_key_option
@timeout_option
@json_option
@debug_option
def models_stop(
    name: str,
    instance: int | None,
    grace_s: float,
    server: str,
    admin_key: str | None,
    timeout: float,
    as_json: bool,
) -> int:
    """Stop a server's model (or one instance): calls in flight finish, no new ones
    reach it, its weights are freed."""
    body = _instance_body(instance, grace_s)
    return _control(name, "stop", body, server, admin_key, timeout, as_json)


@models.command("restart")
@click.argument("name")
@instance_option
@grace_option
@server_option
@admin_key_option
@timeout_option
@json_option
@debug_option
def models_restart(
    name: str,
    instance: int | None,
    grace_s: float,
    server: str,
    admin_key: str | None,
    timeout: float,
    as_json: bool,
) -> int:
    """Reload a server's model with fresh backends, one instance at a time."""
    body = _instance_body(instance, grace_s)
    return _control(name, "restart", body, server, admin_key, timeout, as_json)


@models.command("scale")
@click.argument("name")
@click.argument("instances", type=click.IntRange(min=1))
@grace_option
@server_option
@admin_key_option
@timeout_option
@json_option
@debug_option
def models_scale(
    name: str,
    instances: int,
    grace_s: float,
    server: str,
    admin_key: str | None,
    timeout: float,
    as_json: bool,
) -> int:
    """Run INSTANCES instances of a server's model (idle ones are removed first)."""
    body = {"instances": instances, "grace_s": grace_s}
    return _control(name, "scale", body, server, admin_key, timeout, as_json)
