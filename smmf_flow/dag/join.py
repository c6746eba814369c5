"""``JoinOperator``: combine the outputs of several upstream nodes into one.

A join is the one kind of node that runs when some of its parents were skipped
by a branch: its combine function receives the outputs of the parents that ran,
in edge order. It is skipped only when every parent was skipped.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from smmf_flow.dag.context import RunContext
from smmf_flow.dag.operator import Operator, overrides
from smmf_flow.dag.ports import Signature, signature_of


def _first_or_list(*values: Any) -> Any:
    return values[0] if len(values) == 1 else list(values)


class JoinOperator(Operator):
    """Call ``combine_function(*outputs)``; by default the one output, or a list."""

    kind = "join"
    joins_skipped = True

    def __init__(self, combine_function: Callable[..., Any] | None = None, **options: Any) -> None:
        self.combine_function = combine_function or _first_or_list
        self._is_async = inspect.iscoroutinefunction(self.combine_function)
        self.inline = not self._is_async and not overrides(self, JoinOperator, "execute")
        super().__init__(**options)

    def ports(self) -> Signature:
        return signature_of(self.combine_function)

    def params(self) -> dict[str, Any]:
        if self.combine_function is _first_or_list:
            return {}
        return {"combine_function": self.combine_function}

    async def execute(self, ctx: RunContext, *inputs: Any) -> Any:
        if self._is_async:
            return await self.combine_function(*inputs)
        return self.combine_function(*inputs)


__all__ = ["JoinOperator"]
