"""smmf-flow: AWEL-style dataflow operators for multi-model LLM workflows.

Build a flow with ``with DAG("name"):`` and ``>>``; run it with ``dag.run``,
``await dag.arun`` or ``dag.astream``. Model operators live in
``smmf_flow.operators``; the model registry in ``smmf_flow.models``.
"""

from smmf_flow.dag import (DAG, BranchOperator, InputOperator, InputSource, JoinOperator,
                           MapOperator, Operator, ReduceStreamOperator, StreamifyOperator,
                           TransformStreamOperator, UnstreamifyOperator, map_operator)
from smmf_flow.errors import (ConfigError, CycleError, DuplicateNodeError, EdgeTypeError,
                              FlowError, ForeignNodeError, ModelError, ModelNotFound,
                              NodeFailed, NodeTimeout, RunError, SmmfError)
from smmf_flow.runner import NodeState, RetryPolicy, RunContext, RunHook, RunResult, Trace

__version__ = "0.1.0"

__all__ = [
    "DAG", "BranchOperator", "ConfigError", "CycleError", "DuplicateNodeError", "EdgeTypeError",
    "FlowError", "ForeignNodeError", "InputOperator", "InputSource", "JoinOperator",
    "MapOperator", "ModelError", "ModelNotFound", "NodeFailed", "NodeState", "NodeTimeout",
    "Operator", "ReduceStreamOperator", "RetryPolicy", "RunContext", "RunError", "RunHook",
    "RunResult", "SmmfError", "StreamifyOperator", "Trace", "TransformStreamOperator",
    "UnstreamifyOperator", "map_operator",
]
