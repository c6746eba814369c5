"""Edge strings: ``"a >> b >> c"``, with ``[x, y]`` for fan-out and fan-in.

``"split >> [left, right] >> merge"`` is the four edges split→left,
split→right, left→merge, right→merge. Edges are made in the order written,
and that order is the order of a node's inputs (its input slots).
"""

from __future__ import annotations

import itertools
import re

from smmf_flow.errors import FlowError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def parse_edges(text: str) -> list[tuple[str, str]]:
    """The (upstream, downstream) pairs an edge string names, in order."""
    if not isinstance(text, str):
        raise FlowError(f'an edge must be a string like "a >> b", not {type(text).__name__}')
    if ">>" not in text:
        raise FlowError(f"edge {text!r} has no '>>'; write \"upstream >> downstream\"")
    segments = [_segment(part.strip(), text) for part in text.split(">>")]
    pairs: list[tuple[str, str]] = []
    for left, right in itertools.pairwise(segments):
        pairs += [(up, down) for up in left for down in right]
    return pairs


def _segment(part: str, text: str) -> list[str]:
    if not part:
        raise FlowError(f'edge {text!r} has an empty step; write "a >> b >> c"')
    if part.startswith("[") != part.endswith("]"):
        raise FlowError(f"edge {text!r}: unbalanced brackets in {part!r}")
    names = [n.strip() for n in part[1:-1].split(",")] if part.startswith("[") else [part]
    for name in names:
        if not _NAME.match(name):
            raise FlowError(
                f"edge {text!r}: {name!r} is not a node name"
                + (
                    "; use '>>' between nodes (not '->' or '>')"
                    if any(s in name for s in ("->", ">", "<"))
                    else ""
                )
            )
    return names


def format_chain(names: list[str]) -> str:
    return " >> ".join(names)


__all__ = ["format_chain", "parse_edges"]
