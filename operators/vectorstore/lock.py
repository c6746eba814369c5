"""``WriteLock``: one writer at a time for a store in a folder, across processes.

An indexing run writes in steps (upsert the new chunks, delete the stale ones of
each document, count); two runs interleaving those steps can leave a document
with no chunks at all (each deletes what the other just wrote), and a CLI run and
a server indexing into one folder are two processes. So the write phase of an
indexing run holds an exclusive ``fcntl.flock`` on a lock file inside the store's
folder. Readers do not take it: a query sees the store before or after a write.

``flock`` belongs to an open file, so two runs in one process exclude each other
too, and the lock goes with the process if it dies. Waiting polls the lock
(every ``POLL_S``) so that an async run can be cancelled while it waits; a wait
longer than ``timeout`` seconds is a ``ResourceBusy`` naming the process that holds
the lock. POSIX only (Linux, macOS), like the stores it guards.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import IO

import anyio

from smmf_flow.errors import ResourceBusy, RunError

#: the lock file's name inside the store folder
LOCK_NAME = ".smmf-write.lock"
#: the lock held while a store's files are opened (and created, the first time)
OPEN_LOCK_NAME = ".smmf-open.lock"
#: seconds between two tries while another writer holds the lock
POLL_S = 0.05


class WriteLock:
    """The exclusive lock ``name`` of the store in ``folder``; ``what`` names the store
    and ``busy`` what its holder does, in errors."""

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        timeout: float,
        what: str,
        name: str = LOCK_NAME,
        busy: str = "being written by another indexing run",
    ) -> None:
        self.path = Path(folder) / name
        self.timeout, self.what, self.busy = timeout, what, busy
        self._file: IO[str] | None = None

    def try_acquire(self) -> bool:
        """Take the lock if no one holds it; True if taken."""
        if self._file is not None:
            raise RunError(f"{self.what}: this write lock is already held")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        file = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.close()
            return False
        except BaseException:
            file.close()
            raise
        file.seek(0)
        file.truncate()
        file.write(f"{os.getpid()}\n")
        file.flush()
        self._file = file
        return True

    def release(self) -> None:
        """Let the next writer in; safe to call when not held."""
        file, self._file = self._file, None
        if file is not None:
            fcntl.flock(file.fileno(), fcntl.LOCK_UN)
            file.close()

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lock for the ``with`` block, waiting (blocking) for it first."""
        deadline = time.monotonic() + self.timeout
        while not self.try_acquire():
            self._check(deadline)
            time.sleep(POLL_S)
        try:
            yield
        finally:
            self.release()

    @asynccontextmanager
    async def held_async(self) -> AsyncIterator[None]:
        """``held`` for async code: the wait can be cancelled."""
        deadline = time.monotonic() + self.timeout
        while not self.try_acquire():
            self._check(deadline)
            await anyio.sleep(POLL_S)
        try:
            yield
        finally:
            self.release()

    def _check(self, deadline: float) -> None:
        if time.monotonic() < deadline:
            return
        try:
            holder = self.path.read_text(encoding="utf-8").strip() or "unknown"
        except OSError:
            holder = "unknown"
        raise ResourceBusy(
            f"{self.what} is {self.busy} (process {holder}) and was not "
            f"free after {self.timeout:g}s; run again when that has finished",
            retry_after=max(1.0, self.timeout),
        )


__all__ = ["LOCK_NAME", "OPEN_LOCK_NAME", "POLL_S", "WriteLock"]
