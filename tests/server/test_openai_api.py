"""The OpenAI-compatible API, through the clients people use: the official
``openai`` SDK (sync and async) and LangChain's ``ChatOpenAI``."""

from __future__ import annotations

import json
import math
from array import array

import openai
import pytest
from langchain_openai import ChatOpenAI

from .conftest import KEY, LiveServer

HELLO = [{"role": "user", "content": "Say hello."}]


@pytest.fixture
def client(live: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=live.v1, api_key=KEY, max_retries=0)


@pytest.fixture
def aclient(live: LiveServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=live.v1, api_key=KEY, max_retries=0)


def test_models_lists_models_and_groups(client: openai.OpenAI) -> None:
    cards = {m.id: m for m in client.models.list()}
    assert {"smollm2", "minilm", "tight", "chat", "fragile"} <= set(cards)
    assert cards["smollm2"].model_extra["kind"] == "llm"
    assert cards["minilm"].model_extra["kind"] == "embedding"
    assert cards["chat"].model_extra["provider"] == "group/fallback"
    assert client.models.retrieve("smollm2").id == "smollm2"


def test_chat(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="smollm2", messages=HELLO, max_tokens=6, temperature=0
    )
    assert reply.object == "chat.completion"
    assert reply.model == "smollm2"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage.completion_tokens <= 6
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_stream_with_usage(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(
        model="smollm2", messages=HELLO, max_tokens=6, temperature=0
    )
    chunks = list(
        client.chat.completions.create(
            model="smollm2",
            messages=HELLO,
            max_tokens=6,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content  # greedy: the same answer either way
    finish = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finish[-1] in ("stop", "length") and not any(finish[:-1])
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_json_schema_response_parses(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"mood": {"enum": ["happy", "sad"]}, "sure": {"type": "boolean"}},
        "required": ["mood", "sure"],
        "additionalProperties": False,
    }
    reply = client.chat.completions.create(
        model="smollm2",
        max_tokens=24,
        temperature=0,
        messages=[{"role": "user", "content": "I won the lottery! How do I feel?"}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "mood", "schema": schema, "strict": True},
        },
    )
    value = json.loads(reply.choices[0].message.content)
    assert value["mood"] in ("happy", "sad") and isinstance(value["sure"], bool)


def test_group_name_gets_the_fallback_chain_mid_stream(client: openai.OpenAI) -> None:
    """``dying`` breaks after 3 chunks; ``smollm2`` continues the same answer."""
    chunks = list(
        client.chat.completions.create(
            model="chat", messages=HELLO, max_tokens=24, temperature=0, stream=True
        )
    )
    served = [c.model for c in chunks if c.choices and c.choices[0].delta.content]
    assert served[:3] == ["dying"] * 3 and served[-1] == "smollm2"
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_completions(client: openai.OpenAI) -> None:
    reply = client.completions.create(
        model="smollm2", prompt=["Hi.", "Bye."], max_tokens=4, temperature=0
    )
    assert reply.object == "text_completion"
    assert [c.index for c in reply.choices] == [0, 1]
    assert all(c.text for c in reply.choices)
    streamed = list(
        client.completions.create(
            model="smollm2", prompt="Hi.", max_tokens=4, temperature=0, stream=True
        )
    )
    assert "".join(c.choices[0].text for c in streamed) == reply.choices[0].text


def test_embeddings(client: openai.OpenAI) -> None:
    one = client.embeddings.create(model="minilm", input="a cat sat on the mat")
    assert len(one.data) == 1 and len(one.data[0].embedding) == 384
    many = client.embeddings.create(
        model="minilm", input=["a cat sat on the mat", "stocks"], encoding_format="float"
    )
    assert [d.index for d in many.data] == [0, 1]
    assert many.usage.prompt_tokens > 0
    # the SDK's default (base64) and explicit floats carry the same vector
    assert all(
        math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6)
        for a, b in zip(one.data[0].embedding, many.data[0].embedding, strict=True)
    )
    # floats are written in float32's shortest form: the very float32 values of base64
    alone = client.embeddings.create(
        model="minilm", input="a cat sat on the mat", encoding_format="float"
    )
    assert array("f", alone.data[0].embedding) == array("f", one.data[0].embedding)


@pytest.mark.anyio
async def test_async_client(aclient: openai.AsyncOpenAI) -> None:
    async with aclient:
        reply = await aclient.chat.completions.create(
            model="smollm2", messages=HELLO, max_tokens=4, temperature=0
        )
        assert reply.choices[0].message.content
        stream = await aclient.chat.completions.create(
            model="smollm2", messages=HELLO, max_tokens=4, temperature=0, stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text == reply.choices[0].message.content
        vectors = await aclient.embeddings.create(model="minilm", input=["x", "y", "z"])
        assert len(vectors.data) == 3
        assert {"smollm2", "minilm"} <= {m.id async for m in aclient.models.list()}


def test_langchain_chat_openai(live: LiveServer) -> None:
    llm = ChatOpenAI(
        base_url=live.v1, api_key=KEY, model="smollm2", max_tokens=4, temperature=0, max_retries=0
    )
    answer = llm.invoke("Say hello.")
    assert answer.content
    streamed = "".join(chunk.content for chunk in llm.stream("Say hello."))
    assert streamed == answer.content
