"""transformers on the SmolLM2 folder exported from the GGUF."""

from __future__ import annotations

import anyio
import pytest

from smmf_flow.errors import BackendError, ContextWindowExceeded
from smmf_flow.models.backends.base import Backend
from smmf_flow.models.types import ChatRequest, ResponseFormat

from .checks import assert_exact_continuation, assert_sane_answer, assert_stream_is_answer

pytestmark = pytest.mark.anyio


async def test_generates_from_the_exported_folder(hf: Backend) -> None:
    await assert_sane_answer(hf)


async def test_stream_concatenates_to_the_whole_answer(hf: Backend) -> None:
    await assert_stream_is_answer(hf)


async def test_assistant_prefix_continues_the_exact_text(hf: Backend) -> None:
    await assert_exact_continuation(hf)


async def test_concurrent_requests_share_a_batch_and_match_single_answers(hf: Backend) -> None:
    requests = [
        ChatRequest.of(f"Say something about the number {i}.", max_tokens=6 + 4 * i)
        for i in range(3)
    ]
    together: list[str] = [""] * len(requests)
    lengths: list[int] = [0] * len(requests)

    async def ask(i: int) -> None:
        result = await hf.chat(requests[i])
        together[i], lengths[i] = result.text, result.usage.completion_tokens

    async with anyio.create_task_group() as tg:
        for i in range(len(requests)):
            tg.start_soon(ask, i)
    alone = [(await hf.chat(r)).text for r in requests]
    assert together == alone
    assert all(n <= r.max_tokens for n, r in zip(lengths, requests, strict=True) if r.max_tokens)


async def test_stop_string_ends_the_answer_before_it(hf: Backend) -> None:
    result = await hf.chat(
        ChatRequest.of("Count from 1 to 10, one number per line.", max_tokens=24, stop=["4"])
    )
    assert result.finish_reason == "stop"
    assert "4" not in result.text and "3" in result.text


async def test_structured_output_and_oversized_requests_are_refused(hf: Backend) -> None:
    with pytest.raises(BackendError, match="cannot constrain output to JSON"):
        await hf.chat(ChatRequest.of("hi", response_format=ResponseFormat(type="json_object")))
    with pytest.raises(ContextWindowExceeded, match="smollm2-hf"):
        await hf.chat(ChatRequest.of("hi", max_tokens=5000))
