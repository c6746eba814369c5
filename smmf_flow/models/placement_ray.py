"""``placement = "ray"``: each instance's backend lives in a Ray actor.

The pool, its strategies, the breaker and fallback see an ordinary ``Backend``:
``RayBackend`` is a thin proxy whose calls go to an async actor (``BackendActor``)
that builds and holds the real backend, so every provider works on Ray unchanged.
A stream is a Ray streaming generator read chunk by chunk; closing or cancelling
it cancels the remote generation (``ray.cancel``), so the slot is free at once.

Faults: a call that finds the actor dead (``ray.kill``, its node lost) raises
``WorkerLost``, which trips the instance at once; a fallback continues the stream
elsewhere. Ray restarts the actor (``max_restarts``) with nothing loaded; the
pool's re-probe (``health``) loads the model again and the instance is back.

The cluster is per process, as Ray's connection is: the first registry that
places a model on Ray connects to its ``[ray]`` address (or starts a local Ray
when there is none); an address that cannot be reached is a ``ConfigError``.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import aclosing
from typing import Any, TypeVar

import anyio

from smmf_flow.errors import (
    BackendConnectionError,
    BackendError,
    ConfigError,
    MissingDependency,
    ModelLoadError,
    WorkerLost,
)
from smmf_flow.models.backends import Backend, Capabilities, backend_class
from smmf_flow.models.backends.base import BackendFactory
from smmf_flow.models.config import ModelConfig, RaySettings
from smmf_flow.models.types import ChatChunk, ChatRequest, ChatResult

T = TypeVar("T")
#: seconds a TCP connect to the head node may take before it counts as unreachable
CONNECT_TIMEOUT_S = 3.0
#: chunks an actor may produce ahead of the reader: a stream is read lazily, and a
#: reader that stops leaves the actor waiting, not generating
READ_AHEAD_CHUNKS = 8
#: seconds a token count waits for its actor (restarted, loading) before estimating
COUNT_TIMEOUT_S = 30.0


# --- the cluster ----------------------------------------------------------------------


def _ray() -> Any:
    try:
        import ray
    except ModuleNotFoundError as exc:
        raise MissingDependency(
            f"placement = \"ray\" needs the module '{exc.name}'; pip install 'smmf-flow[ray]'"
        ) from exc
    return ray


def connect(settings: RaySettings | None, source: str = "<config>") -> None:
    """Join the cluster ``settings`` name (once per process; a Ray this process
    already joined is kept), or start a local one when no address is given."""
    ray = _ray()
    settings = settings or RaySettings()
    address = settings.address
    where = f"{source}: [ray], field 'address'"
    if address not in (None, "auto"):
        _check_reachable(address, where)  # even when joined: the config names a dead cluster
    if ray.is_initialized():
        return
    options: dict[str, Any] = {
        "namespace": settings.namespace,
        "runtime_env": settings.runtime_env,
        "logging_level": logging.WARNING,
        "log_to_driver": False,
    }
    if address is None:
        ray.init(
            num_cpus=settings.num_cpus or os.cpu_count() or 1,
            include_dashboard=False,
            **options,
        )
        return
    try:
        ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        raise ConfigError(
            f"{where}: cannot reach the Ray cluster at {address!r} ({exc}); start it "
            "with `ray start --head`, or fix the address"
        ) from None


def _check_reachable(address: str, where: str) -> None:
    """Fail fast, naming the address, when nothing listens there (``ray.init``
    would retry for a minute before saying so)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise ConfigError(
            f"{where}: cannot reach the Ray cluster at {address!r} "
            f"({exc.strerror or exc}); start it with `ray start --head`, or fix the address"
        ) from None


def _node_options(config: ModelConfig) -> dict[str, Any]:
    """Ray's scheduling options for ``config.node``: a node id or IP pins the actor
    to that node (hard affinity); ``key=value`` asks for a node with that label."""
    node = config.node
    if node is None:
        return {}
    ray = _ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    if "=" in node:
        key, _, value = node.partition("=")
        return {"label_selector": {key.strip(): value.strip()}}
    alive = [n for n in ray.nodes() if n.get("Alive")]
    if re.fullmatch(r"[0-9a-fA-F]{56}", node):
        matches = [n for n in alive if n["NodeID"] == node.lower()]
    else:
        wanted = ipaddress.ip_address(node)
        matches = [n for n in alive if ipaddress.ip_address(n["NodeManagerAddress"]) == wanted]
    if not matches:
        known = ", ".join(f"{n['NodeID'][:12]}…@{n['NodeManagerAddress']}" for n in alive)
        raise ConfigError(
            f"model '{config.name}', field 'node': no live Ray node is {node!r} "
            f"(nodes: {known or 'none'})"
        )
    return {"scheduling_strategy": NodeAffinitySchedulingStrategy(matches[0]["NodeID"], soft=False)}


