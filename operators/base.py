"""``ModelOperator``: the part every model-backed operator shares.

It declares its model references (``model_refs``) so the scheduler can check
them before the flow runs, finds its worker through the run's registry (one
lookup per registry, cached), and writes the worker's decisions into the trace.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from smmf_flow.dag.operator import Operator
from smmf_flow.runner.context import RunContext
from smmf_flow.scheduler.resolve import Purpose, scheduler_for


class ModelOperator(Operator):
    """An operator that calls models by name through the registry."""

    def model_refs(self) -> list[tuple[str | None, Purpose]]:
        """Every (model name, purpose) this node uses; None means the default."""
        return []

    def check(self, registry: Any) -> None:
        scheduler = scheduler_for(registry)
        for name, purpose in self.model_refs():
            scheduler.resolve(name, purpose, where=f"node '{self.name}'")

    def worker(self, ctx: RunContext) -> Any:
        """This node's worker under the run's registry (built once per registry)."""
        cache: dict[int, Any] = self.__dict__.setdefault("_workers", {})
        key = id(ctx.registry)
        worker = cache.get(key)
        if worker is None:
            worker = cache[key] = self.build_worker(scheduler_for(ctx.registry))
        return worker

    def build_worker(self, scheduler: Any) -> Any:
        """Make the worker from the scheduler; subclasses say which."""
        raise NotImplementedError

    def noter(self, ctx: RunContext) -> Callable[..., None]:
        """A ``note(event, **details)`` that writes into this node's trace record."""
        record = ctx.trace.record(self.name)
        return lambda event, **details: record.events.append({"event": event, **details})
