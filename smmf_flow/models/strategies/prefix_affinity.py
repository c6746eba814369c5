"""Prefix affinity: send a chat to the instance most likely to hold its prompt prefix.

An engine that keeps its KV cache between calls (llama.cpp with ``prefix_cache``,
vLLM's prefix caching) answers the next turn of a conversation much sooner when the
turn lands where the previous one ran: only the new tokens are evaluated. Round robin
and least busy scatter turns and make each instance evaluate the whole history again.

The request's key (``PrefixKey``), computed once per call by the pool
(``request_key``), is a chain of block hashes over the message list: each message's
text in blocks of ``block_chars`` characters, its first block hashed with its role,
and each hash covering everything before it. So ``blocks[i]`` stands for the whole
prompt up to block ``i``, and two requests share their first ``n`` hashes exactly
when their messages agree up to there (Python's hashes: in-process only). Each
instance keeps the hashes of the prompts it was given in an LRU of at most
``prefixes_per_instance`` entries: bounded memory, however long the traffic.

The choice: among the candidates (healthy, with a free slot), the one whose LRU holds
the longest prefix of the key; ties, and a key that matches nowhere (a new
conversation), go to the least busy (``LeastBusy``'s order). A match of the leading
system messages alone does not count: many conversations share one system prompt,
and letting it attract them would pile every new conversation onto the instance
that saw it first instead of spreading them. An instance that holds the prefix but
is unhealthy is not a candidate. One that holds the prefix but is saturated (every
slot taken) is worth waiting for when it holds much more of the prompt than any free
instance (``WAIT_BLOCKS`` more blocks: evaluating them again costs more than waiting
for a call to end) and fewer than ``patience`` calls already wait for it: the call
queues for that instance while later calls pass it for the others (the pool's
``_Waiter.prefers``). Otherwise it falls back to the least busy free instance, which
then learns the prefix too. Calls without a request (embeddings) take the least busy
instance.

The strategy cannot see an engine evict its cache (llama.cpp keeps the conversations
it saved within ``prompt_cache_mb``, least recently used out first), so a remembered
prefix is a likelihood, never a promise.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from smmf_flow.models.config import AffinitySettings
from smmf_flow.models.strategies.base import C, PrefixKey
from smmf_flow.models.types import ChatRequest

DEFAULTS = AffinitySettings()
#: how many more blocks a busy instance must hold than any free one to be waited for
WAIT_BLOCKS = 4


def prefix_key(request: ChatRequest, block_chars: int = DEFAULTS.block_chars) -> PrefixKey:
    """Chained hashes of ``request``'s messages in blocks (``blocks[i]`` covers blocks
    0..i), and how many of them the leading system messages take."""
    hashes: list[int] = []
    current, shared = 0, -1
    for message in request.messages:
        if shared < 0 and message.role != "system":
            shared = len(hashes)
        text = message.content
        for start in range(0, max(len(text), 1), block_chars):
            block = text[start : start + block_chars]
            current = hash((current, message.role if start == 0 else "", block))
            hashes.append(current)
    return PrefixKey(tuple(hashes), len(hashes) if shared < 0 else shared)


class PrefixAffinity:
    """Longest cached prefix among the candidates, else least busy (see module doc)."""

    def __init__(
        self,
        block_chars: int = DEFAULTS.block_chars,
        prefixes_per_instance: int = DEFAULTS.prefixes_per_instance,
        patience: int = DEFAULTS.patience,
    ) -> None:
        self.block_chars = block_chars
        self.prefixes_per_instance = prefixes_per_instance
        self.patience = patience
        self._seen: dict[int, OrderedDict[int, None]] = {}

    def request_key(self, request: ChatRequest) -> PrefixKey:
        return prefix_key(request, self.block_chars)

    def choose(self, candidates: Sequence[C]) -> C:
        return min(candidates, key=_busyness)

    def choose_for(
        self, candidates: Sequence[C], key: PrefixKey, busy: Sequence[C] = ()
    ) -> C | None:
        """The pick for a call whose prompt has ``key``: a free candidate, or one of
        the saturated ``busy`` ones to wait for; None when there is neither. The
        chosen instance learns the key."""

        def affinity(c: C) -> int:
            matched = self.matched(c.index, key)
            return matched if matched > key.shared else 0

        chosen = min(candidates, key=lambda c: (-affinity(c), *_busyness(c)), default=None)
        if busy and self.patience:
            warm = max(busy, key=affinity)
            held = affinity(warm)
            free_held = affinity(chosen) if chosen is not None else 0
            if held and held - free_held >= WAIT_BLOCKS and warm.queued < self.patience:
                chosen = warm
        if chosen is not None:
            self._remember(chosen.index, key.blocks)
        return chosen

    def matched(self, index: int, key: PrefixKey) -> int:
        """How many leading blocks of ``key`` instance ``index`` was given recently."""
        seen = self._seen.get(index)
        if not seen:
            return 0
        blocks = key.blocks
        for depth in range(len(blocks), 0, -1):  # a deep hash implies its whole prefix
            if blocks[depth - 1] in seen:
                return depth
        return 0

    def remembered(self, index: int) -> int:
        """How many block hashes instance ``index`` holds (never above the cap)."""
        return len(self._seen.get(index, ()))

    def _remember(self, index: int, blocks: tuple[int, ...]) -> None:
        seen = self._seen.setdefault(index, OrderedDict())
        for block in blocks:
            seen[block] = None
            seen.move_to_end(block)
        while len(seen) > self.prefixes_per_instance:
            seen.popitem(last=False)


def _busyness(c: C) -> tuple[int, int, int]:
    return (c.in_flight, c.assigned, c.index)
