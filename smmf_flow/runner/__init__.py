"""Executing a built flow: ``DAG`` (a ``Graph`` that runs), concurrency, lazy
streams and their tee, per-node retries and timeouts, and ``RunHook``s."""

from smmf_flow.dag.context import RunContext  # old import paths, until the gate pass
from smmf_flow.dag.files import FileAccess
from smmf_flow.dag.retry import RetryPolicy
from smmf_flow.dag.trace import NodeRecord, NodeState, Trace
from smmf_flow.runner.dag import DAG
from smmf_flow.runner.hooks import RunHook
from smmf_flow.runner.runner import run_dag, run_dag_sync, stream_dag

__all__ = ["DAG", "FileAccess", "NodeRecord", "NodeState", "RetryPolicy", "RunContext",
           "RunHook", "Trace", "run_dag", "run_dag_sync", "stream_dag"]
