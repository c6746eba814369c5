"""``FileAccess``: which files a run may read when its *input* names a path.

A path written in a flow file or a Python program is the author's (trusted
configuration). A path that arrives in a run's input may come from anyone who
can call the flow, an HTTP tenant for one, so it is checked here before any
operator opens it:

* ``FileAccess.unrestricted()`` (the default for Python and the CLI, whose user
  may read the machine anyway): a relative path means the working directory's.
* ``FileAccess.inside(root)`` (what ``smmf-flow serve`` gives every run): a
  relative path is relative to ``root``; after ``..`` and symbolic links are
  resolved the file must still be inside ``root``; only regular files and
  folders are read (``/proc``, devices, sockets and pipes are refused), and a
  folder's files are checked one by one, so a link inside it cannot lead out.

A refusal is an ``InputError`` that names the path as the caller gave it and
never the server's folders.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from smmf_flow.errors import InputError

#: places whose "files" are kernel or device interfaces, never documents
SPECIAL_ROOTS = ("/proc", "/sys", "/dev", "/run")


class FileAccess:
    """The files one run may read through paths in its input."""

    __slots__ = ("root",)

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        #: None: anywhere; else the resolved folder every path must stay inside
        self.root = Path(root).resolve() if root is not None else None

    @classmethod
    def unrestricted(cls) -> FileAccess:
        return cls(None)

    @classmethod
    def inside(cls, root: str | os.PathLike[str]) -> FileAccess:
        return cls(root)

    def resolve(self, path: str | os.PathLike[str]) -> Path:
        """The real path ``path`` names; an ``InputError`` if the run may not read it."""
        given = os.fspath(path)
        if "\x00" in given:
            raise InputError(f"path {given!r:.80} contains a NUL byte")
        if self.root is None:
            return Path(given)
        candidate = Path(given)
        if not candidate.is_absolute():
            candidate = self.root / candidate
        try:
            real = candidate.resolve(strict=True)
        except (OSError, RuntimeError):
            raise InputError(
                f"path '{given:.200}' does not exist in the folder this flow may read"
            ) from None
        self._check(real, given)
        return real

    def check_file(self, real: Path, given: str) -> None:
        """Refuse ``real`` (a file found inside an allowed folder) if a link led it out."""
        if self.root is None:
            return
        self._check(real.resolve(), given)

    def _check(self, real: Path, given: str) -> None:
        assert self.root is not None
        if not real.is_relative_to(self.root):
            raise InputError(
                f"path '{given:.200}' is outside the folder this flow may read; "
                "give a path inside it"
            )
        if str(real).startswith(SPECIAL_ROOTS) and not str(self.root).startswith(SPECIAL_ROOTS):
            raise InputError(f"path '{given:.200}' is not a regular file or folder")
        try:
            mode = real.stat().st_mode
        except OSError:
            raise InputError(f"path '{given:.200}' cannot be read") from None
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise InputError(f"path '{given:.200}' is not a regular file or folder")

    def __repr__(self) -> str:
        return "FileAccess(unrestricted)" if self.root is None else f"FileAccess({self.root})"


__all__ = ["SPECIAL_ROOTS", "FileAccess"]
