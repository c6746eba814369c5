"""``smmf_flow`` exports what a flow and a custom operator need, and nothing it lists is
missing; the example programs and the operator library build on it."""

from __future__ import annotations

import smmf_flow

CUSTOM_OPERATOR_NEEDS = {
    "DAG",
    "Operator",
    "RunContext",
    "Signature",
    "signature_of",
    "RetryPolicy",
    "FileAccess",
    "Trace",
    "NodeRecord",
    "NodeState",
    "RunHook",
    "FlowError",
    "InputError",
    "NodeFailed",
    "InputOperator",
    "InputSource",
    "MapOperator",
    "map_operator",
    "BranchOperator",
    "JoinOperator",
    "StreamifyOperator",
    "UnstreamifyOperator",
    "TransformStreamOperator",
    "ReduceStreamOperator",
}


def test_all_names_what_a_custom_operator_needs() -> None:
    assert set(smmf_flow.__all__) >= CUSTOM_OPERATOR_NEEDS


def test_every_exported_name_exists() -> None:
    missing = [name for name in smmf_flow.__all__ if not hasattr(smmf_flow, name)]
    assert missing == []


def test_the_runnable_dag_is_the_runner_layers_graph() -> None:
    from smmf_flow.dag import Graph
    from smmf_flow.runner.dag import DAG

    assert smmf_flow.DAG is DAG and issubclass(DAG, Graph)


#: what DB-GPT's AWEL exports for its dataflow core (``dbgpt.core.awel``) and
#: AWEL programs import; each is importable from smmf_flow as well
AWEL_DATAFLOW_NAMES = {
    "DAG",
    "MapOperator",
    "JoinOperator",
    "BranchOperator",
    "BranchJoinOperator",
    "ReduceStreamOperator",
    "InputOperator",
    "InputSource",
    "BaseInputSource",
    "SimpleInputSource",
    "SimpleCallDataInputSource",
    "TaskContext",
    "StreamifyAbsOperator",
    "UnstreamifyAbsOperator",
    "TransformStreamAbsOperator",
    "is_empty_data",
}


def test_all_names_what_an_awel_program_imports() -> None:
    assert set(smmf_flow.__all__) >= AWEL_DATAFLOW_NAMES
