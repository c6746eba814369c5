"""Bad input and overload, each answered in OpenAI's error shape with its status:
malformed bodies, unknown models, keys, a full queue, a client that leaves
mid-stream, a backend that fails mid-stream, an upstream that answers with an
error. The last section runs the app in process on the fake backend and a
loopback upstream (no model involved)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx
import openai
import pytest
from draining import drain_sync
from models.fakes import PROVIDER, FakeBackend
from starlette.testclient import TestClient

from smmf_flow.models.backends import register_backend
from smmf_flow.models.registry import ModelRegistry
from smmf_flow.server import create_app

from .conftest import KEY, LiveServer, wait_until

HELLO = [{"role": "user", "content": "Say hello."}]
LONG = [{"role": "user", "content": "Write a very long story about a dragon."}]  # no early stop
CHAT = "/v1/chat/completions"


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error  # type: ignore[no-any-return]


def data_lines(response: httpx.Response) -> list[str]:
    return [line[6:] for line in response.iter_lines() if line.startswith("data: ")]


# --- malformed bodies ------------------------------------------------------------------


def test_body_that_is_not_json_is_400(http: httpx.Client) -> None:
    error = error_of(
        http.post(
            CHAT, content=b'{"model": "smollm2",', headers={"Content-Type": "application/json"}
        ),
        400,
    )
    assert error["code"] == "invalid_json"
    assert error["message"].startswith("the request body is not valid JSON")


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        ({"model": "smollm2", "messages": []}, "messages", "at least 1 item"),
        (
            {"model": "smollm2", "messages": [{"role": "robot", "content": "x"}]},
            "messages.0.role",
            "'system', 'developer', 'user', 'assistant' or 'tool'",
        ),
        (
            {"model": "smollm2", "messages": HELLO, "temperature": 3},
            "temperature",
            "less than or equal to 2",
        ),
        ({"model": "smollm2", "messages": HELLO, "n": 2}, "n", "only n = 1 is supported"),
        ({"messages": HELLO}, "model", "Field required"),
        (
            {"model": "smollm2", "messages": HELLO, "tools": [{"type": "function"}]},
            "tools",
            "tool calling is not supported",
        ),
    ],
)
def test_invalid_field_is_422_naming_it(
    http: httpx.Client, body: dict[str, Any], param: str, message: str
) -> None:
    error = error_of(http.post(CHAT, json=body), 422)
    assert error["param"] == param
    assert message in error["message"]


def test_image_parts_are_refused(http: httpx.Client) -> None:
    body = {
        "model": "smollm2",
        "messages": [
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}],
            }
        ],
    }
    error = error_of(http.post(CHAT, json=body), 422)
    assert error["param"] == "messages.0.content"


def test_embedding_token_ids_are_refused(http: httpx.Client) -> None:
    error = error_of(http.post("/v1/embeddings", json={"model": "minilm", "input": [[1, 2]]}), 422)
    assert "token-id inputs are not supported" in error["message"]


# --- models ------------------------------------------------------------------------------


def test_unknown_model_is_404_with_known_names(http: httpx.Client) -> None:
    error = error_of(http.post(CHAT, json={"model": "smollm3", "messages": HELLO}), 404)
    assert error["code"] == "model_not_found"
    assert "unknown model 'smollm3'; did you mean 'smollm2'" in error["message"]
    assert "known models: chat, dead, dying, fragile, minilm, smollm2, tight" in error["message"]
    assert error_of(http.get("/v1/models/nope"), 404)["code"] == "model_not_found"


def test_wrong_kind_of_model_is_400(http: httpx.Client) -> None:
    error = error_of(http.post(CHAT, json={"model": "minilm", "messages": HELLO}), 400)
    assert error["code"] == "model_kind_mismatch"
    error = error_of(http.post("/v1/embeddings", json={"model": "smollm2", "input": "x"}), 400)
    assert "cannot be used for embeddings" in error["message"]


def test_unknown_endpoint_is_404_in_the_same_shape(http: httpx.Client) -> None:
    assert error_of(http.get("/v1/nothing-here"), 404)["code"] == "not_found"


# --- keys ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {KEY}"}]
)
@pytest.mark.parametrize("path", ["/v1/models", "/metrics", "/v1/flows"])
def test_missing_or_wrong_key_is_401(live: LiveServer, headers: dict[str, str], path: str) -> None:
    error = error_of(httpx.get(live.url + path, headers=headers), 401)
    assert error["code"] == "invalid_api_key"


def test_key_in_x_api_key_header_and_open_probes(live: LiveServer) -> None:
    assert httpx.get(f"{live.v1}/models", headers={"X-API-Key": KEY}).status_code == 200
    assert httpx.get(f"{live.url}/healthz").status_code == 200
    assert httpx.get(f"{live.url}/readyz").status_code == 200


def test_sdk_sees_authentication_error(live: LiveServer) -> None:
    client = openai.OpenAI(base_url=live.v1, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError, match="the API key is not valid"):
        client.models.list()


# --- overload and disconnects ----------------------------------------------------------------


def _stream_body(model: str, max_tokens: int, messages: Any = HELLO) -> dict[str, Any]:
    return {
        "model": model,
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
    }


def test_full_pool_queue_is_429_with_retry_after(
    live: LiveServer, http: httpx.Client, auth: dict[str, str]
) -> None:
    """``tight`` has one slot and no queue: while a stream holds the slot, the next
    caller is refused at once, streaming or not."""
    pool = live.registry.pool("tight")
    with (
        httpx.Client(base_url=live.url, headers=auth, timeout=120) as holder,
        holder.stream("POST", CHAT, json=_stream_body("tight", 400, LONG)) as held,
    ):
        assert held.status_code == 200
        lines = held.iter_lines()  # kept: a dropped iterator closes the connection
        next(lines)  # the first chunk came: the slot is taken
        for body in (
            {"model": "tight", "messages": HELLO, "max_tokens": 2},
            _stream_body("tight", 2),
        ):
            refused = http.post(CHAT, json=body)
            error = error_of(refused, 429)
            assert error["code"] == "rate_limit_exceeded"
            assert "max_queue = 0" in error["message"]
            assert int(refused.headers["retry-after"]) >= 1
    assert wait_until(lambda: pool.stats().instances[0].in_flight == 0)


def test_disconnect_mid_stream_cancels_and_frees_the_slot(
    live: LiveServer, http: httpx.Client, auth: dict[str, str]
) -> None:
    pool = live.registry.pool("tight")
    done_before = pool.stats().instances[0].done
    with (
        httpx.Client(base_url=live.url, headers=auth, timeout=120) as leaving,
        leaving.stream("POST", CHAT, json=_stream_body("tight", 400, LONG)) as response,
    ):
        lines = response.iter_lines()
        next(lines)
        assert pool.stats().instances[0].in_flight == 1
    # leaving the block closed the connection after one chunk of 400 tokens
    assert wait_until(lambda: pool.stats().instances[0].in_flight == 0, timeout=10)
    assert pool.stats().instances[0].done == done_before  # cancelled, not run to the end
    metrics = http.get("/metrics").text
    assert 'smmf_streams_total{outcome="disconnected"}' in metrics
    # the slot is really free: the next caller gets it instead of a 429
    again = http.post(CHAT, json={"model": "tight", "messages": HELLO, "max_tokens": 2})
    assert again.status_code == 200, again.text


def test_backend_failure_mid_stream_ends_with_an_error_event(http: httpx.Client) -> None:
    with http.stream("POST", CHAT, json=_stream_body("dying", 24)) as response:
        assert response.status_code == 200
        lines = data_lines(response)
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(line) for line in lines[:-2]]
    assert len([c for c in chunks if c["choices"][0]["delta"].get("content")]) == 3
    error = json.loads(lines[-2])["error"]
    assert error["code"] == "upstream_unreachable"
    assert "connection reset after 3 chunks" in error["message"]


def test_failure_after_fallback_is_an_error_event_the_sdk_raises(live: LiveServer) -> None:
    """``fragile`` = [dying, dead]: dying breaks after 3 chunks, dead cannot continue."""
    client = openai.OpenAI(base_url=live.v1, api_key=KEY, max_retries=0)
    stream = client.chat.completions.create(
        model="fragile", messages=HELLO, max_tokens=24, stream=True
    )
    received: list[Any] = []
    with pytest.raises(
        openai.APIError,
        match=r"all models of 'fragile' failed: dying: .*dead: .*connection reset after 0 chunks",
    ):
        drain_sync(stream, into=received)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in received)
    assert text  # the first model's text arrived before the error


def test_failure_before_the_first_chunk_keeps_its_http_status(http: httpx.Client) -> None:
    error = error_of(http.post(CHAT, json=_stream_body("dead", 8)), 502)
    assert error["code"] == "upstream_unreachable"


# --- in process: bodies, methods, a failing upstream (no model involved) ------------------

UPSTREAM_KEY = "sk-upstream-0123456789"


class _Upstream(BaseHTTPRequestHandler):
    """An OpenAI-compatible upstream that answers every request with ``status`` and
    ``body``; ``url`` is set by the fixture."""

    status: ClassVar[int] = 200
    body: ClassVar[bytes] = b"{}"
    url: ClassVar[str] = ""

    def _answer(self) -> None:
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def bad_upstream() -> Iterator[type[_Upstream]]:
    handler = type("Upstream", (_Upstream,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    yield handler
    server.shutdown()
    server.server_close()


@pytest.fixture
def local(bad_upstream: type[_Upstream]) -> Iterator[TestClient]:
    """The app in process: ``m`` and ``e`` on the fake backend, ``up`` proxied to
    ``bad_upstream`` (no health loop: only a test checks it), and ``g`` = fallback [up, m]
    on any error."""
    register_backend(PROVIDER, FakeBackend)
    proxied = {"provider": "proxy/openai", "api_base": bad_upstream.url, "api_key": UPSTREAM_KEY}
    config = {
        "models": {
            "llms": [
                {"name": "m", "provider": PROVIDER},
                {"name": "up", **proxied, "health_interval_s": 0, "cooldown_s": 600},
            ],
            "embeddings": [{"name": "e", "provider": PROVIDER}],
            "groups": [{"name": "g", "members": ["up", "m"], "on": ["error"]}],
        }
    }
    app = create_app(ModelRegistry.from_dict(config))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert wait_until(lambda: client.get("/readyz").status_code == 200)
        yield client


def fake_calls(client: TestClient) -> int:
    pool = client.app.state.smmf.registry.pool("m")  # type: ignore[attr-defined]
    calls: int = pool.instances[0].backend.calls
    return calls


@pytest.mark.parametrize("path", [CHAT, "/v1/completions", "/v1/embeddings"])
@pytest.mark.parametrize("content", [b"", b" \n"])
def test_an_empty_body_is_400_not_a_missing_field(
    local: TestClient, path: str, content: bytes
) -> None:
    reply = local.post(path, content=content, headers={"Content-Type": "application/json"})
    error = error_of(reply, 400)
    assert error["code"] == "invalid_json"
    assert error["message"] == "the request body is empty; send a JSON object"


@pytest.mark.parametrize(
    "message",
    [
        {"role": "user"},
        {"role": "user", "content": None},
        {"role": "system", "content": None},
        # tool calls are not taken (see `tools`), so nothing stands in for content
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "type": "function"}]},
    ],
)
def test_a_message_without_content_is_422_naming_it(
    local: TestClient, message: dict[str, Any]
) -> None:
    body = {"model": "m", "messages": [message]}
    error = error_of(local.post(CHAT, json=body), 422)
    assert error["param"] == "messages.0.content"
    assert error["message"].startswith("'messages.0.content': ")
    assert fake_calls(local) == 0  # the model never saw an empty prompt


@pytest.mark.parametrize(
    ("path", "body", "param", "message"),
    [
        ("/v1/completions", {"prompt": 5}, "prompt", "give a string or a list of strings"),
        ("/v1/completions", {"prompt": ["a", 5]}, "prompt.1", "Input should be a valid string"),
        (CHAT, {"messages": HELLO, "stop": 5}, "stop", "give a string or a list of strings"),
        (
            CHAT,
            {"messages": [{"role": "user", "content": 5}]},
            "messages.0.content",
            "give a string or a list of content parts",
        ),
        (
            CHAT,
            {"messages": [{"role": "user", "content": [{"type": 1}]}]},
            "messages.0.content.0.type",
            "Input should be a valid string",
        ),
        ("/v1/embeddings", {"input": 5}, "input", "give a string or a list of strings"),
    ],
)
def test_a_value_that_fits_no_member_of_a_union_is_named_plainly(
    local: TestClient, path: str, body: dict[str, Any], param: str, message: str
) -> None:
    """Pydantic locates such errors under each member's name (``prompt.str``,
    ``prompt.list[str].1``); a client gets the field and what it takes."""
    model = "e" if path == "/v1/embeddings" else "m"
    error = error_of(local.post(path, json={"model": model, **body}), 422)
    assert error["param"] == param
    assert error["message"] == f"'{param}': {message}"


def test_a_wrong_method_is_405_saying_which_one_to_use(local: TestClient) -> None:
    reply = local.get(CHAT)
    error = error_of(reply, 405)
    assert error["code"] == "method_not_allowed"
    assert error["message"] == "method GET is not allowed on /v1/chat/completions; use POST"
    assert reply.headers["allow"] == "POST"
    error = error_of(local.post("/v1/models", json={}), 405)
    assert error["message"].startswith("method POST is not allowed on /v1/models; use GET")


@pytest.mark.parametrize(
    ("status", "said", "words"),
    [
        (
            401,
            "the upstream refused its credentials (HTTP 401); the operator should check `api_key`",
            f"Incorrect API key provided: {UPSTREAM_KEY}",
        ),
        (500, "the upstream failed (HTTP 500)", "boom at /srv/upstream/secret.py"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_an_upstream_error_is_a_502_that_leaves_out_what_the_upstream_said(
    local: TestClient,
    bad_upstream: type[_Upstream],
    caplog: pytest.LogCaptureFixture,
    status: int,
    said: str,
    words: str,
    stream: bool,
) -> None:
    bad_upstream.status = status
    bad_upstream.body = json.dumps({"error": {"message": words}}).encode()
    body = {"model": "up", "messages": HELLO, "stream": stream}
    with caplog.at_level(logging.INFO, logger="smmf_flow.server"):
        reply = local.post(CHAT, json=body)
    error = error_of(reply, 502)
    assert (error["type"], error["code"]) == ("upstream_error", "upstream_error")
    assert error["message"] == f"model 'up': {said}"
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(words in line and f"HTTP {status}" in line for line in logged), logged


def test_an_upstream_error_page_stays_out_of_the_503s(
    local: TestClient, bad_upstream: type[_Upstream]
) -> None:
    """The health check gets a proxy's HTML page: the instance is out, and its last
    error (the page, on one line) is not what a caller of the model reads."""
    bad_upstream.status, bad_upstream.body = 502, b"<html>\n<h1>502 Bad Gateway</h1>\n</html>\n"
    pool = local.app.state.smmf.registry.pool("up")  # type: ignore[attr-defined]
    local.portal.call(pool.check_health)  # type: ignore[union-attr]
    assert pool.instances[0].last_error == (
        "model 'up': the upstream failed (HTTP 502; upstream said: "
        '"<html> <h1>502 Bad Gateway</h1> </html>")'
    )
    error = error_of(local.post(CHAT, json={"model": "up", "messages": HELLO}), 503)
    assert error["message"].startswith(
        "model 'up': no healthy instance, all 1 are cooling down "
        "(last error: model 'up': the upstream failed (HTTP 502)); next re-probe in "
    )


def test_a_fallback_group_still_moves_past_a_failing_upstream(
    local: TestClient, bad_upstream: type[_Upstream]
) -> None:
    bad_upstream.status, bad_upstream.body = 500, b'{"error": {"message": "boom"}}'
    reply = local.post(CHAT, json={"model": "g", "messages": HELLO})
    assert reply.status_code == 200, reply.text
    assert reply.json()["model"] == "m"


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_no_numbers(local: TestClient, number: str) -> None:
    """JSON has neither, though the parser reads both: a 422 naming the field."""
    body = '{"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": '
    reply = local.post(
        CHAT, content=body + number + "}", headers={"Content-Type": "application/json"}
    )
    error = error_of(reply, 422)
    assert error["param"] == "temperature"
    assert "finite number" in error["message"]
    assert fake_calls(local) == 0
