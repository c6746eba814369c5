"""``ModelOperator``: the part every model-backed operator shares.

It declares its model references (``model_refs``) so the scheduler can check
them before the flow runs, finds its worker through the run's registry (one
lookup per registry, cached), and writes the worker's decisions into the trace.
"""

from __future__ import annotations

import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from smmf_flow.dag.operator import Operator
from smmf_flow.runner.context import RunContext
from smmf_flow.scheduler.resolve import Purpose, scheduler_for


def node_label(cls: type[Operator], name: str | None) -> str:
    """How errors name a node before it joins a DAG: ``fallback 'answer'``, or
    the class name when the node has no name yet."""
    return f"{cls.kind} '{name}'" if name else cls.__name__


class ModelOperator(Operator, ABC):
    """An operator that calls models by name through the registry."""

    def model_refs(self) -> list[tuple[str | None, Purpose]]:
        """Every (model name, purpose) this node uses; None means the default."""
        return []

    def check(self, registry: Any) -> None:
        scheduler = scheduler_for(registry)
        for name, purpose in self.model_refs():
            scheduler.resolve(name, purpose, where=f"node '{self.name}'")

    def worker(self, ctx: RunContext) -> Any:
        """This node's worker under the run's registry (built once per registry, and
        forgotten with it)."""
        registry = ctx.registry
        if registry is None:  # the default registry
            worker = self.__dict__.get("_default_worker")
            if worker is None:
                worker = self.__dict__["_default_worker"] = self.build_worker(
                    scheduler_for(None))
            return worker
        cache = self.__dict__.get("_workers")
        if cache is None:
            cache = self.__dict__["_workers"] = weakref.WeakKeyDictionary()
        worker = cache.get(registry)
        if worker is None:
            worker = cache[registry] = self.build_worker(scheduler_for(registry))
        return worker

    @abstractmethod
    def build_worker(self, scheduler: Any) -> Any:
        """Make the worker from the scheduler; subclasses say which."""

    def noter(self, ctx: RunContext) -> Callable[..., None]:
        """A ``note(event, **details)`` that writes into this node's trace record."""
        record = ctx.trace.record(self.name)
        return lambda event, **details: record.events.append({"event": event, **details})
