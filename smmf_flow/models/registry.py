"""The model registry: every model and group of a config, by name.

Looking a name up, listing, and validating load nothing; a model's pool is made
on the first ``pool(name)`` and its weights load on the pool's first call (or on
``warmup``). Groups stay data here (``group(name)``): the scheduler decides what
a fallback or routing group means. ``watch_health()`` runs the health loop of
every pool (see ``health.py``), for a long-lived process such as the server.

A registry owns what it starts, and whoever makes it closes it::

    with ModelRegistry.default() as models:        # or: async with
        dag.run(question, registry=models)

Closing stops every pool and drops ``attachments``: what higher layers keep per
registry (the scheduler, with its workers and embedding batchers), so nothing
outlives it. A closed registry can be used again; its pools load afresh.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import anyio

from smmf_flow.errors import ModelKindMismatch, ModelNotFound, refuse_inside_event_loop
from smmf_flow.models.checks import check_models, model_entries
from smmf_flow.models.config import GroupConfig, ModelConfig, ModelKind, ModelsFile
from smmf_flow.models.config_errors import ConfigSource
from smmf_flow.models.defaults import default_config
from smmf_flow.models.events import EventHook
from smmf_flow.models.loader import load_dict, load_toml
from smmf_flow.models.placement_ray import connect as connect_ray
from smmf_flow.models.pool import Pool

EntryKind = Literal["llm", "embedding", "group"]


@dataclass(frozen=True, slots=True)
class ModelRow:
    """One line of ``registry.list()`` (never carries secrets such as ``api_key``)."""

    name: str
    kind: EntryKind
    provider: str
    instances: int
    status: str


class ModelRegistry:
    """Models and groups by name, and their pools."""

    def __init__(
        self, models: ModelsFile, *, source: str = "<config>", on_event: EventHook | None = None
    ) -> None:
        """The registry of ``models``, checked first (a ``ModelsFile`` built in code;
        ``from_toml`` and ``from_dict`` take theirs from the loader, which checked
        them against the file's lines)."""
        check_models(models, ConfigSource(source, models.model_dump()))
        self._adopt(models, source, on_event)

    @classmethod
    def _of_checked(
        cls, models: ModelsFile, source: str, on_event: EventHook | None
    ) -> ModelRegistry:
        """The registry of ``models`` the loader has checked already."""
        registry = cls.__new__(cls)
        registry._adopt(models, source, on_event)
        return registry

    def _adopt(self, models: ModelsFile, source: str, on_event: EventHook | None) -> None:
        self.source = source
        self.on_event = on_event
        self._defaults = models.models
        self._ray = models.ray
        self._models: dict[str, tuple[ModelKind, ModelConfig]] = {
            m.name: ("llm" if table == "llms" else "embedding", m)
            for table, _, m in model_entries(models)
        }
        self._groups = {g.name: g for g in models.models.groups}
        self._pools: dict[str, Pool] = {}
        #: what higher layers keep for this registry, by key (the scheduler keeps itself
        #: under its class); emptied when the registry closes
        self.attachments: dict[object, object] = {}

    @classmethod
    def from_toml(
        cls,
        path: str | os.PathLike[str],
        *,
        on_event: EventHook | None = None,
        check_paths: bool = True,
    ) -> ModelRegistry:
        """The registry of the TOML config at ``path`` (raises ``ConfigError``)."""
        return cls._of_checked(load_toml(path, check_paths=check_paths), str(path), on_event)

    @classmethod
    def default(cls, *, on_event: EventHook | None = None) -> ModelRegistry:
        """The registry of the default config: ``$SMMF_MODELS``, else the one shipped
        in the package (``smmf_flow.models.default_config()``)."""
        return cls.from_toml(default_config(), on_event=on_event)

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        *,
        base_dir: str | os.PathLike[str] | None = None,
        on_event: EventHook | None = None,
        check_paths: bool = True,
        source: str = "<dict>",
    ) -> ModelRegistry:
        """The registry of a config given as data (``{"models": {...}}``)."""
        models = load_dict(data, source=source, base_dir=base_dir, check_paths=check_paths)
        return cls._of_checked(models, source, on_event)

    # --- lookup ------------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        """Every model and group name, models first, in config order."""
        return [*self._models, *self._groups]

    def __contains__(self, name: object) -> bool:
        return name in self._models or name in self._groups

    def get(self, name: str) -> ModelConfig | GroupConfig:
        """The config of a model or group; ``ModelNotFound`` (with close names) if absent."""
        if name in self._models:
            return self._models[name][1]
        if name in self._groups:
            return self._groups[name]
        raise ModelNotFound(name, self.names)

    def model(self, name: str) -> ModelConfig:
        """The config of a model (not a group)."""
        config = self.get(name)
        if isinstance(config, GroupConfig):
            raise ModelKindMismatch(
                f"'{name}' is a group of {', '.join(config.members)}, not a single model"
            )
        return config

    def group(self, name: str) -> GroupConfig:
        """The config of a group."""
        config = self.get(name)
        if not isinstance(config, GroupConfig):
            raise ModelKindMismatch(f"'{name}' is a model, not a group")
        return config

    def kind_of(self, name: str) -> EntryKind:
        """'llm', 'embedding' or 'group'."""
        self.get(name)
        return "group" if name in self._groups else self._models[name][0]

    def model_kind(self, name: str) -> ModelKind:
        """What the name does when called: a group does what its members do."""
        if self.kind_of(name) == "group":
            name = self._groups[name].members[0]  # members share one kind (checked on load)
        return self._models[name][0]

    @property
    def default_llm(self) -> str | None:
        return self._defaults.default_llm

    @property
    def default_embedding(self) -> str | None:
        return self._defaults.default_embedding

    def list(self) -> builtins.list[ModelRow]:
        """One row per model and group, with the pool's status where one exists."""
        rows = []
        for name, (kind, config) in self._models.items():
            pool = self._pools.get(name)
            rows.append(
                ModelRow(
                    name,
                    kind,
                    config.provider,
                    len(pool.instances) if pool else config.instances,  # scaled at run time
                    pool.status if pool else "not loaded",
                )
            )
        for name, group in self._groups.items():
            rows.append(
                ModelRow(
                    name,
                    "group",
                    f"group/{group.strategy}",
                    len(group.members),
                    "members: " + ", ".join(group.members),
                )
            )
        return rows

    # --- pools -------------------------------------------------------------------------

    def pool(self, name: str) -> Pool:
        """The pool serving model ``name``, made on first request; nothing loads here."""
        pool = self._pools.get(name)
        if pool is None:
            config = self.model(name)
            if config.placement == "ray":
                connect_ray(self._ray, self.source)  # an unreachable [ray] address: ConfigError
            pool = Pool(config, kind=self._models[name][0], on_event=self.on_event)
            self._pools[name] = pool
        return pool

    async def watch_health(self, *, scan_s: float = 1.0) -> None:
        """Run the health loop of every pool until cancelled (in a task group beside
        the work it keeps healthy); pools made later are found within ``scan_s``.
        Looking rather than being told keeps ``pool()`` free of event-loop ties."""
        watched: set[Pool] = set()
        async with anyio.create_task_group() as group:
            while True:
                for pool in [p for p in self._pools.values() if p not in watched]:
                    watched.add(pool)
                    group.start_soon(pool.watch_health)
                await anyio.sleep(scan_s)

    async def warmup(self, names: Iterable[str] | None = None) -> None:
        """Load the named models (groups load their members; all models by default)."""
        wanted: list[str] = []
        for name in self._models if names is None else names:
            members = self._groups[name].members if self.kind_of(name) == "group" else [name]
            wanted += [m for m in members if m not in wanted]
        pools = [self.pool(name) for name in wanted]
        async with anyio.create_task_group() as group:
            for pool in pools:
                group.start_soon(pool.start)

    # --- closing -------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop every pool and drop everything attached to this registry."""
        pools, self._pools = list(self._pools.values()), {}
        self.attachments.clear()
        for pool in pools:
            await pool.aclose()

    def close(self) -> None:
        """``aclose`` for synchronous code: runs it in an event loop of its own, so it
        cannot be called where one already runs (there, ``await registry.aclose()``)."""
        refuse_inside_event_loop(
            f"model registry {self.source}: cannot close it synchronously",
            "use `async with` or `await registry.aclose()`",
        )
        anyio.run(self.aclose)

    def __enter__(self) -> ModelRegistry:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> ModelRegistry:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
