"""``smmf-flow models list|status``: the models a config defines, and their
pools' health. Secrets are never printed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio
import click

from smmf_flow.cli.common import config_registry, debug_option, models_option, safe
from smmf_flow.cli.console import Progress, dumps, table
from smmf_flow.errors import describe


@click.group()
def models() -> None:
    """The models a config defines, and their pools."""


@models.command("list")
@models_option
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
@models_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@debug_option
def models_status(names: Sequence[str], models_path: str | None, as_json: bool) -> int:
    """Load models (all, or those named), check their health, show each pool."""
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
            i.placement if i.node is None else f"{i.placement} {i.node}",
            i.state,
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
                        "where",
                        "state",
                        "done",
                        "failed",
                        "last error",
                    ],
                )
            )
        )
    return 1 if any(s.status != "ready" for s in stats) else 0