def ray_factory(config: ModelConfig, engine: BackendFactory) -> BackendFactory:
    """How instances of ``config`` build their backend: a proxy to an actor that
    runs ``engine``. Joins the cluster (a local Ray if none was named) first."""
    ray = _ray()
    connect(None)  # a registry with a [ray] table has connected already
    options: dict[str, Any] = {
        "max_restarts": config.max_restarts,
        "max_task_retries": 0,  # a call is never replayed: fallback decides
        **_node_options(config),
    }
    if config.num_cpus is not None:
        options["num_cpus"] = config.num_cpus
    if config.num_gpus is not None:
        options["num_gpus"] = config.num_gpus
    if config.resources:
        options["resources"] = dict(config.resources)
    actor_class = ray.remote(BackendActor).options(**options)

    def build(config: ModelConfig, instance_id: str) -> Backend:
        return RayBackend(config, instance_id, engine(config, instance_id), actor_class)

    return build


# --- inside the actor -------------------------------------------------------------------


class BackendActor:
    """Builds and holds one backend in a Ray worker process. Every call loads it
    first if needed, so an actor Ray restarted comes back on its first probe."""

    def __init__(self, config: dict[str, Any], instance_id: str) -> None:
        cfg = ModelConfig.model_validate(config)
        self.backend = backend_class(cfg.provider)(cfg, instance_id)
        self.loaded = False
        self.lock = anyio.Lock()
        self.streaming = 0  # streams in progress here (a cancelled one ends at once)

    async def _ready(self) -> Backend:
        if not self.loaded:
            async with self.lock:
                if not self.loaded:
                    await self.backend.load()
                    self.loaded = True
        return self.backend

    async def load(self) -> str:
        await self._ready()
        return where_am_i()

    async def health(self) -> str:
        await (await self._ready()).health()
        return where_am_i()

    async def aclose(self) -> None:
        if self.loaded:
            self.loaded = False
            await self.backend.aclose()

    async def chat(self, request: ChatRequest) -> ChatResult:
        return await (await self._ready()).chat(request)

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        backend = await self._ready()
        self.streaming += 1
        try:
            async with aclosing(backend.stream_chat(request)) as chunks:  # type: ignore[type-var]  # a backend's stream is an async generator (Backend.stream_chat)
                async for chunk in chunks:
                    yield chunk
        finally:
            self.streaming -= 1

    async def streams(self) -> int:
        """Streams in progress in this actor."""
        return self.streaming

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return await (await self._ready()).embed(texts)

    async def count_tokens(self, text: str) -> int:
        return (await self._ready()).count_tokens(text)


def where_am_i() -> str:
    """This worker's node, ``id@ip`` (the id shortened to 12 hex digits)."""
    ray = _ray()
    node_id = ray.get_runtime_context().get_node_id()
    return f"{node_id[:12]}@{ray.util.get_node_ip_address()}"


# --- in the caller's process ------------------------------------------------------------


