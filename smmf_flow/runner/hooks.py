"""``RunHook``: small lifecycle callbacks that watch a run (Hamilton's
``run_before_node_execution`` idea): a progress line, metrics, logging.

Hooks observe; they cannot change what a node gets or returns.
"""

from __future__ import annotations

from smmf_flow.dag.context import RunContext
from smmf_flow.dag.trace import NodeRecord


class RunHook:
    """Override what you need; each method is called on the event loop and must
    not block. ``on_node_end`` sees the final record (state, timing, error)."""

    def on_run_start(self, ctx: RunContext) -> None: ...

    def on_node_start(self, record: NodeRecord, ctx: RunContext) -> None: ...

    def on_node_end(self, record: NodeRecord, ctx: RunContext) -> None: ...

    def on_run_end(self, ctx: RunContext, error: BaseException | None) -> None: ...


__all__ = ["RunHook"]
