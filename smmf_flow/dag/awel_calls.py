"""AWEL's way of running a node: ``await node.call(call_data=...)``.

DB-GPT's AWEL runs a flow from its *end* node: ``call`` runs every node the
node depends on, gives ``call_data`` to the roots and returns the node's
output. Every smmf-flow operator takes these calls (``AwelCalls`` is a base of
``Operator``), so an AWEL program runs with only its import line changed. They
are doors into ``dag.arun(call_data, output=node)``: the same runner, with its
concurrency, typed ports and trace. Such a run is an *AWEL call*: a join in it
gets ``SKIP_DATA`` for a parent a branch skipped, where ``dag.run`` passes
only the outputs of the parents that ran (``smmf_flow/awel.py`` has the rest
of AWEL's names; the README's "Coming from AWEL" the differences).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import anyio
import networkx as nx

from smmf_flow.errors import FlowError, InputError, UsageError, refuse_inside_event_loop

#: the keywords every operator takes for AWEL programs; flow files do not take them
AWEL_KEYWORDS = frozenset({"task_name", "task_id", "can_skip_in_branch"})
#: the key of ``RunContext`` data that marks a run started by ``call``/``call_stream``
AWEL_CALL = "smmf_flow.awel_call"


class EmptyData:
    """AWEL's empty-data markers: falsy, printed as ``EmptyData(NAME)``."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __bool__(self) -> bool:
        return False

    def __str__(self) -> str:
        return f"EmptyData({self.name})"

    __repr__ = __str__


#: no data was given (``call()`` without ``call_data``)
EMPTY_DATA = EmptyData("EMPTY_DATA")
#: the output of a node a branch skipped, as a join of an AWEL call sees it
SKIP_DATA = EmptyData("SKIP_DATA")


def is_empty_data(data: Any) -> bool:
    """Whether ``data`` is ``EMPTY_DATA`` or ``SKIP_DATA`` (AWEL's test)."""
    return data is EMPTY_DATA or data is SKIP_DATA


class AwelCalls:
    """AWEL's calling methods and node names, on every operator."""

    name: str
    dag: Any
    #: AWEL's ``task_id``; '' when not given (``node_id`` is then the name)
    task_id: str = ""
    #: AWEL's ``can_skip_in_branch`` as given; None: not given (smmf-flow's join)
    skip_in_branch: bool | None = None

    @property
    def node_name(self) -> str:
        return self.name

    @property
    def node_id(self) -> str:
        return self.task_id or self.name

    def can_skip_in_branch(self) -> bool:
        return self.skip_in_branch is not False

    async def call(
        self, call_data: Any = EMPTY_DATA, dag_ctx: Any = None, dag_variables: Any = None
    ) -> Any:
        """Run what this node needs, its roots given ``call_data``; return its output."""
        dag = self._check_call("call", call_data, dag_ctx, dag_variables)
        return await dag.arun(call_data, output=self, data={AWEL_CALL: True})

    async def call_stream(
        self, call_data: Any = EMPTY_DATA, dag_ctx: Any = None, dag_variables: Any = None
    ) -> AsyncIterator[Any]:
        """As ``call``, the output as a stream (a value as a one-item stream)."""
        out = await self.call(call_data, dag_ctx, dag_variables)
        return out if isinstance(out, AsyncIterator) else _one(out)

    def _blocking_call(
        self,
        call_data: Any = EMPTY_DATA,
        dag_ctx: Any = None,
        dag_variables: Any = None,
        loop: Any = None,
    ) -> Any:
        """``call`` from synchronous code (AWEL keeps it for debugging)."""
        refuse_inside_event_loop(
            f"node '{self.name}': cannot call it synchronously (_blocking_call)",
            "use `await node.call(...)`",
        )
        return anyio.run(functools.partial(self.call, call_data, dag_ctx, dag_variables))

    def _blocking_call_stream(
        self,
        call_data: Any = EMPTY_DATA,
        dag_ctx: Any = None,
        dag_variables: Any = None,
        loop: Any = None,
    ) -> Iterator[Any]:
        """``call_stream`` from synchronous code: the chunks, gathered first."""
        refuse_inside_event_loop(
            f"node '{self.name}': cannot call it synchronously (_blocking_call_stream)",
            "use `await node.call_stream(...)`",
        )

        async def gather() -> list[Any]:
            return [c async for c in await self.call_stream(call_data, dag_ctx, dag_variables)]

        return iter(anyio.run(gather))

    def _check_call(self, how: str, call_data: Any, dag_ctx: Any, dag_variables: Any) -> Any:
        """The DAG to run; refuse what AWEL's call takes but smmf-flow does not."""
        if dag_ctx is not None or dag_variables is not None:
            raise UsageError(
                f"node '{self.name}': {how}() takes call_data only here; dag_ctx and "
                "dag_variables are DB-GPT server features (share data with "
                "dag.arun(x, data={...}) instead)"
            )
        if self.dag is None:
            raise FlowError(
                f"cannot {how}() node '{self.name}' ({type(self).__name__}): it belongs to "
                "no DAG; create it inside `with DAG(...)`"
            )
        if is_empty_data(call_data):
            _refuse_roots_without_data(self.dag, self.name, how)
        return self.dag


def _refuse_roots_without_data(dag: Any, end: str, how: str) -> None:
    """A root that reads the call's data cannot run on a call that gives none."""
    graph = dag.graph
    needed = nx.ancestors(graph, end) | {end}
    hungry: Sequence[str] = [
        n for n in needed if not graph.in_degree(n) and graph.nodes[n]["op"].reads_call_data
    ]
    if hungry:
        raise InputError(
            f"{how}() on node '{end}' was given no call_data, but root node "
            f"'{hungry[0]}' reads it; pass {how}(call_data=...), or start the flow "
            "with an InputOperator whose source has its own data"
        )


async def _one(value: Any) -> AsyncIterator[Any]:
    yield value


__all__ = [
    "AWEL_CALL",
    "AWEL_KEYWORDS",
    "EMPTY_DATA",
    "SKIP_DATA",
    "AwelCalls",
    "EmptyData",
    "is_empty_data",
]
