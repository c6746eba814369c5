"""What a pool tells the outside world while it works (loading progress, health).

The CLI passes an ``on_event`` callback to show "loading model 'smollm2'
instance 0 ..." while weights load; a server can count the events. Every event
is also logged on the ``smmf_flow.models`` logger, so nothing is lost without a
callback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

EventKind = Literal[
    "loading", "loaded", "load_failed", "unhealthy", "recovered", "probe_failed", "stopped"
]

logger = logging.getLogger("smmf_flow.models")
_LEVELS = {
    "load_failed": logging.WARNING,
    "unhealthy": logging.WARNING,
    "probe_failed": logging.WARNING,
}


@dataclass(frozen=True, slots=True)
class PoolEvent:
    """One thing that happened to a pool or one of its instances."""

    kind: EventKind
    model: str
    instance: str | None
    message: str
    seconds: float | None = None  # how long it took, for "loaded" events


EventHook = Callable[[PoolEvent], None]


def emit(hook: EventHook | None, event: PoolEvent) -> None:
    """Log ``event`` and hand it to ``hook`` if there is one."""
    logger.log(_LEVELS.get(event.kind, logging.INFO), "%s", event.message)
    if hook is not None:
        hook(event)
