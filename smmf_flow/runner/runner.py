"""Running a built DAG.

A node runs as soon as all its parents are done, so independent nodes run
concurrently (anyio task group). A task that finishes a node carries on with
the children it made ready: those marked ``inline`` (plain synchronous work,
which never lets another task run anyway) in the same task, one after another,
then one other child, and only the rest get tasks of their own. So a chain
and a fan-out of synchronous maps cost no task at all: a task spawn costs more
than running such a node, and that is most of why the per-node overhead is a
few microseconds.

Streams stay lazy: a stream node's output is an async iterator handed to its
children (through a tee when there are several), and a chunk reaches the end
of the flow before the source has produced the next one.

The first node that fails cancels the rest of the run and closes its streams;
the run raises ``NodeFailed`` naming that node, with the original error as its
cause. An ``InputError`` cause is given the flow's and the node's names, since
a server answers with it alone.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import networkx as nx

from smmf_flow.dag.branch import Branched
from smmf_flow.dag.context import RunContext
from smmf_flow.dag.files import FileAccess
from smmf_flow.dag.graph import Graph
from smmf_flow.dag.operator import Operator
from smmf_flow.dag.stream_operators import iterate
from smmf_flow.dag.trace import NodeRecord, NodeState, Trace
from smmf_flow.errors import (
    FlowError,
    InputError,
    NodeFailed,
    NodeTimeout,
    refuse_inside_event_loop,
)
from smmf_flow.runner.hooks import RunHook
from smmf_flow.runner.stream_tee import RunStream, TracedStream, tee

_EMPTY: Any = object()

#: a node ready to run: its index in the plan and its arguments
_Ready = tuple[int, tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class Plan:
    """A DAG (or the part of it a target needs) flattened into index lists."""

    ops: tuple[Operator, ...]
    parents: tuple[int, ...]  # number of parents per node
    children: tuple[tuple[tuple[int, int], ...], ...]  # (child, input slot) per node
    roots: tuple[int, ...]
    target: int


_plans: weakref.WeakKeyDictionary[Graph, dict[tuple[int, str | None], Plan]] = (
    weakref.WeakKeyDictionary()
)


def plan_for(dag: Graph, output: Operator | str | None = None) -> Plan:
    """The cached plan that runs ``dag`` up to ``output`` (default: its one leaf)."""
    target_name = output.name if isinstance(output, Operator) else output
    cache = _plans.setdefault(dag, {})
    key = (dag.version, target_name)
    plan = cache.get(key)
    if plan is None:
        if any(k[0] != dag.version for k in cache):
            cache.clear()
        plan = cache[key] = _compile(dag, target_name)
    return plan


def _compile(dag: Graph, target_name: str | None) -> Plan:
    graph = dag.graph
    if target_name is None:
        leaves = [n for n, deg in graph.out_degree() if deg == 0]
        if len(leaves) != 1:
            raise FlowError(
                f"DAG '{dag.name}' has {len(leaves)} end nodes "
                f"({', '.join(leaves)}); join them into one, or pass "
                "output=<node> to choose which result to return"
            )
        target_name = leaves[0]
    elif target_name not in graph:
        raise FlowError(
            f"DAG '{dag.name}' has no node '{target_name}' to return "
            f"(nodes: {', '.join(graph.nodes)})"
        )
    needed = nx.ancestors(graph, target_name) | {target_name}
    names = [n for n in nx.topological_sort(graph) if n in needed]
    index = {name: i for i, name in enumerate(names)}
    children = tuple(
        tuple((index[c], graph.edges[n, c]["slot"]) for c in graph.succ[n] if c in index)
        for n in names
    )
    parents = tuple(graph.in_degree(n) for n in names)
    roots = tuple(i for i, n in enumerate(names) if parents[i] == 0)
    ops = tuple(graph.nodes[n]["op"] for n in names)
    return Plan(ops, parents, children, roots, index[target_name])


class _Run:
    """The mutable state of one run of a plan."""

    def __init__(self, name: str, plan: Plan, ctx: RunContext, hooks: Sequence[RunHook]) -> None:
        #: the DAG's name, which an ``InputError`` of a node is given
        self.name = name
        self.plan = plan
        self.ctx = ctx
        self.hooks = hooks
        self.trace = ctx.trace
        n = len(plan.ops)
        self.waiting = list(plan.parents)
        self.delivered = [0] * n
        self.inputs: list[list[Any] | None] = [None] * n
        self.failure: NodeFailed | None = None
        self.output: Any = None
        self.tg: anyio.abc.TaskGroup | None = None
        #: every stream handed to a node, closed when the run ends early
        self.streams: list[RunStream] = []

    async def execute(self, value: Any) -> Any:
        plan = self.plan
        finished = False
        try:
            async with anyio.create_task_group() as tg:
                self.tg = tg
                await self._drive([(i, self._root_args(i, value)) for i in plan.roots])
            finished = self.failure is None
        finally:
            self.tg = None
            if not finished:
                await self._close_streams()
        if self.failure is not None:
            raise self.failure
        if isinstance(self.output, TracedStream):
            self.output.upstream = [s for s in reversed(self.streams) if s is not self.output]
        return self.output

    async def _close_streams(self) -> None:
        """Close the streams of a failed or cancelled run, so that no generator is
        left suspended for the event loop to finalize later in a stray task."""
        with anyio.CancelScope(shield=True):
            for stream in reversed(self.streams):
                if isinstance(stream, TracedStream):
                    await stream.close_source()
                else:
                    await stream.aclose()

    def _root_args(self, i: int, value: Any) -> tuple[Any, ...]:
        op = self.plan.ops[i]
        return (value,) if op.input_types or op.variadic else ()

    async def _drive(self, ready: list[_Ready]) -> None:
        """Run the nodes in ``ready`` and then those they make ready. The inline
        ones run here, one after another; the others start in tasks of their own
        first (so that they are under way before the inline work holds the loop),
        but for one that runs here when nothing inline is left to do."""
        ops = self.plan.ops
        stack: list[_Ready] = []  # inline nodes to run here, the next one last
        following: _Ready | None = None
        while True:
            if ready:
                inline: list[_Ready] = []
                others: list[_Ready] = []
                for item in ready:
                    op = ops[item[0]]
                    if op.inline and op.timeout is None and op.retry is None:
                        inline.append(item)
                    else:
                        others.append(item)
                if inline:
                    stack += reversed(inline)
                if others:
                    if following is None and not stack:
                        following = others.pop(0)
                    for item in others:
                        self._start(*item)
                    if others and stack:
                        await anyio.lowlevel.checkpoint()
            if stack:
                i, args = stack.pop()
            elif following is not None:
                (i, args), following = following, None
            else:
                return
            if self.failure is not None:  # the run is over: leave the rest pending
                return
            ready = self._deliver_output(i, await self._run_node(ops[i], args))

    def _deliver_output(self, i: int, out: Any) -> list[_Ready]:
        """Hand node ``i``'s output ``out`` to its children; return those now ready."""
        if out is _EMPTY:
            return []
        plan = self.plan
        if i == plan.target:
            self.output = out.value if type(out) is Branched else out
        links = plan.children[i]
        if not links:
            return []
        chosen: frozenset[str] | None = None
        if type(out) is Branched:
            chosen, out = out.chosen, out.value
        outs = None
        if plan.ops[i].streams and len(links) > 1:
            outs = tee(out, len(links))
            self.streams += outs
        ready: list[_Ready] = []
        for k, (child, slot) in enumerate(links):
            taken = chosen is None or plan.ops[child].name in chosen
            args = self._deliver(child, slot, outs[k] if outs else out, taken)
            if args is None:
                continue
            if args is _EMPTY:
                self._skip(child)
            else:
                ready.append((child, args))
        return ready

    def _deliver(self, child: int, slot: int, value: Any, taken: bool) -> Any:
        """Hand ``value`` to ``child``; return its arguments once it can run,
        ``_EMPTY`` if it must be skipped, or None while it waits for parents."""
        total = self.plan.parents[child]
        if total == 1:
            return (value,) if taken else _EMPTY
        slots = self.inputs[child]
        if slots is None:
            slots = self.inputs[child] = [_EMPTY] * total
        if taken:
            slots[slot] = value
            self.delivered[child] += 1
        self.waiting[child] -= 1
        if self.waiting[child]:
            return None
        got = self.delivered[child]
        if got == total:
            return tuple(slots)
        if got and self.plan.ops[child].joins_skipped:
            return tuple(v for v in slots if v is not _EMPTY)
        return _EMPTY

    def _skip(self, i: int) -> None:
        """Mark node ``i`` skipped and pass the skip on to its children."""
        self.trace.record(self.plan.ops[i].name).state = NodeState.SKIPPED
        for child, slot in self.plan.children[i]:
            ready = self._deliver(child, slot, None, False)
            if ready is _EMPTY:
                self._skip(child)
            elif ready is not None:
                self._start(child, ready)

    def _start(self, i: int, args: tuple[Any, ...]) -> None:
        """Drive node ``i`` in a task of its own, beside the others of the run."""
        assert self.tg is not None  # set for as long as the run's task group lives
        self.tg.start_soon(self._drive, [(i, args)])

    async def _run_node(self, op: Operator, args: tuple[Any, ...]) -> Any:
        """Run one node with its timeout and retry; return its output, or
        ``_EMPTY`` after recording a failure (which cancels the run)."""
        rec = NodeRecord(op.name, NodeState.RUNNING)
        self.trace.records[op.name] = rec
        rec.input = args[0] if len(args) == 1 else args
        for hook in self.hooks:
            hook.on_node_start(rec, self.ctx)
        rec.started = time.perf_counter()
        rec.attempts = 1
        try:
            if op.timeout is None and op.retry is None:
                out = await op.execute(self.ctx, *args)
            else:
                out = await self._run_guarded(op, args, rec)
        except Exception as error:
            self._record_failure(rec, error)
            return _EMPTY
        except BaseException:  # cancelled: another node failed, or the caller gave up
            rec.ended = time.perf_counter()
            rec.state = NodeState.CANCELLED
            for hook in self.hooks:
                hook.on_node_end(rec, self.ctx)
            raise
        if op.streams:
            return self._traced(op, args, rec, out)
        rec.ended = time.perf_counter()
        rec.output = out
        rec.state = NodeState.SUCCEEDED
        for hook in self.hooks:
            hook.on_node_end(rec, self.ctx)
        return out

    async def _run_guarded(self, op: Operator, args: tuple[Any, ...], rec: NodeRecord) -> Any:
        policy = op.retry if _replayable(args) else None
        while True:
            try:
                if op.timeout is None:
                    return await op.execute(self.ctx, *args)
                try:
                    with anyio.fail_after(op.timeout):
                        return await op.execute(self.ctx, *args)
                except TimeoutError:
                    raise NodeTimeout(op.name, op.timeout) from None
            except Exception as error:
                if policy is None or not policy.should_retry(error, rec.attempts):
                    raise
                await anyio.sleep(policy.next_delay(rec.attempts))
                rec.attempts += 1

    def _traced(
        self, op: Operator, args: tuple[Any, ...], rec: NodeRecord, stream: AsyncIterator[Any]
    ) -> TracedStream:
        async def restart() -> AsyncIterator[Any]:
            again: AsyncIterator[Any] = await op.execute(self.ctx, *args)
            return again

        traced = TracedStream(
            stream,
            rec,
            timeout=op.timeout,
            restart=restart,
            retry=op.retry if _replayable(args) else None,
            on_end=self._stream_ended,
        )
        self.streams.append(traced)
        return traced

    def _stream_ended(self, rec: NodeRecord, error: BaseException | None) -> None:
        if isinstance(error, NodeFailed) and error.node == rec.name:
            self._set_failure(error)
        for hook in self.hooks:
            hook.on_node_end(rec, self.ctx)

    def _record_failure(self, rec: NodeRecord, error: Exception) -> None:
        rec.ended = time.perf_counter()
        rec.state = NodeState.FAILED
        rec.error = error
        if isinstance(error, NodeFailed):
            failure = error  # an upstream stream broke while this node read it
        else:
            failure = NodeFailed(rec.name, error)
            failure.__cause__ = error
        self._set_failure(failure)
        for hook in self.hooks:
            hook.on_node_end(rec, self.ctx)

    def _set_failure(self, failure: NodeFailed) -> None:
        if isinstance(failure.__cause__, InputError):  # it names what refused the input
            failure.__cause__.locate(flow=self.name, node=failure.node)
        if self.failure is None:
            self.failure = failure
        if self.tg is not None:
            self.tg.cancel_scope.cancel()


