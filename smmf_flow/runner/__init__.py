"""Executing a built DAG: concurrency, streaming, node states, retries,
timeouts and the per-run trace."""

from smmf_flow.runner.context import RunContext
from smmf_flow.runner.files import FileAccess
from smmf_flow.runner.retry import RetryPolicy
from smmf_flow.runner.runner import run_dag, run_dag_sync, stream_dag
from smmf_flow.runner.trace import NodeRecord, NodeState, RunHook, RunResult, Trace

__all__ = ["FileAccess", "NodeRecord", "NodeState", "RetryPolicy", "RunContext", "RunHook", "RunResult",
           "Trace", "run_dag", "run_dag_sync", "stream_dag"]
