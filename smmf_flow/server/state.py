"""What every handler of one server shares: the models, the flows, the metrics,
the limits, and the redactor every error message passes through.

One ``ServerState`` per app, reached as ``request.app.state.smmf`` (``of(request)``):
no module-level globals, so two servers live side by side in one process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.requests import Request

from smmf_flow.scheduler import Scheduler, scheduler_for
from smmf_flow.server.limits import ServerLimits
from smmf_flow.server.metrics import ServerMetrics

if TYPE_CHECKING:
    from smmf_flow.models.registry import ModelRegistry
    from smmf_flow.server.catalog import FlowCatalog


@dataclass(slots=True)
class ServerState:
    registry: ModelRegistry
    metrics: ServerMetrics
    flows: FlowCatalog | None = None
    limits: ServerLimits = field(default_factory=ServerLimits)
    #: cleans every error message a client receives (``redact.Redactor``)
    redact: Callable[[str], str] = str
    #: set once the start-up warm-up has finished (``/readyz`` waits for it)
    warmed: bool = False
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def scheduler(self) -> Scheduler:
        """The registry's scheduler as it is now: the app's lifespan closes the
        registry when it ends, which drops the scheduler and its workers, so an app
        started again gets a fresh one rather than workers of closed pools."""
        return scheduler_for(self.registry)


def of(request: Request) -> ServerState:
    """The state of the server answering ``request``."""
    state: ServerState = request.app.state.smmf  # starlette's app.state holds anything
    return state


__all__ = ["ServerState", "of"]
