"""``JoinOperator``: combine the outputs of several upstream nodes into one.

A join is the one kind of node that runs when some of its parents were skipped
by a branch: its combine function receives the outputs of the parents that ran,
in edge order. It is skipped only when every parent was skipped.

AWEL's join instead gets one argument per parent, ``SKIP_DATA`` for a skipped
one: so does a join of an AWEL call (``node.call(...)``) and one given AWEL's
``can_skip_in_branch`` keyword.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from smmf_flow.dag.awel_calls import AWEL_CALL, SKIP_DATA
from smmf_flow.dag.context import RunContext
from smmf_flow.dag.operator import Operator, overrides
from smmf_flow.dag.ports import Signature, declared, signature_of, type_arguments
from smmf_flow.dag.trace import NodeState

OUT = TypeVar("OUT")


def _first_or_list(*values: Any) -> Any:
    return values[0] if len(values) == 1 else list(values)


class JoinOperator(Operator, Generic[OUT]):
    """Call ``combine_function(*outputs)``; by default the one output, or a list."""

    kind = "join"
    joins_skipped = True

    def __init__(self, combine_function: Callable[..., Any] | None = None, **options: Any) -> None:
        self.combine_function = combine_function or _first_or_list
        self._is_async = inspect.iscoroutinefunction(self.combine_function)
        self.inline = not self._is_async and not overrides(self, JoinOperator, "execute")
        super().__init__(**options)

    def ports(self) -> Signature:
        sig = signature_of(self.combine_function)
        return declared(sig, Any, *type_arguments(type(self), JoinOperator))

    def params(self) -> dict[str, Any]:
        if self.combine_function is _first_or_list:
            return {}
        return {"combine_function": self.combine_function}

    async def execute(self, ctx: RunContext, *inputs: Any) -> Any:
        if self.skip_in_branch is not None or ctx.get(AWEL_CALL):
            inputs = self._with_skip_markers(ctx, inputs)
        if self._is_async:
            return await self.combine_function(*inputs)
        return self.combine_function(*inputs)

    def _with_skip_markers(self, ctx: RunContext, ran: tuple[Any, ...]) -> tuple[Any, ...]:
        """One input per parent in edge order, ``SKIP_DATA`` for a skipped one."""
        parents = self.dag.upstream(self) if self.dag is not None else []
        if len(ran) >= len(parents):
            return ran
        outputs = iter(ran)
        records = ctx.trace.records
        return tuple(
            SKIP_DATA
            if p.name in records and records[p.name].state is NodeState.SKIPPED
            else next(outputs)
            for p in parents
        )


__all__ = ["JoinOperator"]
