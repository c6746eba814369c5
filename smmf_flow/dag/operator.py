"""The operator contract.

An operator is one node of a DAG. It has

* a ``name``, unique in its DAG (given, or made from its type: ``map_3``);
* typed ports: ``input_types`` (one type per positional input, in edge order;
  ``variadic`` when it takes any number) and ``output_type``. An output type of
  ``AsyncIterator[T]`` makes the operator a *stream* operator: its result is an
  async iterator that is consumed lazily, chunk by chunk, downstream;
* ``async execute(ctx, *inputs)``: the work. A root node gets the run's input as
  its one argument; any other node gets its parents' outputs in the order the
  edges were made. A stream operator returns its async iterator without
  draining it;
* per-node ``timeout`` (seconds; for a stream node, the longest wait for one
  chunk) and ``retry`` (a ``RetryPolicy``; a node that reads a stream is not
  retried, since the chunks it took cannot be read again);
* ``check(registry)``: called while the DAG is validated, so an operator that
  needs outside resources (a model) can refuse the flow before anything runs.

``a >> b`` adds the edge a→b, checks that ``a``'s output can feed ``b``'s next
input, and returns ``b``; ``a >> [b, c]``, ``[a, b] >> c`` and ``<<`` work too.
Operators created inside ``with DAG(...)`` join that DAG; nothing else is global.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, ClassVar

from smmf_flow.dag.ports import Signature, compatible, is_stream, type_name
from smmf_flow.errors import EdgeTypeError, FlowError

if TYPE_CHECKING:
    from smmf_flow.dag.dag import DAG
    from smmf_flow.runner.context import RunContext
    from smmf_flow.runner.retry import RetryPolicy

#: the DAG that ``with DAG(...)`` opened in this context, if any
CURRENT_DAG: ContextVar["DAG | None"] = ContextVar("smmf_flow_current_dag", default=None)


class Operator:
    """Base of every node. Subclasses implement ``execute`` and declare ports."""

    #: name of this operator type in flow files (``type: map``); '' = not exported
    kind: ClassVar[str] = ""
    #: True for operators that may run with some parents skipped (joins)
    joins_skipped: ClassVar[bool] = False
    #: True for operators whose output is a ``Branched`` decision
    is_branch: ClassVar[bool] = False

    def __init__(self, *, name: str | None = None, timeout: float | None = None,
                 retry: "RetryPolicy | None" = None, dag: "DAG | None" = None,
                 input_type: Any = None, output_type: Any = None) -> None:
        self.name: str = name or ""
        self.timeout = timeout
        self.retry = retry
        self.dag: DAG | None = None
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
        """Input and output types; subclasses read them from type hints."""
        return Signature((Any,), False, Any)

    async def execute(self, ctx: "RunContext", *inputs: Any) -> Any:
        """Do this node's work; see the module docstring."""
        raise FlowError(f"operator '{self.name}' ({type(self).__name__}) defines no execute()")

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

    def __rshift__(self, other: "Operator | Sequence[Operator]") -> Any:
        for node in _as_nodes(other, self, ">>"):
            connect(self, node)
        return other

    def __rrshift__(self, others: Sequence["Operator"]) -> "Operator":
        for node in _as_nodes(others, self, ">>"):
            connect(node, self)
        return self

    def __lshift__(self, other: "Operator | Sequence[Operator]") -> Any:
        for node in _as_nodes(other, self, "<<"):
            connect(node, self)
        return other

    def __rlshift__(self, others: Sequence["Operator"]) -> "Operator":
        for node in _as_nodes(others, self, "<<"):
            connect(self, node)
        return self

    # --- AWEL-style call -------------------------------------------------------

    async def call(self, input: Any = None, **options: Any) -> Any:
        """Run this node's DAG up to this node and return its output."""
        if self.dag is None:
            raise FlowError(f"operator '{self.name}' belongs to no DAG; "
                            "create it inside `with DAG(...)`")
        return await self.dag.arun(input, output=self, **options)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} '{self.name}'>"


def _as_nodes(value: Any, beside: Operator, op: str) -> list[Operator]:
    """The operators on the other side of ``>>``/``<<``: one, or a list of them."""
    if isinstance(value, Operator):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, Operator) for v in value):
        return list(value)
    raise FlowError(f"cannot chain '{beside.name}' {op} {value!r}: only an operator or a "
                    "list of operators can stand on either side of >> and <<")


def connect(upstream: Operator, downstream: Operator) -> None:
    """Add the edge upstream→downstream after checking DAG membership and types."""
    if not isinstance(upstream, Operator) or not isinstance(downstream, Operator):
        bad = upstream if not isinstance(upstream, Operator) else downstream
        raise FlowError(f"cannot chain {bad!r}: only operators can be joined with >> or <<")
    dag = upstream.dag or downstream.dag
    if dag is None:
        raise FlowError(f"cannot connect '{upstream.name}' >> '{downstream.name}': neither "
                        "belongs to a DAG; create operators inside `with DAG(...)`")
    for node in (upstream, downstream):
        if node.dag is None:
            dag.add(node)
    dag.add_edge(upstream, downstream)


def check_edge(upstream: Operator, downstream: Operator, slot: int) -> None:
    """Raise ``EdgeTypeError`` if ``upstream``'s output cannot feed input ``slot``."""
    expected = downstream.input_type_at(slot)
    ends = f"'{upstream.name}' >> '{downstream.name}'"
    if expected is None:
        arity = len(downstream.input_types)
        raise EdgeTypeError(
            f"cannot connect {ends}: '{downstream.name}' takes {arity} input"
            f"{'s' if arity != 1 else ''} and already has {slot} upstream; "
            "combine several upstreams with a JoinOperator first")
    produced = upstream.output_type
    if compatible(produced, expected):
        return
    hint = ""
    if is_stream(produced) and not is_stream(expected):
        hint = ("; a stream cannot feed a node that takes a value: put an "
                "UnstreamifyOperator or ReduceStreamOperator between them")
    elif is_stream(expected) and not is_stream(produced):
        hint = "; a value cannot feed a stream input: put a StreamifyOperator between them"
    raise EdgeTypeError(
        f"cannot connect {ends}: '{upstream.name}' outputs {type_name(produced)} but "
        f"'{downstream.name}' input {slot + 1} expects {type_name(expected)}{hint}")
