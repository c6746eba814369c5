"""Control tokens that a message spells out stay text.

A backend tokenizes the rendered prompt with special-token parsing on: the template's
own markers (``<|im_start|>``, ``<|im_end|>``...) must become control tokens. A
message that contains such a marker as text became a control token too, so a caller
could close its own turn and open a system one (``<|im_end|>\\n<|im_start|>system\\n
...``) and overrule the instructions a served flow gives the model. So each marker
of the model's own vocabulary is broken, in message text, by a WORD JOINER (U+2060,
invisible) after its first character: the model reads the marker as plain text,
which is what the caller wrote.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

WORD_JOINER = "\u2060"


class SpecialTokens:
    """The texts of one model's control tokens, and how to keep them text."""

    def __init__(self, texts: Iterable[str]) -> None:
        # longest first, so a marker that contains another is broken whole; a marker
        # of one character cannot be broken (none of the supported models has one)
        ordered = sorted({t for t in texts if len(t) > 1}, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def escape(self, text: str) -> str:
        """``text`` with every control-token text in it broken after its first character."""
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(lambda m: m[0][0] + WORD_JOINER + m[0][1:], text)


#: for a model whose markers are not known (no escaping)
NO_SPECIALS = SpecialTokens(())


def hf_special_tokens(tokenizer: Any) -> SpecialTokens:
    """The control tokens of a transformers tokenizer (hf, vLLM and MLX use one): its
    special tokens and the added tokens marked special, all of which it matches in
    text as it encodes."""
    added = getattr(tokenizer, "added_tokens_decoder", None) or {}
    return SpecialTokens(
        [
            *(getattr(tokenizer, "all_special_tokens", None) or ()),
            *(str(token) for token in added.values() if getattr(token, "special", False)),
        ]
    )
