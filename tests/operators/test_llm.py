"""``LLMOperator`` (whole, or streamed with ``stream=True``) on SmolLM2
(llama.cpp), by model name; the generation parameters every generating operator
shares."""

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from smmf_flow import DAG, FlowError, Trace
from smmf_flow.errors import EdgeTypeError, InputError, UnknownParameter
from smmf_flow.models.types import ChatChunk, ChatRequest, ChatResult
from smmf_flow.operators import (
    EmbeddingOperator,
    FallbackOperator,
    LLMOperator,
    PromptOperator,
    RouterOperator,
)

pytestmark = pytest.mark.anyio


def prompt_then(op: Any, template: str = "Name a {{ thing }}.", **params: Any) -> DAG:
    with DAG("gen") as dag:
        PromptOperator(template, name="prompt", **params) >> op
    return dag


async def test_a_prompt_then_llm_flow_answers_on_the_named_model(real_registry: Any) -> None:
    dag = prompt_then(LLMOperator("smollm2", name="gen", max_tokens=6, temperature=0))
    trace = Trace()
    result = await dag.arun({"thing": "colour"}, registry=real_registry, trace=trace)
    assert isinstance(result, ChatResult) and result.text.strip()
    assert (result.model, result.instance) == ("smollm2", "smollm2#0")
    assert result.finish_reason == "length" and result.usage.completion_tokens == 6
    assert result.usage.prompt_tokens > 0
    assert trace["gen"].events == [{"event": "served", "model": "smollm2", "instance": "smollm2#0"}]
    assert trace.states() == {"prompt": "succeeded", "gen": "succeeded"}


async def test_the_stream_gives_the_same_greedy_text_chunk_by_chunk(real_registry: Any) -> None:
    whole = await prompt_then(LLMOperator("smollm2", max_tokens=12)).arun(
        {"thing": "fruit"}, registry=real_registry
    )
    trace = Trace()
    dag = prompt_then(LLMOperator("smollm2", name="gen", max_tokens=12, stream=True))
    chunks = [c async for c in dag.astream({"thing": "fruit"}, registry=real_registry, trace=trace)]
    assert all(isinstance(c, ChatChunk) and c.model == "smollm2" for c in chunks)
    assert len(chunks) > 1
    assert "".join(c.text for c in chunks) == whole.text
    assert chunks[-1].finish_reason == whole.finish_reason
    assert trace["gen"].state.value == "succeeded" and trace["gen"].chunks == len(chunks)


async def test_an_llm_that_names_no_model_uses_default_llm(real_registry: Any) -> None:
    result = await prompt_then(LLMOperator(max_tokens=2)).arun(
        {"thing": "dog"}, registry=real_registry
    )
    assert result.model == real_registry.default_llm == "smollm2"


async def test_operator_params_fill_what_the_request_left_unset(real_registry: Any) -> None:
    set_by_prompt = prompt_then(LLMOperator("smollm2", max_tokens=9), max_tokens=3)
    result = await set_by_prompt.arun({"thing": "tree"}, registry=real_registry)
    assert result.usage.completion_tokens == 3  # the request's own value wins
    set_by_llm = prompt_then(LLMOperator("smollm2", max_tokens=4))
    result = await set_by_llm.arun({"thing": "tree"}, registry=real_registry)
    assert result.usage.completion_tokens == 4


async def test_a_string_or_a_mapping_is_a_request_too(real_registry: Any) -> None:
    with DAG("direct") as dag:
        LLMOperator("smollm2", name="gen", max_tokens=3, system="Answer in one word.")
    from_text = await dag.arun("Name a planet.", registry=real_registry)
    from_dict = await dag.arun(
        {"messages": [{"role": "user", "content": "Name a planet."}]}, registry=real_registry
    )
    assert from_text.text == from_dict.text and from_text.usage.completion_tokens == 3
    with pytest.raises(
        InputError, match=r"^expected a chat request, a prompt string or a mapping, got int"
    ):
        await dag.node("gen").execute(None, 42)
    with pytest.raises(
        InputError,
        match=r"^the input is not a valid chat request: messages: "
        r"field required",
    ):
        await dag.node("gen").execute(None, {"prompt": "hi"})


