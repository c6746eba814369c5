"""Saved KV-cache sequences: a llama.cpp instance keeps several conversations warm.

llama-cpp-python's context holds one sequence, so ``prefix_cache`` reuses only the
previous call's prompt: an instance that serves two conversations in turn evaluates
each whole history again on every turn, and prefix-affinity routing cannot help once
an instance has more conversations than one. This keeps, in RAM, the sequences a call
is about to overwrite (``llama_state_seq_get_data``: only the KV cells of the
sequence, about 23 KB a token for SmolLM2-135M, not the whole context), at most
``capacity_bytes`` of them with the least recently used dropped first, and before a
call restores the one sharing the longest prefix with its prompt when that beats what
the context holds. A save and a restore are memory copies (milliseconds); evaluating a
history again is the whole prompt's forward pass.

Everything here runs on the instance's engine thread, which owns the ``Llama``.
"""

from __future__ import annotations

import ctypes
from collections import OrderedDict
from typing import Any

import numpy as np
import numpy.typing as npt

#: below this many tokens, saving or restoring is not worth a copy
MIN_TOKENS = 64

Tokens = npt.NDArray[np.intc]


def shared_prefix(a: Tokens, b: Tokens) -> int:
    """How many leading tokens ``a`` and ``b`` have in common."""
    n = min(len(a), len(b))
    differ = np.flatnonzero(a[:n] != b[:n])
    return int(differ[0]) if len(differ) else n


class SavedSequences:
    """Sequence states of one ``Llama`` (sequence 0), keyed by their tokens."""

    def __init__(self, lib: Any, llm: Any, capacity_bytes: int) -> None:
        self._lib, self._llm = lib, llm
        self.capacity_bytes = capacity_bytes
        self._states: OrderedDict[bytes, tuple[Tokens, bytearray]] = OrderedDict()
        self.held_bytes = 0
        #: counters (the tests read them)
        self.saves = self.restores = 0

    def __len__(self) -> int:
        return len(self._states)

    def prepare(self, prompt: list[int]) -> None:
        """Before evaluating ``prompt``: save the context's sequence if the call is
        about to discard part of it, and restore a saved one that shares more of
        ``prompt`` than the context does."""
        llm = self._llm
        live: Tokens = llm.input_ids[: llm.n_tokens].copy()
        wanted = np.asarray(prompt, dtype=np.intc)
        live_match = shared_prefix(live, wanted)
        best, best_match = None, live_match
        for key, (tokens, _) in self._states.items():
            matched = shared_prefix(tokens, wanted)
            if matched > best_match:
                best, best_match = key, matched
        wanted_state = None
        if best is not None and best_match >= live_match + MIN_TOKENS:
            wanted_state = self._take(best)  # before saving, which may evict it
        if live_match < len(live) and len(live) >= MIN_TOKENS:
            self._save(live)
        if wanted_state is not None:
            self._restore(*wanted_state)

    def _save(self, tokens: Tokens) -> None:
        lib, ctx = self._lib, self._llm.ctx
        size = int(lib.llama_state_seq_get_size(ctx, 0))
        if size > self.capacity_bytes:
            return
        data = bytearray(size)
        written = lib.llama_state_seq_get_data(ctx, _view(data), size, 0)
        if not written:
            return
        if written < size:
            data = data[:written]
        # a saved sequence that is a prefix of this one is covered by it
        for key, (older, _) in list(self._states.items()):
            if len(older) <= len(tokens) and shared_prefix(older, tokens) == len(older):
                self._drop(key)
        self._states[tokens.tobytes()] = (tokens, data)
        self.held_bytes += len(data)
        self.saves += 1
        while self.held_bytes > self.capacity_bytes:
            self._drop(next(iter(self._states)))

    def _restore(self, tokens: Tokens, data: bytearray) -> None:
        """Load a saved sequence into the context, all but its last token: the call
        then evaluates at least one token, so its first logits are its own. (It is
        live now, out of RAM; saved again when a call overwrites it.)"""
        lib, llm = self._lib, self._llm
        memory = lib.llama_get_memory(llm.ctx)
        lib.llama_memory_clear(memory, True)
        llm.n_tokens = 0
        if not lib.llama_state_seq_set_data(llm.ctx, _view(data), len(data), 0):
            lib.llama_memory_clear(memory, True)  # the call evaluates its whole prompt
            return
        keep = len(tokens) - 1
        lib.llama_memory_seq_rm(memory, 0, keep, -1)
        llm.input_ids[:keep] = tokens[:keep]
        llm.n_tokens = keep
        self.restores += 1

    def _take(self, key: bytes) -> tuple[Tokens, bytearray]:
        state = self._states[key]
        self._drop(key)
        return state

    def _drop(self, key: bytes) -> None:
        _, data = self._states.pop(key)
        self.held_bytes -= len(data)


def _view(data: bytearray) -> Any:
    return (ctypes.c_uint8 * len(data)).from_buffer(data)