def _replayable(args: tuple[Any, ...]) -> bool:
    """Whether a node may be retried on ``args``: a stream it has read from cannot be
    read again, so a retry would silently lose the chunks already taken."""
    return not any(isinstance(arg, AsyncIterator) for arg in args)


async def run_dag(
    dag: Graph,
    input: Any = None,
    *,
    output: Operator | str | None = None,
    trace: Trace | None = None,
    registry: Any = None,
    hooks: Sequence[RunHook] = (),
    data: dict[str, Any] | None = None,
    files: FileAccess | None = None,
) -> Any:
    """Run ``dag`` on ``input`` and return the output node's result.

    ``output`` picks the node whose result is returned (default: the one leaf);
    only the nodes it depends on run. ``trace``, a ``Trace``, is filled with a
    record per node (the return value is the same with or without it).
    ``registry`` is the model registry for model operators (None: the flow uses
    no models); ``files`` limits the files a path in the input may name (None:
    any). A stream output comes back as an async iterator, read lazily.
    """
    if trace is not None and not isinstance(trace, Trace):
        raise FlowError(
            f"trace= takes a Trace to fill, got {trace!r}: pass trace=Trace() "
            "and read it after the run"
        )
    dag.validate(registry)
    plan = plan_for(dag, output)
    run_trace = Trace() if trace is None else trace
    ctx = RunContext(run_trace, registry=registry, data=data, files=files)
    for hook in hooks:
        hook.on_run_start(ctx)
    error: BaseException | None = None
    try:
        return await _Run(dag.name, plan, ctx, hooks).execute(input)
    except BaseException as exc:
        error = exc
        raise
    finally:
        if error is not None:  # nodes a failed run never reached stay pending
            for op in plan.ops:
                run_trace.record(op.name)
        for hook in hooks:
            hook.on_run_end(ctx, error)


async def stream_dag(dag: Graph, input: Any = None, **options: Any) -> AsyncIterator[Any]:
    """Run ``dag`` and yield its output's chunks (a value output is yielded once)."""
    out = await run_dag(dag, input, **options)
    if not isinstance(out, AsyncIterator):
        yield out
        return
    async with aclosing(iterate(out)) as chunks:  # closing it closes the run's streams
        async for chunk in chunks:
            yield chunk


def run_dag_sync(dag: Graph, input: Any = None, **options: Any) -> Any:
    """``run_dag`` for synchronous callers; a stream output is gathered into a list."""
    refuse_inside_event_loop(
        f"DAG '{dag.name}': cannot run synchronously (dag.run)",
        "use `await dag.arun(...)` or `dag.astream(...)`",
    )

    async def main() -> Any:
        out = await run_dag(dag, input, **options)
        if isinstance(out, AsyncIterator):
            return [chunk async for chunk in out]
        return out

    return anyio.run(main)