async def test_a_json_schema_gives_json_that_matches_it(real_registry: Any) -> None:
    schema = {
        "type": "object",
        "properties": {"colour": {"enum": ["red", "green", "blue"]}},
        "required": ["colour"],
    }
    dag = prompt_then(LLMOperator("smollm2", max_tokens=24, json_schema=schema))
    result = await dag.arun({"thing": "colour"}, registry=real_registry)
    assert json.loads(result.text)["colour"] in ("red", "green", "blue")


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (lambda **kw: LLMOperator("smollm2", name="n", **kw), "llm"),
        (lambda **kw: LLMOperator("smollm2", name="n", stream=True, **kw), "llm"),
        (lambda **kw: RouterOperator(default="smollm2", name="n", **kw), "router"),
        (lambda **kw: FallbackOperator(["smollm2"], name="n", **kw), "fallback"),
    ],
    ids=["llm", "llm-stream", "router", "fallback"],
)
def test_every_generating_operator_refuses_an_unknown_param(make: Any, kind: str) -> None:
    with pytest.raises(
        UnknownParameter,
        match=rf"^node 'n': unknown parameter "
        rf"'max_new_tokens'; did you mean 'max_tokens'\? "
        rf"\({kind} parameters: .*max_tokens, "
        rf"temperature",
    ) as caught:
        make(max_new_tokens=5)
    assert (caught.value.node, caught.value.param) == ("n", "max_new_tokens")
    assert make(max_tokens=5, temperature=0.0).params()["max_tokens"] == 5
    with pytest.raises(
        FlowError,
        match=r"^node 'n': parameter 'temperature': input should be "
        r"less than or equal to 2, got 9",
    ) as bad:
        make(temperature=9)
    assert bad.value.param == "temperature"


def test_a_generation_result_cannot_feed_an_embedding_node() -> None:
    with (
        DAG("typed"),
        pytest.raises(
            EdgeTypeError,
            match=r"cannot connect 'gen' >> 'vec': "
            r"'gen' outputs ChatResult",
        ),
    ):
        LLMOperator("smollm2", name="gen") >> EmbeddingOperator("minilm", name="vec")


def test_a_stream_cannot_feed_a_node_that_takes_a_whole_request() -> None:
    with DAG("typed"), pytest.raises(EdgeTypeError, match="a stream cannot feed a node"):
        LLMOperator(name="s", stream=True) >> LLMOperator(name="gen")


def test_the_stream_flag_sets_the_output_port_and_execute_gives_the_input_port() -> None:
    for op in (LLMOperator("m"), RouterOperator(default="m"), FallbackOperator(["m"])):
        assert op.input_types == (ChatRequest | str | Mapping[str, Any],)
        assert op.output_type is ChatResult and not op.streams
    for op in (
        LLMOperator("m", stream=True),
        RouterOperator(default="m", stream=True),
        FallbackOperator(["m"], stream=True),
    ):
        assert op.output_type == AsyncIterator[ChatChunk] and op.streams
        assert op.params()["stream"] is True


def test_params_give_back_a_json_schema_as_written() -> None:
    """Export (flow files) writes the schema back the way a user wrote it."""
    from smmf_flow.operators import FallbackOperator, LLMOperator

    schema = {"type": "object", "properties": {"x": {"type": "integer"}}}
    assert LLMOperator("m", json_schema=schema, max_tokens=8).params() == {
        "model": "m",
        "json_schema": schema,
        "max_tokens": 8,
    }
    fallback = FallbackOperator(["a", "b"], response_format={"type": "json_object"})
    assert fallback.params()["response_format"] == {"type": "json_object"}
