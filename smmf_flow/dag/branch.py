"""``BranchOperator``: send the input down the branches whose predicate holds.

Branches not taken are *skipped*, and the skip propagates: a node whose input
came from a skipped node is skipped too, except a ``JoinOperator``, which runs
with the branches that did run.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from smmf_flow.dag.context import RunContext
from smmf_flow.dag.operator import Operator
from smmf_flow.dag.ports import Signature
from smmf_flow.errors import FlowError

Predicate = Callable[[Any], Any]
Target = Operator | str


@dataclass(frozen=True, slots=True)
class Branched:
    """A branch node's output: the value passed on, and the children that get it."""

    value: Any
    chosen: frozenset[str]


class BranchOperator(Operator):
    """Evaluate predicates in order; every branch whose predicate holds runs.

    ``branches`` maps predicate → downstream node (or its name), or is a list of
    ``(predicate, node)`` pairs. With ``first_match=True`` only the first branch
    that holds runs. ``default`` runs when no predicate holds.
    """

    kind = "branch"
    is_branch = True

    def __init__(
        self,
        branches: Mapping[Predicate, Target] | Sequence[tuple[Predicate, Target]],
        *,
        default: Target | None = None,
        first_match: bool = False,
        **options: Any,
    ) -> None:
        pairs = list(branches.items()) if isinstance(branches, Mapping) else list(branches)
        for pair in pairs:
            if not (isinstance(pair, tuple) and len(pair) == 2 and callable(pair[0])):
                raise FlowError(
                    f"BranchOperator: each branch must be (predicate, node), got {pair!r}",
                    node=options.get("name"),
                    param="branches",
                )
        self.branches = pairs
        self.default = default
        self.first_match = first_match
        super().__init__(**options)

    def ports(self) -> Signature:
        return Signature((Any,), False, Any)

    def targets(self) -> list[str]:
        """Names of every node this branch may send its input to."""
        named = [_name(t) for _, t in self.branches]
        return named + ([_name(self.default)] if self.default is not None else [])

    def params(self) -> dict[str, Any]:
        args: dict[str, Any] = {"branches": [(p, _name(t)) for p, t in self.branches]}
        if self.default is not None:
            args["default"] = _name(self.default)
        return {**args, "first_match": True} if self.first_match else args

    async def execute(self, ctx: RunContext, *inputs: Any) -> Branched:
        value = inputs[0]
        chosen: list[str] = []
        for predicate, target in self.branches:
            verdict = predicate(value)
            if inspect.isawaitable(verdict):
                verdict = await verdict
            if verdict:
                chosen.append(_name(target))
                if self.first_match:
                    break
        if not chosen and self.default is not None:
            chosen.append(_name(self.default))
        return Branched(value, frozenset(chosen))


def _name(target: Target) -> str:
    return target.name if isinstance(target, Operator) else target


__all__ = ["BranchOperator", "Branched"]
