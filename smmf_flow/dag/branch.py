"""``BranchOperator``: send the input down the branches whose predicate holds.

Branches not taken are *skipped*, and the skip propagates: a node whose input
came from a skipped node is skipped too, except a ``JoinOperator``, which runs
with the branches that did run. In an AWEL call (``node.call(...)``) a child
that no branch names runs, as in AWEL, which skips only the named children
whose predicate failed.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from smmf_flow.dag.awel_calls import AWEL_CALL
from smmf_flow.dag.context import RunContext
from smmf_flow.dag.operator import Operator, overrides
from smmf_flow.dag.ports import Signature, type_arguments
from smmf_flow.errors import FlowError

Predicate = Callable[[Any], Any]
Target = Operator | str
Branches = Mapping[Predicate, Target] | Sequence[tuple[Predicate, Target]]
IN = TypeVar("IN")
OUT = TypeVar("OUT")


@dataclass(frozen=True, slots=True)
class Branched:
    """A branch node's output: the value passed on, and the children that get it."""

    value: Any
    chosen: frozenset[str]


class BranchOperator(Operator, Generic[IN, OUT]):
    """Evaluate predicates in order; every branch whose predicate holds runs.

    ``branches`` maps predicate → downstream node (or its name), or is a list of
    ``(predicate, node)`` pairs. With ``first_match=True`` only the first branch
    that holds runs. ``default`` runs when no predicate holds. AWEL's form, a
    subclass whose ``async def branches(self)`` returns the mapping, is asked
    for it on each run.
    """

    kind = "branch"
    is_branch = True

    def __init__(
        self,
        branches: Branches | None = None,
        *,
        default: Target | None = None,
        first_match: bool = False,
        **options: Any,
    ) -> None:
        where = options.get("name") or options.get("task_name")
        if branches is None and not overrides(self, BranchOperator, "branches"):
            raise FlowError(
                "BranchOperator needs branches: a mapping predicate → node (or its "
                "name), or a subclass whose `async def branches(self)` returns one",
                node=where,
                param="branches",
            )
        self.branch_pairs = None if branches is None else _pairs(branches, where)
        self.default = default
        self.first_match = first_match
        super().__init__(**options)

    def ports(self) -> Signature:
        value = (type_arguments(type(self), BranchOperator) or (Any,))[0]
        return Signature((value,), False, value)

    async def branches(self) -> Branches:
        """Override (AWEL's form) instead of passing ``branches``."""
        raise NotImplementedError  # never called: __init__ refuses a branch without one

    def targets(self) -> list[str]:
        """Names of every node this branch may send its input to (known when the
        branches were given; a ``branches()`` override names them as it runs)."""
        named = [_name(t) for _, t in self.branch_pairs or ()]
        return named + ([_name(self.default)] if self.default is not None else [])

    def params(self) -> dict[str, Any]:
        pairs = self.branch_pairs or []
        args: dict[str, Any] = {"branches": [(p, _name(t)) for p, t in pairs]}
        if self.default is not None:
            args["default"] = _name(self.default)
        return {**args, "first_match": True} if self.first_match else args

    async def execute(self, ctx: RunContext, *inputs: Any) -> Branched:
        value = inputs[0]
        pairs = self.branch_pairs
        if pairs is None:
            pairs = _pairs(await self.branches(), self.name)
        chosen: list[str] = []
        for predicate, target in pairs:
            verdict = predicate(value)
            if inspect.isawaitable(verdict):
                verdict = await verdict
            if verdict:
                chosen.append(_name(target))
                if self.first_match:
                    break
        if not chosen and self.default is not None:
            chosen.append(_name(self.default))
        if self.dag is not None and ctx.get(AWEL_CALL):  # AWEL skips only the named
            named = {_name(t) for _, t in pairs}
            chosen += [c.name for c in self.dag.downstream(self) if c.name not in named]
        return Branched(value, frozenset(chosen))


def _pairs(branches: Branches, node: str | None) -> list[tuple[Predicate, Target]]:
    """The branches as (predicate, node or name) pairs, each checked."""
    pairs = list(branches.items()) if isinstance(branches, Mapping) else list(branches)
    for pair in pairs:
        ok = isinstance(pair, tuple) and len(pair) == 2 and callable(pair[0])
        if not ok or not isinstance(pair[1], (Operator, str)):
            raise FlowError(
                f"BranchOperator: each branch must be (predicate, node), got {pair!r}",
                node=node,
                param="branches",
            )
    return pairs


def _name(target: Target) -> str:
    return target.name if isinstance(target, Operator) else target


__all__ = ["BranchOperator", "Branched"]
