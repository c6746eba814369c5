"""MLX (``mlx[cpu]`` here, Metal on Apple silicon) on the exported SmolLM2 folder."""

from __future__ import annotations

import pytest

from smmf_flow.errors import BackendError
from smmf_flow.models.backends.base import Backend
from smmf_flow.models.types import ChatRequest, ResponseFormat

from .checks import assert_exact_continuation, assert_sane_answer, assert_stream_is_answer

pytestmark = pytest.mark.anyio

SHORT = ChatRequest.of("What is a good name for a cat?", max_tokens=24)


async def test_generates_from_the_exported_folder(mlx: Backend) -> None:
    await assert_sane_answer(mlx, SHORT)


async def test_stream_concatenates_to_the_whole_answer(mlx: Backend) -> None:
    await assert_stream_is_answer(mlx, SHORT)


async def test_assistant_prefix_continues_the_exact_text(mlx: Backend) -> None:
    await assert_exact_continuation(mlx, SHORT)


async def test_stop_strings_and_refused_json(mlx: Backend) -> None:
    result = await mlx.chat(
        ChatRequest.of("Count from 1 to 10, one number per line.", max_tokens=30, stop=["4"])
    )
    assert result.finish_reason == "stop" and "4" not in result.text
    with pytest.raises(BackendError, match="cannot constrain output to JSON"):
        await mlx.chat(
            SHORT.model_copy(update={"response_format": ResponseFormat(type="json_object")})
        )
