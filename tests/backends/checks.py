"""Checks every chat backend must pass, written once and run against each real backend."""

from __future__ import annotations

from smmf_flow.models.backends.base import Backend
from smmf_flow.models.types import ChatChunk, ChatRequest, ChatResult

QUESTION = ChatRequest.of("What is a good name for a cat?", max_tokens=24)


async def streamed(backend: Backend, request: ChatRequest) -> tuple[str, list[ChatChunk]]:
    """The concatenated text of a stream, and its chunks."""
    chunks = [chunk async for chunk in backend.stream_chat(request)]
    return "".join(c.text for c in chunks), chunks


async def assert_sane_answer(backend: Backend, request: ChatRequest = QUESTION) -> ChatResult:
    """A greedy answer: some text, a finish reason, token counts within the budget."""
    result = await backend.chat(request)
    assert result.text.strip()
    assert result.finish_reason in {"stop", "length"}
    assert result.usage.prompt_tokens > 5
    assert 0 < result.usage.completion_tokens <= (request.max_tokens or 10**9)
    assert result.model == backend.config.name and result.instance == backend.instance_id
    return result


async def assert_stream_is_answer(backend: Backend, request: ChatRequest = QUESTION) -> None:
    """The concatenated greedy stream equals the greedy whole answer."""
    whole = await backend.chat(request)
    text, chunks = await streamed(backend, request)
    assert text == whole.text
    assert len(chunks) > 1
    assert chunks[-1].finish_reason == whole.finish_reason
    assert all(c.finish_reason is None for c in chunks[:-1])
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def word_prefix(text: str, near: int) -> str:
    """``text`` cut just before the last space at or before ``near`` (a token boundary)."""
    cut = text.rfind(" ", 0, near)
    assert cut > 0, f"no word boundary before {near} in {text!r}"
    return text[:cut]


async def assert_exact_continuation(backend: Backend, request: ChatRequest = QUESTION) -> None:
    """greedy(prompt) == prefix + greedy(prompt, assistant_prefix=prefix).

    Mid-stream fallback relies on this: a model that takes over a broken-off
    answer must carry on the very same text.
    """
    assert backend.capabilities.prefix == "exact"
    whole = (await backend.chat(request)).text
    for near in (12, len(whole) - 5):  # early and late in the answer
        prefix = word_prefix(whole, near)
        rest = await backend.chat(request.model_copy(update={"assistant_prefix": prefix}))
        # the continuation may run past the original's token budget; compare the overlap
        assert (prefix + rest.text)[: len(whole)] == whole, (prefix, rest.text)
