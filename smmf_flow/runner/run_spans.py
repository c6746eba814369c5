"""Runs and nodes as OpenTelemetry spans: a ``RunHook`` the DAG adds to a run
while telemetry is on (``smmf_flow.telemetry``).

A run is an ``invoke_workflow`` span (GenAI semantic conventions) under
whatever span is current when it starts (a server request's, a caller's); each
node is a span under the run's. While a node executes its span is the current
one, so the model calls it makes are its children; a stream node's model call
starts only when its stream is read, elsewhere, so the node's note (a bound
``NodeRecord.note``) also leads there (``span_context_of``). What a node notes
(a fallback, a routing decision, the model that served) becomes an event of its
span at that moment. A stream node's span ends when its stream does, and the run's
span when the run has returned and its last stream has ended.
"""

from __future__ import annotations

import asyncio
from contextvars import Token
from typing import Any

import anyio
from opentelemetry import context, trace
from opentelemetry.trace import Span, Status, StatusCode, Tracer

from smmf_flow.dag.context import RunContext
from smmf_flow.dag.graph import Graph
from smmf_flow.dag.trace import NodeRecord, NodeState
from smmf_flow.errors import describe
from smmf_flow.runner.hooks import RunHook

#: longest text kept in an event attribute (a fallback's message, an agent's step)
MAX_TEXT = 512
_Scalar = str | bool | int | float


class SpanEvents(list[dict[str, Any]]):
    """A node record's events that are also added to the node's span as noted."""

    __slots__ = ("context", "span")

    def __init__(self, span: Span) -> None:
        super().__init__()
        self.span = span
        self.context = trace.set_span_in_context(span)

    def append(self, event: dict[str, Any]) -> None:
        super().append(event)
        add_event(self.span, event)


def add_event(span: Span, event: dict[str, Any]) -> None:
    """A noted event (``{"event": "fallback", "model": ...}``) as ``smmf_flow.fallback``."""
    details = {k: _value(v) for k, v in event.items() if k != "event" and v is not None}
    span.add_event(f"smmf_flow.{event.get('event', 'note')}", details)


def span_context_of(note: object) -> context.Context | None:
    """The context of the node span behind ``note`` (a ``NodeRecord.note`` during
    a traced run), or None: then the current context is the parent."""
    events = getattr(getattr(note, "__self__", None), "events", None)
    return events.context if isinstance(events, SpanEvents) else None


class RunSpans(RunHook):
    """The spans of one run of ``dag`` (a hook is made per run)."""

    def __init__(self, tracer: Tracer, dag: Graph) -> None:
        self.tracer, self.dag = tracer, dag
        self.run_span: Span | None = None
        self.run_context: context.Context | None = None
        self.token: Token[context.Context] | None = None
        #: node → (span, attach token, task that attached it)
        self.open: dict[str, tuple[Span, Token[context.Context], object]] = {}
        self.returned = False
        self.failed: BaseException | None = None

    def on_run_start(self, ctx: RunContext) -> None:
        name = self.dag.name
        self.run_span = self.tracer.start_span(
            f"invoke_workflow {name}",
            attributes={
                "gen_ai.operation.name": "invoke_workflow",
                "gen_ai.workflow.name": name,
                "smmf_flow.run.id": ctx.run_id,
            },
        )
        self.run_context = trace.set_span_in_context(self.run_span)
        self.token = context.attach(self.run_context)

    def on_node_start(self, record: NodeRecord, ctx: RunContext) -> None:
        op = self.dag.graph.nodes[record.name]["op"]
        span = self.tracer.start_span(
            f"node {record.name}",
            context=self.run_context,
            attributes={"smmf_flow.node.name": record.name, "smmf_flow.node.kind": op.kind},
        )
        events = record.events = SpanEvents(span)
        token = context.attach(events.context)
        self.open[record.name] = (span, token, _current_task())

    def on_node_end(self, record: NodeRecord, ctx: RunContext) -> None:
        opened = self.open.pop(record.name, None)
        if opened is None:
            return
        span, token, task = opened
        # a stream node ends where its stream is read: its context stays where it was
        # attached (the run's end clears it), so detach only in the task that attached
        if _current_task() is task and trace.get_current_span() is span:
            context.detach(token)
        ended: dict[str, str | int] = {
            "smmf_flow.node.state": record.state.value,
            "smmf_flow.node.attempts": record.attempts,
        }
        if record.chunks is not None:
            ended["smmf_flow.node.chunks"] = record.chunks
        span.set_attributes(ended)
        if record.state is NodeState.FAILED and record.error is not None:
            self.failed = self.failed or record.error
            _failed(span, record.error)
        span.end()
        if self.returned and not self.open:
            self._end_run()

    def on_run_end(self, ctx: RunContext, error: BaseException | None) -> None:
        if self.token is not None:
            context.detach(self.token)
        self.returned = True
        if error is not None:
            self.failed = error
        if not self.open:  # else the last open stream's end ends the run
            self._end_run()

    def _end_run(self) -> None:
        span, self.run_span = self.run_span, None
        if span is None:
            return
        if self.failed is not None:
            _failed(span, self.failed)
        span.end()


def _current_task() -> object:
    """The running task (asyncio's own lookup: anyio's ``get_current_task`` builds
    a ``TaskInfo`` and costs 100 times more)."""
    try:
        return asyncio.current_task()
    except RuntimeError:  # another event loop than asyncio's
        return anyio.get_current_task().id


def _failed(span: Span, error: BaseException) -> None:
    span.set_status(Status(StatusCode.ERROR, describe(error)[:MAX_TEXT]))
    span.set_attribute("error.type", type(error).__qualname__)


def _value(value: Any) -> _Scalar | list[str]:
    """An event detail as an attribute value: a scalar, or text (bounded)."""
    if isinstance(value, _Scalar):
        return value[:MAX_TEXT] if isinstance(value, str) else value
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return [v[:MAX_TEXT] for v in value[:32]]
    return repr(value)[:MAX_TEXT]
