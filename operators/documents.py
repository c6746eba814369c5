"""The values a RAG flow passes between its nodes, and reading them from disk.

``Document`` is a whole text with where it came from; ``Chunk`` is a slice of
one, with its character offsets, so a cited chunk can be traced back to the
exact place in the source file.

A document has two names. ``source`` is short, for people and citations: the
file's path inside the folder that was indexed (``lighthouse.md``). ``key`` is
canonical, for the store: the file's resolved absolute path, so two files that
share a short name (``a/README.md``, ``b/README.md``) never collide, and the same
file reached through another folder, a link or the server is one document. A
chunk's id hashes the key, offsets and text: indexing the same documents twice
produces the same ids, so a store that upserts by id never holds a chunk twice,
and a changed passage gets a new id instead of silently keeping an old vector.
The store keeps a digest of the key (``source_key``), never the path itself, so
no answer shows where the files live.

Paths that arrive in a run's input are checked by the run's ``FileAccess``
(``smmf_flow/dag/files.py``) before anything is opened: under a root (an HTTP run) a
path must stay inside it, and a folder's files are checked one by one, so a
link inside the folder that leads out refuses the whole run (``InputError``)
rather than being skipped: an index silently missing files is worse than a
clear error, and nothing has been written yet when it is raised.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smmf_flow.dag import FileAccess
from smmf_flow.errors import InputError

#: file endings read when a folder is indexed without an explicit pattern
TEXT_SUFFIXES = (".md", ".txt", ".rst")
#: the largest file read as one document
MAX_FILE_BYTES = 50_000_000

#: metadata values a vector store can filter on
Scalar = str | int | float | bool


@dataclass(frozen=True, slots=True)
class Document:
    """One text and its origin; ``metadata`` travels to every chunk cut from it.
    ``key`` is the canonical origin (see the module doc; default: ``source``)."""

    text: str
    source: str
    metadata: dict[str, Scalar] = field(default_factory=dict)
    key: str = ""


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
    key: str = ""

    @property
    def source_key(self) -> str:
        """The digest of the document's key under which the store prunes it."""
        return source_key(self.key or self.source)

    def store_metadata(self) -> dict[str, Scalar]:
        """What the store keeps beside the vector: the document's metadata plus the
        chunk's place in it (these names win over document metadata)."""
        return {
            **self.metadata,
            "source": self.source,
            "source_key": self.source_key,
            "start": self.start,
            "end": self.end,
            "index": self.index,
        }


def source_key(key: str) -> str:
    """The digest of a document key that a store keeps (a path never leaves the host)."""
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def chunk_id(key: str, start: int, end: int, text: str) -> str:
    """The stable id of a chunk: the same slice of the same document always gets it."""
    digest = hashlib.sha256(f"{key}\x00{start}\x00{end}\x00{text}".encode())
    return digest.hexdigest()[:32]


def make_chunk(doc: Document, start: int, end: int, index: int) -> Chunk:
    text, key = doc.text[start:end], doc.key or doc.source
    return Chunk(
        chunk_id(key, start, end, text),
        text,
        doc.source,
        start,
        end,
        index,
        dict(doc.metadata),
        key,
    )


def load_documents(
    paths: str | Path | Sequence[str | Path],
    *,
    pattern: str | None = None,
    root: str | Path | None = None,
    files: FileAccess | None = None,
) -> list[Document]:
    """Read text files: each path is a file or a folder (searched recursively for
    ``pattern``, default the ``TEXT_SUFFIXES``). A document's ``source`` is its
    path relative to ``root`` (default: the folder given, or the file's folder);
    its ``key`` is its resolved absolute path. ``files`` says which paths may be
    read (default: any); a refusal is an ``InputError`` naming the path as given."""
    access = files or FileAccess.unrestricted()
    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not items:
        raise InputError("load_documents: no paths given; pass a file or a folder")
    docs: list[Document] = []
    for item in items:
        given = os.fspath(item)
        path = access.resolve(item)
        if path.is_dir():
            base = Path(root) if root is not None else path
            for found in _files_in(path, pattern, given):
                shown = f"{given.rstrip('/')}/{found.relative_to(path).as_posix()}"
                access.check_file(found, shown)
                docs.append(_read(found, base, shown))
        elif path.is_file():
            docs.append(_read(path, Path(root) if root is not None else path.parent, given))
        else:
            where = "" if access.root is not None else f" (working directory: {Path.cwd()})"
            raise InputError(
                f"load_documents: '{given}' is neither a file nor a folder{where}; check the path"
            )
    return docs


def _files_in(folder: Path, pattern: str | None, given: str) -> list[Path]:
    if pattern:
        files = sorted(p for p in folder.rglob(pattern) if p.is_file())
    else:
        files = sorted(
            p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES
        )
    if not files:
        wanted = pattern or " or ".join(f"*{s}" for s in TEXT_SUFFIXES)
        raise InputError(
            f"load_documents: folder '{given}' has no files matching {wanted}; "
            "pass another folder or a `pattern`"
        )
    return files


def _read(path: Path, base: Path, shown: str) -> Document:
    """The document in ``path`` (``shown``: the path as the caller wrote it)."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InputError(
                f"load_documents: '{shown}' is {size:,} bytes; a document may "
                f"have at most {MAX_FILE_BYTES:,}: split it"
            )
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"load_documents: '{shown}' is not UTF-8 text ({exc.reason} at byte "
            f"{exc.start}); convert it or leave it out with `pattern`"
        ) from None
    except OSError as exc:
        raise InputError(f"load_documents: cannot read '{shown}': {exc.strerror}") from None
    real = path.resolve()
    return Document(text, _display(path, real, base), {"file": path.name}, str(real))


def _display(path: Path, real: Path, base: Path) -> str:
    """The short name of ``path``: inside ``base`` as found, else as resolved, else
    the file name (never an absolute path)."""
    for inner, outer in ((path, base), (real, base.resolve())):
        try:
            return inner.relative_to(outer).as_posix()
        except ValueError:
            continue
    return path.name


def as_documents(
    value: Any, pattern: str | None = None, files: FileAccess | None = None
) -> list[Document]:
    """A node input as documents: a ``Document``, a list of them, or a path (or
    list of paths) to load with ``pattern``, as ``files`` allows. Anything else is
    an ``InputError``."""
    if isinstance(value, Document):
        return [value]
    if isinstance(value, (str, Path)):
        return load_documents(value, pattern=pattern, files=files)
    if isinstance(value, Iterable) and not isinstance(value, (bytes, dict)):
        items = list(value)
        if all(isinstance(v, Document) for v in items):
            return items
        if items and all(isinstance(v, (str, Path)) for v in items):
            return load_documents(items, pattern=pattern, files=files)
    raise InputError(
        f"expected documents (a Document, a list of them, or file/folder paths), "
        f"got {type(value).__name__}"
    )


__all__ = [
    "MAX_FILE_BYTES",
    "TEXT_SUFFIXES",
    "Chunk",
    "Document",
    "as_documents",
    "chunk_id",
    "load_documents",
    "make_chunk",
    "source_key",
]
