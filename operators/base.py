"""``ModelOperator``: the part every model-backed operator shares.

It declares the models it names and under which parameter (``model_params``),
so the scheduler can check them before the flow runs and an error points at the
parameter; it finds its worker through the run's registry (one lookup per
registry, cached), and writes the worker's decisions into the trace.
"""

from __future__ import annotations

import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from smmf_flow.dag import Operator, RunContext
from smmf_flow.errors import FlowError, located
from smmf_flow.operators.params import OperatorParams
from smmf_flow.scheduler.resolve import NO_REGISTRY, Purpose, scheduler_for

#: (parameter path, model name or None for the default, purpose) of one model reference
ModelParam = tuple[str, str | None, Purpose]


class ModelOperator(Operator, ABC):
    """An operator that calls models by name through the registry, configured by
    its parameter model (``config``, which ``params()`` exports)."""

    config: OperatorParams

    def params(self) -> dict[str, Any]:
        return self.config.exported()

    def model_params(self) -> list[ModelParam]:
        """Every model this node names: (parameter path such as ``models.1``, model
        name or None for the registry's default, purpose)."""
        return []

    def model_refs(self) -> list[tuple[str | None, Purpose]]:
        """Every (model name, purpose) this node uses; None means the default."""
        return [(name, purpose) for _, name, purpose in self.model_params()]

    def check(self, registry: Any) -> None:
        refs = self.model_params()
        if not refs:
            return
        if registry is None:
            raise FlowError(NO_REGISTRY, node=self.name, param=refs[0][0])
        scheduler = scheduler_for(registry)
        for param, name, purpose in refs:
            with located(node=self.name, param=param):
                scheduler.resolve(name, purpose)

    def worker(self, ctx: RunContext) -> Any:
        """This node's worker under the run's registry (built once per registry's
        scheduler, and forgotten when the registry closes)."""
        scheduler = scheduler_for(ctx.registry)
        cache = self.__dict__.get("_workers")
        if cache is None:
            cache = self.__dict__["_workers"] = weakref.WeakKeyDictionary()
        worker = cache.get(scheduler)
        if worker is None:
            worker = cache[scheduler] = self.build_worker(scheduler)
        return worker

    @abstractmethod
    def build_worker(self, scheduler: Any) -> Any:
        """Make the worker from the scheduler; subclasses say which."""

    def noter(self, ctx: RunContext) -> Callable[..., None]:
        """A ``note(event, **details)`` that writes into this node's trace record."""
        return ctx.trace.record(self.name).note


class EmbeddingModelOperator(ModelOperator):
    """A model operator whose one model (``self.model``; None: the registry's
    ``default_embedding``) embeds text."""

    model: str | None

    def model_params(self) -> list[ModelParam]:
        return [("model", self.model, "embedding")]

    def build_worker(self, scheduler: Any) -> Any:
        return scheduler.embedding_worker(self.model)
