"""Fingerprints: which exact weights a model name stands for.

A vector store keeps vectors made by one embedding model; a model name alone
cannot tell that the weights behind it were swapped (a new download, another
quantization), and vectors from two sets of weights do not compare. So a
backend gives a *fingerprint* (``Backend.fingerprint``), and a store records it
and refuses vectors with another.

``weights_digest`` hashes the weight files themselves: a file, or every file of
a folder (hidden files and ``*.md`` documentation left out), by relative name,
size and content. Hashing 100 MB takes a fraction of a second; the digest of
each file is remembered by path, modification time and size, so later calls
cost a ``stat`` per file. ``config_digest`` hashes configuration values, for
models whose weights cannot be read (a remote API).
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from urllib.parse import urlsplit

#: hex characters kept of a digest (64 bits: no accidental clash between two models)
DIGEST_CHARS = 16
_BLOCK = 1 << 20

_file_digests: dict[tuple[str, int, int], str] = {}
_lock = threading.Lock()


def file_digest(path: Path) -> str:
    """The SHA-256 of ``path``'s content, computed once per path, mtime and size."""
    info = path.stat()
    key = (str(path.resolve()), info.st_mtime_ns, info.st_size)
    with _lock:
        known = _file_digests.get(key)
    if known is not None:
        return known
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(_BLOCK):
            digest.update(block)
    value = digest.hexdigest()
    with _lock:
        _file_digests[key] = value
    return value


def weights_digest(path: str | Path) -> str:
    """A digest of the weight file ``path``, or of the files in the folder ``path``."""
    root = Path(path)
    if root.is_file():
        files = {root.name: root}
    else:
        files = {
            p.relative_to(root).as_posix(): p
            for p in sorted(root.rglob("*"))
            if p.is_file()
            and p.suffix.lower() != ".md"
            and not any(part.startswith(".") for part in p.relative_to(root).parts)
        }
    digest = hashlib.sha256()
    for name, file in files.items():
        digest.update(f"{name}\0{file.stat().st_size}\0{file_digest(file)}\n".encode())
    return digest.hexdigest()[:DIGEST_CHARS]


def config_digest(*values: object) -> str:
    """A digest of configuration values that identify a model."""
    text = "\0".join("" if v is None else str(v) for v in values)
    return hashlib.sha256(text.encode()).hexdigest()[:DIGEST_CHARS]


def api_host(api_base: str | None) -> str | None:
    """The host (and port) of an API's base URL, without credentials or path: the
    same model behind another path of one server is the same model."""
    if not api_base:
        return None
    parts = urlsplit(api_base)
    return f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname


__all__ = ["DIGEST_CHARS", "api_host", "config_digest", "file_digest", "weights_digest"]
