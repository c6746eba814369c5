"""The contract and the graph: ``Operator`` and its typed ports, ``Graph``
(nodes, edges, validation), what an operator sees and is configured with
(``RunContext``, ``FileAccess``, ``RetryPolicy``, the trace), and the primitive
operators whose semantics the runner knows. Nothing here imports the runner."""

from smmf_flow.dag.branch import Branched, BranchOperator
from smmf_flow.dag.context import RunContext
from smmf_flow.dag.files import FileAccess
from smmf_flow.dag.graph import Graph
from smmf_flow.dag.input_operator import InputOperator, InputSource
from smmf_flow.dag.join import JoinOperator
from smmf_flow.dag.map import MapOperator, map_operator
from smmf_flow.dag.operator import Operator, connect
from smmf_flow.dag.ports import Signature, compatible, is_stream, signature_of, type_name
from smmf_flow.dag.retry import RetryPolicy
from smmf_flow.dag.stream_operators import (
    ReduceStreamOperator,
    StreamifyOperator,
    TransformStreamOperator,
    UnstreamifyOperator,
)
from smmf_flow.dag.trace import NodeRecord, NodeState, Trace

__all__ = [
    "BranchOperator",
    "Branched",
    "FileAccess",
    "Graph",
    "InputOperator",
    "InputSource",
    "JoinOperator",
    "MapOperator",
    "NodeRecord",
    "NodeState",
    "Operator",
    "ReduceStreamOperator",
    "RetryPolicy",
    "RunContext",
    "Signature",
    "StreamifyOperator",
    "Trace",
    "TransformStreamOperator",
    "UnstreamifyOperator",
    "compatible",
    "connect",
    "is_stream",
    "map_operator",
    "signature_of",
    "type_name",
]
