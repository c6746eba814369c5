"""``RunContext``: what every node of one run can reach, passed explicitly.

It carries data shared between nodes (``get``/``set``), the model registry the
run was given (``registry=``; None: the run has no models, and a model operator
refuses the flow when it is validated), the run's trace, where nodes may note
events such as a routing decision, and ``files``: which files a path in the
run's input may name (``dag/files.py``).
"""

from __future__ import annotations

import uuid
from typing import Any, Protocol

from smmf_flow.dag.files import FileAccess
from smmf_flow.dag.trace import Trace


class Named(Protocol):
    """A node by its name (an ``Operator``)."""

    name: str


UNRESTRICTED = FileAccess.unrestricted()


class RunContext:
    """Per-run state shared by the nodes of a run."""

    __slots__ = ("_data", "files", "registry", "run_id", "trace")

    def __init__(
        self,
        trace: Trace,
        *,
        registry: Any = None,
        data: dict[str, Any] | None = None,
        files: FileAccess | None = None,
    ) -> None:
        self.run_id = uuid.uuid4().hex[:12]
        #: the run's model registry (a ``smmf_flow.models.ModelRegistry``), or None
        self.registry: Any = registry
        self.trace = trace
        self.files = files or UNRESTRICTED
        self._data: dict[str, Any] = dict(data or {})

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self._data[key] = value

    def note(self, node: Named | str, event: str, **details: Any) -> None:
        """Add an event (a decision, a fallback, ...) to a node's trace record."""
        name = node if isinstance(node, str) else node.name
        self.trace.record(name).events.append({"event": event, **details})


__all__ = ["RunContext"]
