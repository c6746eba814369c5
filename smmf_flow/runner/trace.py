"""Old import path of the trace classes (now ``smmf_flow.dag.trace``) and ``RunHook``
(now ``smmf_flow.runner.hooks``); removed by the gate pass."""

from smmf_flow.dag.trace import NodeRecord, NodeState, Trace, short_repr
from smmf_flow.runner.hooks import RunHook

__all__ = ["NodeRecord", "NodeState", "RunHook", "Trace", "short_repr"]
