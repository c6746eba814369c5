"""Turning generated tokens into streamed text that never has to be taken back.

Two things make naive streaming wrong: a token can end in the middle of a UTF-8
character, and the text streamed so far can be the start of a stop string that the
next token completes. ``IncrementalDecoder`` holds back half characters (the
prefix/read offset method of Hugging Face's text-generation-inference: constant
work per token); ``StopScanner`` holds back a possible stop-string start and cuts
the text at a complete one. The concatenated stream then equals the whole answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence


class IncrementalDecoder:
    """Text deltas from a growing list of token ids.

    ``context`` holds the last few prompt tokens: decoding the first new token
    after them keeps its leading space, which SentencePiece-style decoders drop at
    the start of a sequence (a continuation would lose it).
    """

    def __init__(self, decode: Callable[[list[int]], str], context: Sequence[int] = ()) -> None:
        self._decode = decode
        self.tokens: list[int] = list(context)
        self._prefix = 0  # tokens before this are already turned into text
        self._read = len(self.tokens)  # tokens before this have been emitted

    def add(self, token: int) -> str:
        """Append one token; return the new text it completes (maybe empty)."""
        self.tokens.append(token)
        before = self._decode(self.tokens[self._prefix : self._read])
        after = self._decode(self.tokens[self._prefix :])
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self._prefix, self._read = self._read, len(self.tokens)
            return after[len(before) :]
        return ""


class StopScanner:
    """Cuts streamed text at the first stop string, holding back what may start one."""

    def __init__(self, stops: Sequence[str] | None) -> None:
        self.stops = [s for s in (stops or ()) if s]
        self._pending = ""
        self.stopped = False

    def feed(self, delta: str) -> str:
        """Add generated text; return the part that is safe to emit now."""
        if self.stopped:
            return ""
        if not self.stops:
            return delta
        text = self._pending + delta
        cut = min((i for i in (text.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped, self._pending = True, ""
            return text[:cut]
        hold = max(
            (
                k
                for s in self.stops
                for k in range(min(len(s) - 1, len(text)), 0, -1)
                if text.endswith(s[:k])
            ),
            default=0,
        )
        self._pending = text[len(text) - hold :] if hold else ""
        return text[: len(text) - hold]

    def flush(self) -> str:
        """The held-back text once generation ended without a stop string."""
        rest, self._pending = self._pending, ""
        return "" if self.stopped else rest


__all__ = ["IncrementalDecoder", "StopScanner"]
