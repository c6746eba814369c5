"""``RouterOperator``: choose the model per request from ordered rules, or from
the label a classifier model gives, then generate with it.

Rules are ``{"model": name, "when": {...}}`` (see ``smmf_flow.scheduler.routing``
for the conditions); the first that holds wins, else ``default``. Every model
named is checked before the flow runs; each decision and its reason is noted in
the trace. ``stream=True`` makes the output a chunk stream.
"""

from __future__ import annotations

from typing import Any

from pydantic import model_validator

from smmf_flow.operators.base import ModelParam
from smmf_flow.operators.llm import GeneratingOperator
from smmf_flow.operators.params import Flag, GenerationParams, configure, custom
from smmf_flow.scheduler.routing import Classifier, Route, RouteWorker


class RouterParams(GenerationParams):
    """``router``: ordered ``routes``, a ``default`` model, an optional
    ``classifier`` whose label rules may test, and ``stream``."""

    routes: list[Route] = []  # noqa: RUF012 - pydantic copies a default per instance
    default: str | None = None
    classifier: Classifier | None = None
    stream: Flag = False

    @model_validator(mode="after")
    def _somewhere_to_go(self) -> RouterParams:
        if not self.routes and self.default is None:
            raise custom("router", "give at least one route or a default model")
        return self


class RouterOperator(GeneratingOperator):
    """Route each request to a model; ``stream=True`` gives a chunk stream."""

    kind = "router"
    params_model = RouterParams
    config: RouterParams

    def __init__(self, routes: list[Route | dict[str, Any]] | None = None, **params: Any) -> None:
        values = {"routes": routes, **params} if routes is not None else params
        self.config, options = configure(RouterParams, self.kind, values)
        self.routes, self.default = self.config.routes, self.config.default
        self.classifier = self.config.classifier
        super().__init__(**options)

    def model_params(self) -> list[ModelParam]:
        refs: list[ModelParam] = [
            (f"routes.{i}.model", r.model, "llm") for i, r in enumerate(self.routes)
        ]
        if self.default:
            refs.append(("default", self.default, "llm"))
        if self.classifier:
            refs.append(("classifier.model", self.classifier.model, "llm"))
        return refs

    def build_worker(self, scheduler: Any) -> RouteWorker:
        routes = [(r, scheduler.chat_worker(r.model)) for r in self.routes]
        default = scheduler.chat_worker(self.default) if self.default else None
        classifier = (
            (self.classifier, scheduler.chat_worker(self.classifier.model))
            if self.classifier
            else None
        )
        return RouteWorker(self.name, routes, default, classifier)


__all__ = ["RouterOperator", "RouterParams"]
