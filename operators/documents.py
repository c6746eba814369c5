"""The values a RAG flow passes between its nodes, and reading them from disk.

``Document`` is a whole text with where it came from; ``Chunk`` is a slice of
one, with its character offsets, so a cited chunk can be traced back to the
exact place in the source file. A chunk's id is a hash of its source, offsets
and text: indexing the same documents twice produces the same ids, so a store
that upserts by id never holds a chunk twice, and a changed passage gets a new
id instead of silently keeping an old vector.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smmf_flow.errors import FlowError

#: file endings read when a folder is indexed without an explicit pattern
TEXT_SUFFIXES = (".md", ".txt", ".rst")

#: metadata values a vector store can filter on
Scalar = str | int | float | bool


@dataclass(frozen=True, slots=True)
class Document:
    """One text and its origin; ``metadata`` travels to every chunk cut from it."""

    text: str
    source: str
    metadata: dict[str, Scalar] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Chunk:
    """``text == document.text[start:end]``; ``index`` counts chunks per document."""

    id: str
    text: str
    source: str
    start: int
    end: int
    index: int = 0
    metadata: dict[str, Scalar] = field(default_factory=dict)

    def store_metadata(self) -> dict[str, Scalar]:
        """What the store keeps beside the vector: the document's metadata plus the
        chunk's place in it (these names win over document metadata)."""
        return {**self.metadata, "source": self.source, "start": self.start,
                "end": self.end, "index": self.index}


def chunk_id(source: str, start: int, end: int, text: str) -> str:
    """The stable id of a chunk: the same slice of the same source always gets it."""
    digest = hashlib.sha256(f"{source}\x00{start}\x00{end}\x00{text}".encode())
    return digest.hexdigest()[:32]


def make_chunk(doc: Document, start: int, end: int, index: int) -> Chunk:
    text = doc.text[start:end]
    return Chunk(chunk_id(doc.source, start, end, text), text, doc.source, start, end,
                 index, dict(doc.metadata))


def load_documents(paths: str | Path | Sequence[str | Path], *,
                   pattern: str | None = None, root: str | Path | None = None,
                   ) -> list[Document]:
    """Read text files: each path is a file or a folder (searched recursively for
    ``pattern``, default the ``TEXT_SUFFIXES``). A document's ``source`` is its
    path relative to ``root`` (default: the folder given, or the file's folder),
    so ids do not change when the same tree is indexed from another directory."""
    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not items:
        raise FlowError("load_documents: no paths given; pass a file or a folder")
    docs: list[Document] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            base = Path(root) if root is not None else path
            docs += [_read(f, base) for f in _files_in(path, pattern)]
        elif path.is_file():
            docs.append(_read(path, Path(root) if root is not None else path.parent))
        else:
            raise FlowError(f"load_documents: '{path}' is neither a file nor a folder "
                            f"(working directory: {Path.cwd()}); check the path")
    return docs


def _files_in(folder: Path, pattern: str | None) -> list[Path]:
    if pattern:
        files = sorted(p for p in folder.rglob(pattern) if p.is_file())
    else:
        files = sorted(p for p in folder.rglob("*")
                       if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
    if not files:
        wanted = pattern or " or ".join(f"*{s}" for s in TEXT_SUFFIXES)
        raise FlowError(f"load_documents: folder '{folder}' has no files matching {wanted}; "
                        "pass another folder or a `pattern`")
    return files


def _read(path: Path, base: Path) -> Document:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise FlowError(f"load_documents: '{path}' is not UTF-8 text ({exc.reason} at byte "
                        f"{exc.start}); convert it or leave it out with `pattern`") from None
    except OSError as exc:
        raise FlowError(f"load_documents: cannot read '{path}': {exc.strerror}") from None
    try:
        source = path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        source = path.as_posix()
    return Document(text, source, {"file": path.name})


def as_documents(value: Any, owner: str, pattern: str | None = None) -> list[Document]:
    """A node input as documents: a ``Document``, a list of them, or a path (or
    list of paths) to load with ``pattern``. Anything else is an error naming
    the node."""
    if isinstance(value, Document):
        return [value]
    if isinstance(value, (str, Path)):
        return load_documents(value, pattern=pattern)
    if isinstance(value, Iterable) and not isinstance(value, (bytes, dict)):
        items = list(value)
        if all(isinstance(v, Document) for v in items):
            return items
        if items and all(isinstance(v, (str, Path)) for v in items):
            return load_documents(items, pattern=pattern)
    raise FlowError(f"{owner}: expected documents (a Document, a list of them, or file/folder "
                    f"paths), got {type(value).__name__}")


__all__ = ["Chunk", "Document", "TEXT_SUFFIXES", "as_documents", "chunk_id", "load_documents",
           "make_chunk"]