class RayBackend(Backend):
    """The pool's view of a backend held by a Ray actor. What needs no engine
    (capabilities, fingerprint, a token estimate) is answered here by an unloaded
    copy of the backend; everything else is one actor call."""

    provider = "ray"

    def __init__(
        self, config: ModelConfig, instance_id: str, local: Backend, actor_class: Any
    ) -> None:
        super().__init__(config, instance_id)
        self._local = local
        self._actor_class = actor_class
        self._actor: Any = None
        self._node: str | None = None

    @property
    def capabilities(self) -> Capabilities:
        return self._local.capabilities

    @property
    def node(self) -> str | None:
        return self._node

    @property
    def actor(self) -> Any:
        """The Ray actor handle (None until loaded), for operators' tools and tests."""
        return self._actor

    def fingerprint(self) -> str:
        return self._local.fingerprint()

    def count_tokens(self, text: str) -> int:
        """The engine's own count once loaded: a blocking round trip, which waits
        for an actor Ray is restarting (a fallback counts what a dead instance
        wrote, and an estimate there would change the answer's length)."""
        if self._actor is None:
            return Backend.count_tokens(self, text)
        ray = _ray()
        deadline = time.monotonic() + COUNT_TIMEOUT_S
        while time.monotonic() < deadline:
            ref = self._actor.count_tokens.remote(text)
            try:
                return int(ray.get(ref, timeout=max(0.1, deadline - time.monotonic())))
            except ray.exceptions.RayActorError:  # restarting: ask the restarted actor
                time.sleep(0.1)
            except Exception:
                break
        return Backend.count_tokens(self, text)  # gone for good: the estimate

    async def load(self) -> None:
        """Start the actor and load the model in it. An actor no node can take waits
        for one; after ``timeout_s`` that is a ``ModelLoadError`` saying what it asked."""
        cfg = self.config
        self._actor = self._actor_class.remote(cfg.model_dump(), self.instance_id)
        with anyio.move_on_after(cfg.timeout_s):
            self._node = await self._call(self._actor.load.remote())
            return
        _ray().kill(self._actor, no_restart=True)
        self._actor = None
        asked = {"num_cpus": cfg.num_cpus, "num_gpus": cfg.num_gpus, "node": cfg.node}
        wants = ", ".join(f"{k} = {v!r}" for k, v in asked.items() if v is not None)
        if cfg.resources:
            wants = ", ".join(filter(None, (wants, f"resources = {cfg.resources}")))
        raise ModelLoadError(
            f"model '{cfg.name}' instance '{self.instance_id}': not placed and loaded on "
            f"Ray within timeout_s = {cfg.timeout_s:g}; does a live node offer what it "
            f"asks ({wants or 'nothing special'})?",
            model=cfg.name,
            instance=self.instance_id,
        )

    async def aclose(self) -> None:
        actor, self._actor = self._actor, None
        if actor is None:
            return
        ray = _ray()
        try:
            with anyio.move_on_after(self.config.timeout_s):
                await self._call(actor.aclose.remote())
        except BackendError:
            pass  # gone already: nothing left to free
        finally:
            ray.kill(actor, no_restart=True)

    async def health(self) -> None:
        self._node = await self._call(self._live().health.remote())

    async def chat(self, request: ChatRequest) -> ChatResult:
        return await self._call(self._live().chat.remote(request))

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return await self._call(self._live().embed.remote(texts))

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        ray = _ray()
        actor = self._live()
        refs = actor.stream_chat.options(
            num_returns="streaming", _generator_backpressure_num_objects=READ_AHEAD_CHUNKS
        ).remote(request)
        finished = False
        try:
            async for ref in refs:
                yield await ref
            finished = True
        except ray.exceptions.RayError as exc:
            finished = True
            raise self._error(exc) from None
        finally:
            if not finished:  # closed early, cancelled or failed here: stop the actor's work
                ray.cancel(refs)

    def _live(self) -> Any:
        if self._actor is None:
            raise BackendConnectionError(
                f"model '{self.config.name}' instance '{self.instance_id}' has no actor "
                "(not loaded, or closed)",
                model=self.config.name,
                instance=self.instance_id,
            )
        return self._actor

    async def _call(self, ref: Awaitable[T]) -> T:
        """Await one actor call; errors come back typed, and a cancelled wait cancels
        the remote call."""
        ray = _ray()
        try:
            return await ref
        except ray.exceptions.RayError as exc:
            raise self._error(exc) from None
        except BaseException:
            ray.cancel(ref)
            raise

    def _error(self, exc: Exception) -> Exception:
        """The backend's own error when it raised one; ``WorkerLost`` when the actor
        or its node is gone; any other Ray failure as a connection error."""
        ray = _ray()
        cause = getattr(exc, "cause", None)
        if isinstance(exc, ray.exceptions.RayTaskError) and isinstance(cause, Exception):
            return cause
        name, instance = self.config.name, self.instance_id
        if isinstance(exc, ray.exceptions.RayActorError | ray.exceptions.NodeDiedError):
            return WorkerLost(
                f"model '{name}' instance '{instance}': its Ray actor is gone "
                f"({type(exc).__name__}); node {self._node or 'unknown'}",
                model=name,
                instance=instance,
            )
        return BackendConnectionError(
            f"model '{name}' instance '{instance}': Ray failed ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''})",
            model=name,
            instance=instance,
        )
