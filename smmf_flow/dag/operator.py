"""The operator contract: everything a custom operator needs, on one screen.

An operator is one node of a flow. Write one by subclassing ``Operator`` and
defining ``execute``; its type hints are its ports (Hamilton's idea)::

    class Retrieve(Operator):
        kind = "retrieve"                       # its type name in flow files

        def __init__(self, k: int = 3, **options: Any) -> None:
            self.k = k                          # set what ports() may read first,
            super().__init__(**options)         # then let the base read the ports

        async def execute(self, ctx: RunContext, question: str) -> Retrieval:
            ...

* **Ports.** The parameters after ``ctx`` are the inputs, in edge order (a
  ``*args`` parameter takes any number); the return hint is the output. An
  output of ``AsyncIterator[T]`` makes a *stream* operator: ``execute`` (a
  coroutine, never an async generator) returns the iterator undrained and the
  runner hands it on lazily, chunk by chunk. When configuration changes a port
  (``stream=True``, ``input_key=...``), pass ``input_type=`` / ``output_type=``
  to ``Operator.__init__``; the primitives (map, join, ...) override
  ``ports()`` to read their function's hints instead.
* **Running.** A root node gets the run's input as its one argument; any other
  node gets its parents' outputs. ``ctx`` is the run's ``RunContext``: the
  model registry, shared data, the trace (``ctx.note``) and ``ctx.files``,
  which every path taken from the input must pass before it is opened.
* **Options** every node takes: ``name`` (unique in its DAG; default from the
  type: ``map_3``; AWEL's ``task_name`` is the same), ``timeout`` (seconds;
  for a stream, the longest wait for a chunk), ``retry`` (a ``RetryPolicy``;
  a node that read a stream is not retried), ``input_type``/``output_type``;
  and AWEL's ``task_id`` and
  ``can_skip_in_branch`` (``dag/awel_calls.py``, which also gives every node
  AWEL's ``call``/``call_stream``).
* **Checks.** ``check(registry)`` runs while the flow is validated, before
  anything runs, so a node can refuse the flow (an unknown model) early;
  ``params()`` returns the constructor arguments that rebuild the node.
* **Errors** come from ``smmf_flow.errors``: ``FlowError(message, node=...,
  param=...)`` for a node that cannot be made or checked (the place goes in the
  fields, never in the text), ``InputError`` for an input ``execute`` refuses;
  whatever ``execute`` raises fails the run as ``NodeFailed`` naming the node.

One way to do each thing: ``a >> b`` adds the edge a→b, checks at once that
``a``'s output can feed ``b``'s next input, and returns ``b`` (``a >> [b, c]``,
``[a, b] >> c`` and ``<<`` too). Nodes join the DAG open in ``with DAG(...)``
(or ``dag=``); nothing else is global. A flow runs through its DAG:
``dag.run(x)``, ``await dag.arun(x)`` or ``dag.astream(x)``, with the same
options; ``output=node`` returns an inner node's result, and ``trace=Trace()``
is filled in place without changing what is returned.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any, ClassVar, Protocol

from smmf_flow.dag.awel_calls import AwelCalls
from smmf_flow.dag.context import RunContext
from smmf_flow.dag.ports import Signature, is_stream, signature_of
from smmf_flow.dag.retry import RetryPolicy
from smmf_flow.errors import FlowError


class OwningDag(Protocol):
    """What an operator needs of the DAG it belongs to (``dag/graph.py``'s
    ``Graph``): its name, and adding nodes and edges, which it checks."""

    name: str

    def add(self, op: Operator) -> Operator: ...

    def add_edge(self, upstream: Operator, downstream: Operator) -> None: ...

    def upstream(self, op: Operator) -> list[Operator]: ...

    def downstream(self, op: Operator) -> list[Operator]: ...


#: the DAG that ``with DAG(...)`` opened in this context, if any
CURRENT_DAG: ContextVar[OwningDag | None] = ContextVar("smmf_flow_current_dag", default=None)


class Operator(AwelCalls):
    """Base of every node; see the module docstring for the contract."""

    #: name of this operator type in flow files (``type: map``); '' = not exported
    kind: ClassVar[str] = ""
    #: True for operators that may run with some parents skipped (joins)
    joins_skipped: ClassVar[bool] = False
    #: True for operators whose output is a ``Branched`` decision
    is_branch: ClassVar[bool] = False
    #: True when ``execute`` never suspends (plain synchronous work): the runner
    #: then runs the node in the task that made it ready instead of a new task,
    #: which costs far less and changes nothing, as the node never lets others run
    inline: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if inspect.isasyncgenfunction(cls.__dict__.get("execute")):
            raise FlowError(
                f"{cls.__qualname__}.execute is an async generator; make it a "
                "coroutine that returns the stream (`return self.chunks(...)`, "
                "with the output hint AsyncIterator[...])"
            )

    def __init__(
        self,
        *,
        name: str | None = None,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        dag: OwningDag | None = None,
        input_type: Any = None,
        output_type: Any = None,
        task_name: str | None = None,
        task_id: str | None = None,
        can_skip_in_branch: bool | None = None,
    ) -> None:
        if name and task_name and name != task_name:
            raise FlowError(
                f"name={name!r} and task_name={task_name!r} name one node twice; give one",
                node=name,
                param="task_name",
            )
        name = name or task_name
        if not overrides(self, Operator, "execute"):
            raise FlowError(
                f"{type(self).__name__} defines no execute(); see the operator "
                "contract in smmf_flow.dag.operator",
                node=name,
            )
        self.name: str = name or ""
        self.timeout = timeout
        self.retry = retry
        self.task_id = task_id or ""
        self.skip_in_branch = can_skip_in_branch
        self.dag: OwningDag | None = None
        ports = self.ports()
        inputs = ports.inputs if input_type is None else (input_type,)
        self.input_types: tuple[Any, ...] = inputs
        self.variadic: bool = ports.variadic and input_type is None
        self.output_type: Any = ports.output if output_type is None else output_type
        self.streams: bool = is_stream(self.output_type)
        owner = dag or CURRENT_DAG.get()
        if owner is not None:
            owner.add(self)

    # --- the contract ----------------------------------------------------------

    def ports(self) -> Signature:
        """Input and output types, read from ``execute``'s hints (``ctx`` skipped)."""
        return signature_of(self.execute, skip_first=True)

    async def execute(self, ctx: RunContext, *inputs: Any) -> Any:
        """Do this node's work; see the module docstring."""
        raise FlowError(f"operator '{self.name}' ({type(self).__name__}) defines no execute()")

    @property
    def reads_call_data(self) -> bool:
        """Whether this node, as a root, reads the run's input (AWEL: the call data)."""
        return True

    def check(self, registry: Any) -> None:
        """Refuse the flow early if this node cannot run (unknown model, ...)."""

    def params(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this node (flow-file export)."""
        return {}

    # --- ports -----------------------------------------------------------------

    def input_type_at(self, slot: int) -> Any | None:
        """The type expected at input ``slot``, or None if the node takes no more inputs."""
        if slot < len(self.input_types):
            return self.input_types[slot]
        if self.variadic and self.input_types:
            return self.input_types[-1]
        return None

    # --- chaining --------------------------------------------------------------

    def set_downstream(self, nodes: Operator | Sequence[Operator]) -> None:
        """``self >> nodes``, in AWEL's spelling."""
        self >> nodes

    def set_upstream(self, nodes: Operator | Sequence[Operator]) -> None:
        """``nodes >> self``, in AWEL's spelling."""
        self << nodes

    def __rshift__(self, other: Operator | Sequence[Operator]) -> Any:
        for node in _as_nodes(other, self, ">>"):
            connect(self, node)
        return other

    def __rrshift__(self, others: Sequence[Operator]) -> Operator:
        for node in _as_nodes(others, self, ">>"):
            connect(node, self)
        return self

    def __lshift__(self, other: Operator | Sequence[Operator]) -> Any:
        for node in _as_nodes(other, self, "<<"):
            connect(node, self)
        return other

    def __rlshift__(self, others: Sequence[Operator]) -> Operator:
        for node in _as_nodes(others, self, "<<"):
            connect(self, node)
        return self

    def __repr__(self) -> str:
        return f"<{type(self).__name__} '{self.name}'>"


def overrides(op: Operator, base: type[Operator], method: str) -> bool:
    """Whether ``op``'s class replaces ``base``'s ``method`` with its own."""
    return getattr(type(op), method) is not getattr(base, method)


def _as_nodes(value: Any, beside: Operator, op: str) -> list[Operator]:
    """The operators on the other side of ``>>``/``<<``: one, or a list of them."""
    if isinstance(value, Operator):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, Operator) for v in value):
        return list(value)
    raise FlowError(
        f"cannot chain '{beside.name}' {op} {value!r}: only an operator or a "
        "list of operators can stand on either side of >> and <<"
    )


def connect(upstream: Operator, downstream: Operator) -> None:
    """Add the edge upstream→downstream after checking DAG membership and types."""
    if not isinstance(upstream, Operator) or not isinstance(downstream, Operator):
        bad = upstream if not isinstance(upstream, Operator) else downstream
        raise FlowError(f"cannot chain {bad!r}: only operators can be joined with >> or <<")
    dag = upstream.dag or downstream.dag
    if dag is None:
        raise FlowError(
            f"cannot connect '{upstream.name}' >> '{downstream.name}': neither "
            "belongs to a DAG; create operators inside `with DAG(...)`"
        )
    for node in (upstream, downstream):
        if node.dag is None:
            dag.add(node)
    dag.add_edge(upstream, downstream)
