"""smmf-flow as the OpenAI-compatible backend of another smmf-flow server:
client → front server → ``proxy/openai`` backend → the shared test server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from draining import drain_sync

from smmf_flow.models.registry import ModelRegistry
from smmf_flow.server import ServerLimits

from .conftest import KEY, LiveServer, start_server

HELLO = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def front(live: LiveServer) -> Iterator[LiveServer]:
    def remote(name: str, model: str) -> dict[str, str]:
        return {
            "name": name,
            "provider": "proxy/openai",
            "api_base": live.v1,
            "api_key": KEY,
            "remote_model": model,
            "failure_threshold": 1000,
        }

    registry = ModelRegistry.from_dict(
        {
            "models": {
                "llms": [
                    remote("upstream", "smollm2"),
                    remote("upstream-dying", "dying"),
                    {**remote("upstream-continues", "smollm2"), "continue_final_message": True},
                ],
                "embeddings": [remote("upstream-embed", "minilm")],
            }
        }
    )
    server = start_server(registry, limits=ServerLimits(default_max_tokens=5))
    yield server
    server.stop()


@pytest.fixture
def via_front(front: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=front.v1, api_key="unused", max_retries=0)


@pytest.fixture
def direct(live: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=live.v1, api_key=KEY, max_retries=0)


def test_chat_through_the_proxy_matches_direct(
    via_front: openai.OpenAI, direct: openai.OpenAI
) -> None:
    params = {"messages": HELLO, "max_tokens": 6, "temperature": 0}
    proxied = via_front.chat.completions.create(model="upstream", **params)
    straight = direct.chat.completions.create(model="smollm2", **params)
    assert proxied.model == "upstream"
    assert proxied.choices[0].message.content == straight.choices[0].message.content
    assert proxied.usage.completion_tokens == straight.usage.completion_tokens


def test_stream_through_the_proxy(via_front: openai.OpenAI, direct: openai.OpenAI) -> None:
    params = {"messages": HELLO, "max_tokens": 6, "temperature": 0}
    chunks = list(
        via_front.chat.completions.create(
            model="upstream", stream=True, stream_options={"include_usage": True}, **params
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert (
        text == direct.chat.completions.create(model="smollm2", **params).choices[0].message.content
    )
    assert chunks[-1].usage.completion_tokens > 0


def test_embeddings_through_the_proxy(via_front: openai.OpenAI, direct: openai.OpenAI) -> None:
    proxied = via_front.embeddings.create(model="upstream-embed", input=["a", "b"])
    straight = direct.embeddings.create(model="minilm", input=["a", "b"])
    assert [len(d.embedding) for d in proxied.data] == [384, 384]
    assert proxied.data[1].embedding == pytest.approx(straight.data[1].embedding, abs=1e-6)


def test_upstream_failure_mid_stream_reaches_the_client_as_an_error_event(
    via_front: openai.OpenAI,
) -> None:
    stream = via_front.chat.completions.create(
        model="upstream-dying", messages=HELLO, max_tokens=24, stream=True
    )
    received: list[Any] = []
    with pytest.raises(
        openai.APIError, match=r"^model 'upstream-dying': the server reported an error mid-stream$"
    ) as info:  # what the upstream said goes to the front's log, not to its client
        drain_sync(stream, into=received)
    assert "connection reset" not in str(info.value)
    assert "".join(c.delta.content or "" for chunk in received for c in chunk.choices)


def test_a_partial_answer_is_continued_exactly_through_the_proxy(
    via_front: openai.OpenAI, direct: openai.OpenAI
) -> None:
    """``continue_final_message``: the front's proxy backend asks the upstream server to
    carry on the assistant's partial answer as the same turn, which mid-stream fallback
    relies on; greedy, the seam is invisible."""
    params = {"max_tokens": 16, "temperature": 0}
    whole = (
        direct.chat.completions.create(model="smollm2", messages=HELLO, **params)
        .choices[0]
        .message.content
    )
    prefix = whole[: whole.index(" ", 6)]  # cut at a word boundary
    partial = [*HELLO, {"role": "assistant", "content": prefix}]
    rest = (
        via_front.chat.completions.create(
            model="upstream-continues",
            messages=partial,
            extra_body={"continue_final_message": True},
            **params,
        )
        .choices[0]
        .message.content
    )
    assert (prefix + rest).startswith(whole)


def test_continue_final_message_needs_a_final_assistant_message(direct: openai.OpenAI) -> None:
    with pytest.raises(openai.UnprocessableEntityError, match="continue_final_message"):
        direct.chat.completions.create(
            model="smollm2",
            messages=HELLO,
            max_tokens=4,
            extra_body={"continue_final_message": True},
        )


def test_the_front_bounds_max_tokens_before_proxying(via_front: openai.OpenAI) -> None:
    """A proxied model's window bounds max_tokens at the front (2048, the config's
    context_length), and a request without one forwards the front's default."""
    with pytest.raises(openai.UnprocessableEntityError, match=r"context_length = 2048"):
        via_front.chat.completions.create(model="upstream", messages=HELLO, max_tokens=5000)
    story = [{"role": "user", "content": "Write a very long story about a dragon."}]
    reply = via_front.chat.completions.create(model="upstream", messages=story, temperature=0)
    assert 1 <= reply.usage.completion_tokens <= 5  # default_max_tokens, not the upstream's
