"""Shared backend helpers: missing engines, context limits, JSON answers."""

from __future__ import annotations

import pytest

from smmf_flow.errors import ContextWindowExceeded, InvalidOutput, ModelLoadError
from smmf_flow.models.backends.support import check_context, check_json, require
from smmf_flow.models.config import ModelConfig
from smmf_flow.models.types import ChatRequest, ChatResult, ResponseFormat

CONFIG = ModelConfig(name="m", provider="vllm", path="/nowhere")


def test_a_missing_engine_names_the_extra_to_install() -> None:
    with pytest.raises(
        ModelLoadError,
        match=r"model 'm' needs the Python package "
        r"'no_such_engine'.*pip install 'smmf-flow\[vllm\]'",
    ):
        require("no_such_engine.core", "vllm", "m")


def test_context_budget() -> None:
    assert check_context(CONFIG, 100, 50, 2048) == 50
    assert check_context(CONFIG, 100, None, 2048) == 1948
    with pytest.raises(ContextWindowExceeded, match="takes 2000 tokens and 100 more"):
        check_context(CONFIG, 2000, 100, 2048)
    with pytest.raises(ContextWindowExceeded, match="raise `context_length`"):
        check_context(CONFIG, 2048, None, 2048)


def test_json_answers_must_parse() -> None:
    asked = ChatRequest.of("x", response_format=ResponseFormat(type="json_object"))
    assert check_json(ChatResult('{"a": 1}'), asked, CONFIG).text == '{"a": 1}'
    assert check_json(ChatResult("free text"), ChatRequest.of("x"), CONFIG).text == "free text"
    with pytest.raises(InvalidOutput, match=r"not JSON \(the answer hit max_tokens; raise it\)"):
        check_json(ChatResult('{"a": ', finish_reason="length"), asked, CONFIG)
