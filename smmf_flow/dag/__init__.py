"""The dataflow core: ``DAG``, the operator contract, typed ports and the
primitive operators whose semantics the runner knows."""

from smmf_flow.dag.branch import BranchOperator, Branched
from smmf_flow.dag.dag import DAG
from smmf_flow.dag.input import InputOperator, InputSource
from smmf_flow.dag.join import JoinOperator
from smmf_flow.dag.map import MapOperator, map_operator
from smmf_flow.dag.operator import Operator, connect
from smmf_flow.dag.ports import compatible, is_stream, type_name
from smmf_flow.dag.stream import (ReduceStreamOperator, StreamifyOperator,
                                  TransformStreamOperator, UnstreamifyOperator)

__all__ = ["DAG", "BranchOperator", "Branched", "InputOperator", "InputSource", "JoinOperator",
           "MapOperator", "Operator", "ReduceStreamOperator", "StreamifyOperator",
           "TransformStreamOperator", "UnstreamifyOperator", "compatible", "connect",
           "is_stream", "map_operator", "type_name"]
