"""smmf-flow: AWEL-style dataflow operators for multi-model LLM workflows.

Build a flow with ``with DAG("name"):`` and ``>>``; run it with ``dag.run``,
``await dag.arun`` or ``dag.astream``. Everything a custom operator needs is
here (``Operator`` and its contract in ``smmf_flow.dag.operator``); model
operators, ``ModelOperator`` among them, live in ``smmf_flow.operators`` and
the model registry in ``smmf_flow.models``.
"""

from smmf_flow.dag import (
    BranchOperator,
    FileAccess,
    InputOperator,
    InputSource,
    JoinOperator,
    MapOperator,
    NodeRecord,
    NodeState,
    Operator,
    ReduceStreamOperator,
    RetryPolicy,
    RunContext,
    Signature,
    StreamifyOperator,
    Trace,
    TransformStreamOperator,
    UnstreamifyOperator,
    map_operator,
    signature_of,
)
from smmf_flow.errors import (
    ConfigError,
    CycleError,
    DuplicateNodeError,
    EdgeTypeError,
    FlowError,
    ForeignNodeError,
    InputError,
    ModelError,
    ModelNotFound,
    NodeFailed,
    NodeTimeout,
    RunError,
    SmmfError,
    UsageError,
)
from smmf_flow.runner import DAG, RunHook

__version__ = "0.1.0"

__all__ = [
    "DAG",
    "BranchOperator",
    "ConfigError",
    "CycleError",
    "DuplicateNodeError",
    "EdgeTypeError",
    "FileAccess",
    "FlowError",
    "ForeignNodeError",
    "InputError",
    "InputOperator",
    "InputSource",
    "JoinOperator",
    "MapOperator",
    "ModelError",
    "ModelNotFound",
    "NodeFailed",
    "NodeRecord",
    "NodeState",
    "NodeTimeout",
    "Operator",
    "ReduceStreamOperator",
    "RetryPolicy",
    "RunContext",
    "RunError",
    "RunHook",
    "Signature",
    "SmmfError",
    "StreamifyOperator",
    "Trace",
    "TransformStreamOperator",
    "UnstreamifyOperator",
    "UsageError",
    "map_operator",
    "signature_of",
]
