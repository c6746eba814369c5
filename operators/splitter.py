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

from pydantic import Field, ValidationInfo, field_validator

from smmf_flow.dag import RunContext
from smmf_flow.errors import FlowError, InputError
from smmf_flow.operators.base import EmbeddingModelOperator, ModelParam
from smmf_flow.operators.documents import Chunk, Document, make_chunk
from smmf_flow.operators.params import OperatorParams, configure, custom

Unit = Literal["chars", "tokens"]
#: cut points in order of preference: paragraph, sentence, line, word (a line
#: break comes after sentences because hard-wrapped text breaks lines anywhere)
_BREAKS = ("\n\n", ". ", ".\n", "? ", "?\n", "! ", "!\n", "\n", " ")
_WORD = re.compile(r"\S+\s*")


def split_chars(doc: Document, size: int, overlap: int) -> list[Chunk]:
    """Cut ``doc`` into windows of at most ``size`` characters."""
    text, start = doc.text, _skip_space(doc.text, 0)
    chunks: list[Chunk] = []
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


def split_tokens(
    doc: Document, size: int, overlap: int, count: Callable[[str], int]
) -> list[Chunk]:
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


class ChunkingParams(OperatorParams):
    """How documents are cut: windows of ``size`` characters or tokens (``unit``),
    each repeating the last ``overlap`` of the one before."""

    size: int = Field(default=800, ge=1)
    overlap: int = Field(default=100, ge=0)
    unit: Unit = "chars"

    @field_validator("overlap")
    @classmethod
    def _overlap_fits(cls, overlap: int, info: ValidationInfo) -> int:
        size = info.data.get("size")
        if size is not None and overlap >= size:
            raise custom("overlap", f"overlap ({overlap}) must be less than size ({size})")
        return overlap


class SplitterParams(ChunkingParams):
    """``splitter``: chunking, and the embedding ``model`` whose tokenizer counts
    tokens (with ``unit: tokens`` only)."""

    model: str | None = None

    @field_validator("model")
    @classmethod
    def _model_counts_tokens(cls, model: str | None, info: ValidationInfo) -> str | None:
        if model is not None and info.data.get("unit") != "tokens":
            raise custom(
                "model", "`model` only counts tokens; set unit: tokens or leave the model out"
            )
        return model


class TextSplitterOperator(EmbeddingModelOperator):
    """Split documents (a ``Document``, a list of them, or a plain string) into
    ``Chunk``s of ``size`` characters or tokens with ``overlap``.

    With ``unit="tokens"`` the words are counted with the tokenizer of the
    embedding ``model`` (default: the registry's ``default_embedding``).
    """

    kind = "splitter"
    params_model = SplitterParams
    config: SplitterParams

    def __init__(self, size: int = 800, overlap: int = 100, **params: Any) -> None:
        self.config, options = configure(
            SplitterParams, self.kind, {"size": size, "overlap": overlap, **params}
        )
        self.size, self.overlap = self.config.size, self.config.overlap
        self.unit, self.model = self.config.unit, self.config.model
        super().__init__(**options)

    def model_params(self) -> list[ModelParam]:
        return super().model_params() if self.unit == "tokens" else []

    async def counter(self, ctx: RunContext) -> Callable[[str], int]:
        """The token counter of this node's embedding model (loaded first: the
        tokenizer lives in the loaded model)."""
        pool = self.worker(ctx).pool
        await pool.start()
        count: Callable[[str], int] = pool.count_tokens
        return count

    def split(
        self, docs: Iterable[Document], count: Callable[[str], int] | None = None
    ) -> list[Chunk]:
        """Chunks of every document, in order (``count`` is needed for tokens)."""
        out: list[Chunk] = []
        for doc in docs:
            if self.unit == "tokens":
                if count is None:
                    raise FlowError(
                        "splitting by tokens needs a token counter; run the node in a flow",
                        node=self.name,
                    )
                out += split_tokens(doc, self.size, self.overlap, count)
            else:
                out += split_chars(doc, self.size, self.overlap)
        return out

    async def execute(
        self, ctx: RunContext, documents: Document | list[Document] | str
    ) -> list[Chunk]:
        docs = _documents(documents)
        count = await self.counter(ctx) if self.unit == "tokens" else None
        return self.split(docs, count)


def _documents(value: Any) -> list[Document]:
    if isinstance(value, Document):
        return [value]
    if isinstance(value, str):
        return [Document(value, "input")]
    if isinstance(value, list) and all(isinstance(v, Document) for v in value):
        return value
    raise InputError(
        f"expected a Document, a list of Documents or a string, got {type(value).__name__}"
    )


__all__ = [
    "ChunkingParams",
    "SplitterParams",
    "TextSplitterOperator",
    "split_chars",
    "split_tokens",
]
