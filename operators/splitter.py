"""``TextSplitterOperator``: documents in, overlapping chunks out.

Chunks are sized in characters, or in tokens of the embedding model that will
embed them (so no chunk is silently truncated by the model's window: MiniLM
stops reading at 256 tokens). Every chunk keeps its source and its character
offsets, and its text is exactly ``document.text[start:end]``.

Boundaries fall where a reader would put them: a character window is cut at the
last paragraph break, sentence end, line break or space in its second half, and
never inside a word unless a single word is longer than the window. A token
window is packed from whole words. ``overlap`` repeats the end of one chunk at
the start of the next, so a sentence that straddles a cut is whole in one of
them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, Literal

from smmf_flow.dag.ports import Signature
from smmf_flow.errors import FlowError
from smmf_flow.operators.base import ModelOperator
from smmf_flow.operators.documents import Chunk, Document, make_chunk
from smmf_flow.scheduler.resolve import Purpose

Unit = Literal["chars", "tokens"]
#: cut points in order of preference: paragraph, sentence, line, word (a line
#: break comes after sentences because hard-wrapped text breaks lines anywhere)
_BREAKS = ("\n\n", ". ", ".\n", "? ", "?\n", "! ", "!\n", "\n", " ")
_WORD = re.compile(r"\S+\s*")


def split_chars(doc: Document, size: int, overlap: int) -> list[Chunk]:
    """Cut ``doc`` into windows of at most ``size`` characters."""
    text, chunks, start = doc.text, [], _skip_space(doc.text, 0)
    while start < len(text):
        end = min(start + size, len(text))
        if end < len(text):
            end = _cut(text, start, end)
        stripped = end
        while stripped > start and text[stripped - 1].isspace():
            stripped -= 1
        chunks.append(make_chunk(doc, start, stripped, len(chunks)))
        if end >= len(text):
            break
        start = _skip_space(text, _next_start(text, start, end, overlap))
    return chunks


def _cut(text: str, start: int, end: int) -> int:
    """The best break in the second half of ``text[start:end]`` (else ``end``)."""
    half = start + (end - start) // 2
    for mark in _BREAKS:
        at = text.rfind(mark, half, end)
        if at != -1:
            return at + len(mark)
    return end


def _next_start(text: str, start: int, end: int, overlap: int) -> int:
    """Where the next window begins: ``overlap`` characters back, moved forward to
    the start of a word, and always past ``start`` so the loop advances."""
    if overlap <= 0:
        return end
    back = max(end - overlap, start + 1)
    if back < end and not text[back - 1].isspace():
        space = text.find(" ", back, end)
        back = space + 1 if space != -1 else end
    return back


def _skip_space(text: str, at: int) -> int:
    while at < len(text) and text[at].isspace():
        at += 1
    return at


def split_tokens(doc: Document, size: int, overlap: int,
                 count: Callable[[str], int]) -> list[Chunk]:
    """Pack whole words into windows of at most ``size`` tokens (``count`` counts a
    word's tokens; a word longer than the window becomes a chunk of its own)."""
    words = [(m.start(), m.end(), count(m.group().strip())) for m in _WORD.finditer(doc.text)]
    chunks: list[Chunk] = []
    first = 0
    while first < len(words):
        last, total = first, words[first][2]
        while last + 1 < len(words) and total + words[last + 1][2] <= size:
            last += 1
            total += words[last][2]
        start, end = words[first][0], words[last][1]
        end = len(doc.text[:end].rstrip())
        chunks.append(make_chunk(doc, start, end, len(chunks)))
        if last + 1 >= len(words):
            break
        nxt, back = last + 1, 0
        while overlap > 0 and nxt - 1 > first and back + words[nxt - 1][2] <= overlap:
            nxt -= 1
            back += words[nxt][2]
        first = nxt
    return chunks


class TextSplitterOperator(ModelOperator):
    """Split documents (a ``Document``, a list of them, or a plain string) into
    ``Chunk``s of ``size`` characters or tokens with ``overlap``.

    With ``unit="tokens"`` the words are counted with the tokenizer of the
    embedding ``model`` (default: the registry's ``default_embedding``).
    """

    kind = "splitter"

    def __init__(self, size: int = 800, overlap: int = 100, *, unit: Unit = "chars",
                 model: str | None = None, **options: Any) -> None:
        owner = f"splitter '{options.get('name') or ''}'"
        if unit not in ("chars", "tokens"):
            raise FlowError(f"{owner}: unit must be 'chars' or 'tokens', not {unit!r}")
        if not isinstance(size, int) or size < 1:
            raise FlowError(f"{owner}: size must be a positive whole number, got {size!r}")
        if not isinstance(overlap, int) or not 0 <= overlap < size:
            raise FlowError(f"{owner}: overlap must be at least 0 and less than size "
                            f"({size}), got {overlap!r}")
        if model is not None and unit != "tokens":
            raise FlowError(f"{owner}: `model` only counts tokens; set unit: tokens or "
                            "leave the model out")
        self.size, self.overlap, self.unit, self.model = size, overlap, unit, model
        super().__init__(**options)

    def ports(self) -> Signature:
        return Signature((Document | list[Document] | str,), False, list[Chunk])

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {"size": self.size, "overlap": self.overlap, "unit": self.unit}
        if self.model:
            out["model"] = self.model
        return out

    def model_refs(self) -> list[tuple[str | None, Purpose]]:
        return [(self.model, "embedding")] if self.unit == "tokens" else []

    def build_worker(self, scheduler: Any) -> Any:
        return scheduler.embedding_worker(self.model)

    async def counter(self, ctx: Any) -> Callable[[str], int]:
        """The token counter of this node's embedding model (loaded first: the
        tokenizer lives in the loaded model)."""
        pool = self.worker(ctx).pool
        await pool.start()
        return pool.count_tokens  # type: ignore[no-any-return]

    def split(self, docs: Iterable[Document],
              count: Callable[[str], int] | None = None) -> list[Chunk]:
        """Chunks of every document, in order (``count`` is needed for tokens)."""
        out: list[Chunk] = []
        for doc in docs:
            if self.unit == "tokens":
                if count is None:
                    raise FlowError(f"splitter '{self.name}': splitting by tokens needs a "
                                    "token counter; run the node in a flow")
                out += split_tokens(doc, self.size, self.overlap, count)
            else:
                out += split_chars(doc, self.size, self.overlap)
        return out

    async def execute(self, ctx: Any, *inputs: Any) -> list[Chunk]:
        docs = _documents(inputs[0], f"splitter '{self.name}'")
        count = await self.counter(ctx) if self.unit == "tokens" else None
        return self.split(docs, count)


def _documents(value: Any, owner: str) -> list[Document]:
    if isinstance(value, Document):
        return [value]
    if isinstance(value, str):
        return [Document(value, "input")]
    if isinstance(value, list) and all(isinstance(v, Document) for v in value):
        return value
    raise FlowError(f"{owner}: expected a Document, a list of Documents or a string, "
                    f"got {type(value).__name__}")


__all__ = ["TextSplitterOperator", "split_chars", "split_tokens"]
