"""The scheduler: model names in a flow → bindings → workers on pooled backends.

Resolution happens before anything runs (``dag.validate(registry)`` calls each
model operator's ``check``): an unknown name raises ``ModelNotFound`` with the
closest known names, an embedding model asked to generate (or the reverse)
raises ``ModelKindMismatch``, and an operator that names no model gets the
registry's ``default_llm`` / ``default_embedding``. Nothing is loaded here:
pools start on first use (or on ``registry.warmup()``).

There is no default registry: a run names its own (``registry=``). Each registry
has one scheduler, kept in the registry's ``attachments``, so the workers, fallback
chains and embedding batchers it makes live exactly as long as the registry stays
open, and no module-level cache holds any of them.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from smmf_flow import telemetry
from smmf_flow.errors import FlowError, ModelKindMismatch, located
from smmf_flow.scheduler.fallback import FallbackWorker
from smmf_flow.scheduler.fallback_policy import DEFAULT_ON, FallbackPolicy
from smmf_flow.scheduler.routing import Route, RouteWorker, When
from smmf_flow.scheduler.workers import ChatWorker, PoolChatWorker, PoolEmbeddingWorker

if TYPE_CHECKING:
    from smmf_flow.models.registry import ModelRegistry
    from smmf_flow.runner import DAG

Purpose = Literal["llm", "embedding"]


@dataclass(frozen=True, slots=True)
class Binding:
    """One model reference, resolved: what it names and what will serve it."""

    requested: str | None
    name: str
    kind: str  # "llm", "embedding" or "group"
    provider: str | None = None
    instances: int | None = None
    strategy: str | None = None
    members: tuple[Binding, ...] = field(default_factory=tuple)

    def describe(self) -> str:
        """``smollm2 → llama.cpp ×1 (round_robin)``, or a group with its members."""
        via = "" if self.requested == self.name else f" (default {self.kind})"
        if self.kind == "group":
            inner = ", ".join(m.describe() for m in self.members)
            return f"{self.name}{via} → {self.strategy} group [{inner}]"
        return f"{self.name}{via} → {self.provider} ×{self.instances} ({self.strategy})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "requested": self.requested,
            "name": self.name,
            "kind": self.kind,
            "provider": self.provider,
            "instances": self.instances,
            "strategy": self.strategy,
            "members": [m.as_dict() for m in self.members],
        }


class Scheduler:
    """Resolves names against one registry and keeps one worker per name."""

    def __init__(self, registry: ModelRegistry) -> None:
        # weak: the registry holds its scheduler (``attachments``), not the reverse
        self._registry = weakref.ref(registry)
        self._chat: dict[str, ChatWorker] = {}
        self._embed: dict[str, PoolEmbeddingWorker] = {}

    @property
    def registry(self) -> ModelRegistry:
        registry = self._registry()
        if registry is None:
            raise FlowError("the model registry of this scheduler no longer exists")
        return registry

    # --- resolution (no side effects) --------------------------------------------

    def resolve(
        self, name: str | None, purpose: Purpose, *, _seen: tuple[str, ...] = ()
    ) -> Binding:
        """Check ``name`` for ``purpose`` and describe what will serve it. Errors say
        what is wrong; the caller says where (``errors.located(node=...)``)."""
        reg = self.registry
        resolved = name or (reg.default_llm if purpose == "llm" else reg.default_embedding)
        if not resolved:
            field_name = "default_llm" if purpose == "llm" else "default_embedding"
            raise FlowError(
                f"no model named and the model config sets no [models] "
                f"{field_name}; name a model or set it"
            )
        kind = reg.kind_of(resolved)
        if kind == "group":
            if purpose != "llm":
                raise ModelKindMismatch(
                    f"'{resolved}' is a model group; groups serve generation, not embeddings"
                )
            if resolved in _seen:
                raise FlowError(
                    f"model group '{resolved}' includes itself ({' → '.join((*_seen, resolved))})"
                )
            group = reg.group(resolved)
            members = tuple(self.resolve(m, "llm", _seen=(*_seen, resolved)) for m in group.members)
            return Binding(name, resolved, "group", strategy=group.strategy, members=members)
        if kind != purpose:
            doing = "generation" if purpose == "llm" else "embeddings"
            raise ModelKindMismatch(
                f"model '{resolved}' is an {_kind_word(kind)} model and cannot be used for {doing}"
            )
        config = reg.model(resolved)
        return Binding(
            name,
            resolved,
            kind,
            provider=config.provider,
            instances=config.instances,
            strategy=config.strategy,
        )

    # --- workers (created once per name, pools start lazily) -----------------------

    def chat_worker(self, name: str | None) -> ChatWorker:
        """The worker that serves generation for ``name`` (default: default_llm)."""
        binding = self.resolve(name, "llm")
        worker = self._chat.get(binding.name)
        if worker is None:
            worker = self._chat[binding.name] = self._build_chat(binding)
        return worker

    def embedding_worker(self, name: str | None) -> PoolEmbeddingWorker:
        """The micro-batched embedding worker for ``name`` (default: default_embedding)."""
        binding = self.resolve(name, "embedding")
        worker = self._embed.get(binding.name)
        if worker is None:
            config = self.registry.model(binding.name)
            worker = self._embed[binding.name] = _workers().embedding(
                binding.name,
                self.registry.pool(binding.name),
                max_batch=config.batch_size,
                max_wait_ms=config.max_batch_wait_ms,
                max_concurrent=config.instances * config.concurrency,
                max_queue=config.max_queue,
            )
        return worker

    def _build_chat(self, binding: Binding) -> ChatWorker:
        if binding.kind != "group":
            config = self.registry.model(binding.name)
            return _workers().chat(
                binding.name, self.registry.pool(binding.name), config.context_length
            )
        members = [self.chat_worker(m.name) for m in binding.members]
        group = self.registry.group(binding.name)
        if group.strategy == "fallback":
            on = tuple(group.on) if group.on is not None else DEFAULT_ON
            return _workers().fallback(
                binding.name,
                members,
                FallbackPolicy(on=on, max_depth=group.max_depth, chunk_timeout=group.chunk_timeout),
            )
        # a route group: the first member whose window fits the request, else the largest
        routes = [(Route(model=m.name, when=When(fits_context=True)), m) for m in members]
        largest = max(members, key=lambda m: m.context_length)
        return _workers().route(binding.name, routes, default=largest)


@dataclass(frozen=True, slots=True)
class _WorkerKinds:
    chat: type[PoolChatWorker] = PoolChatWorker
    embedding: type[PoolEmbeddingWorker] = PoolEmbeddingWorker
    fallback: type[FallbackWorker] = FallbackWorker
    route: type[RouteWorker] = RouteWorker


_PLAIN = _WorkerKinds()


def _workers() -> _WorkerKinds:
    """The workers to make: while telemetry is on, ones whose model calls are spans
    and whose groups' decisions are events (``traced_workers.py``); else the plain
    ones, which trace nothing."""
    if telemetry.active() is None:
        return _PLAIN
    from smmf_flow.scheduler import traced_workers as traced

    return _WorkerKinds(
        traced.TracedPoolChatWorker,
        traced.TracedEmbeddingWorker,
        traced.TracedFallbackWorker,
        traced.TracedRouteWorker,
    )


def _kind_word(kind: str) -> str:
    return "embedding" if kind == "embedding" else "LLM"


#: the message for a model operator run without a registry
NO_REGISTRY = (
    "no model registry was given; pass registry=ModelRegistry.default() (or "
    "ModelRegistry.from_toml(PATH)) to run or validate a flow that calls models"
)


def scheduler_for(registry: ModelRegistry | None) -> Scheduler:
    """The scheduler of ``registry``, made on first use and dropped when it closes."""
    if registry is None:
        raise FlowError(NO_REGISTRY)
    scheduler = registry.attachments.get(Scheduler)
    if not isinstance(scheduler, Scheduler):
        scheduler = registry.attachments[Scheduler] = Scheduler(registry)
    return scheduler


@dataclass(frozen=True, slots=True)
class NodePlan:
    """One model operator of a flow and what each of its references resolved to."""

    node: str
    operator: str
    bindings: tuple[Binding, ...]


def plan(dag: DAG, registry: ModelRegistry) -> list[NodePlan]:
    """Validate ``dag`` against ``registry`` and list every model binding in it."""
    dag.validate(registry)
    scheduler = scheduler_for(registry)
    rows = []
    for op in dag.nodes:
        refs = getattr(op, "model_refs", None)
        if refs is None:
            continue
        with located(node=op.name):
            bindings = tuple(scheduler.resolve(name, purpose) for name, purpose in refs())
        rows.append(NodePlan(op.name, type(op).__name__, bindings))
    return rows
