"""``RouterOperator``: choose the model per request from ordered rules, or from
the label a classifier model gives, then generate with it.

Rules are ``{"model": name, "when": {...}}`` (see ``smmf_flow.scheduler.routing``
for the conditions); the first that holds wins, else ``default``. Every model
named is checked before the flow runs; each decision and its reason is noted in
the trace.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from smmf_flow.errors import FlowError
from smmf_flow.operators.base import node_label
from smmf_flow.operators.llm import GeneratingOperator, split_options
from smmf_flow.operators.params import check_params, export_params
from smmf_flow.scheduler.resolve import Purpose
from smmf_flow.scheduler.routing import Classifier, Route, RouteWorker


class RouterOperator(GeneratingOperator):
    """Route each request to a model; ``stream=True`` gives a chunk stream."""

    kind = "router"

    def __init__(self, routes: list[Route | dict[str, Any]] | None = None, *,
                 default: str | None = None, classifier: Classifier | dict[str, Any] | None = None,
                 stream: bool = False, **params: Any) -> None:
        options, generation = split_options(params)
        owner = node_label(type(self), options.get("name"))
        try:
            self.routes = [r if isinstance(r, Route) else Route.model_validate(r)
                           for r in routes or []]
            self.classifier = (classifier if isinstance(classifier, Classifier) or
                               classifier is None else Classifier.model_validate(classifier))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise FlowError(f"{owner}: bad rule field '{where}': {err['msg']}") from None
        if not self.routes and default is None:
            raise FlowError(f"{owner}: give at least one route or a default model")
        self.default = default
        self.stream = stream
        self.generation = check_params(owner, generation)
        super().__init__(**options)

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {"routes": [r.model_dump(exclude_defaults=True) for r in self.routes]}
        if self.default:
            out["default"] = self.default
        if self.classifier:
            out["classifier"] = self.classifier.model_dump()
        if self.stream:
            out["stream"] = True
        out.update(export_params(self.generation))
        return out

    def model_refs(self) -> list[tuple[str | None, Purpose]]:
        refs: list[tuple[str | None, Purpose]] = [(r.model, "llm") for r in self.routes]
        if self.default:
            refs.append((self.default, "llm"))
        if self.classifier:
            refs.append((self.classifier.model, "llm"))
        return refs

    def build_worker(self, scheduler: Any) -> RouteWorker:
        routes = [(r, scheduler.chat_worker(r.model)) for r in self.routes]
        default = scheduler.chat_worker(self.default) if self.default else None
        classifier = ((self.classifier, scheduler.chat_worker(self.classifier.model))
                      if self.classifier else None)
        return RouteWorker(self.name, routes, default, classifier)
