"""``DAG``: the flow users build and run (``from smmf_flow import DAG``).

A ``DAG`` is a ``Graph`` (nodes, edges, ``with`` collection, validation; the
dag layer) that can also run: ``run``, ``arun`` and ``astream`` are thin
doors into ``runner.py``. Every one takes the same options; ``trace=Trace()``
is filled in place and never changes what is returned.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from smmf_flow import telemetry
from smmf_flow.dag.graph import Graph
from smmf_flow.runner.runner import run_dag, run_dag_sync, stream_dag


class DAG(Graph):
    """A flow: ``with DAG("name") as dag:`` collects the operators made inside it.

    Options of ``run``/``arun``/``astream`` (see ``runner.run_dag``): ``output``
    (the node whose result is returned), ``registry`` (the models), ``trace``
    (a ``Trace`` to fill), ``hooks``, ``data`` (seeds the run context) and
    ``files`` (what a path in the input may name).
    """

    async def arun(self, input: Any = None, **options: Any) -> Any:
        """Run the flow and return the output node's result (a stream stays lazy)."""
        return await run_dag(self, input, **_observed(self, options))

    def run(self, input: Any = None, **options: Any) -> Any:
        """Run the flow from synchronous code (a stream output is gathered into a list)."""
        return run_dag_sync(self, input, **_observed(self, options))

    def astream(self, input: Any = None, **options: Any) -> AsyncIterator[Any]:
        """Run the flow and yield the output stream's chunks as they come.

        Closing the iterator early (``aclose()``) closes the flow's streams."""
        return stream_dag(self, input, **_observed(self, options))


def _observed(dag: Graph, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with the run's span hook added while telemetry is on (else as
    they are: a run pays one global read for telemetry it does not use)."""
    tracing = telemetry.active()
    if tracing is None:
        return options
    from smmf_flow.runner.run_spans import RunSpans

    return {**options, "hooks": (*options.get("hooks", ()), RunSpans(tracing.tracer, dag))}


__all__ = ["DAG"]
