"""The OpenAI-compatible proxy against real servers on loopback.

``llama_server`` is ``python -m llama_cpp.server`` serving SmolLM2; ``refusing``
is a tiny HTTP server that answers every request with one fixed error status,
to see each status become its typed error; ``ScriptedUpstream`` streams a few
chunks and then ends as a test asks (cut off, dropped, finished).
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from reliability.upstreams import Ending, ScriptedUpstream

from smmf_flow.errors import (
    MAX_QUOTED_CHARS,
    BackendConnectionError,
    BackendError,
    BackendTimeout,
    ContextWindowExceeded,
    ModelLoadError,
    RateLimited,
    RequestRefused,
    UpstreamError,
)
from smmf_flow.models.backends.base import Backend
from smmf_flow.models.backends.openai_proxy import retry_after
from smmf_flow.models.types import ChatRequest, ResponseFormat

from .checks import QUESTION, streamed
from .conftest import config, free_port, start
from .test_llama_cpp import cosine

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="session")
async def proxy(llama_server: str) -> AsyncIterator[Backend]:
    backend = await start(
        config(
            "remote",
            "proxy/openai",
            None,
            api_base=llama_server,
            api_key="unused",
            remote_model="smollm2",
            timeout_s=120,
        )
    )
    yield backend
    await backend.aclose()


async def test_chat_through_a_real_server(proxy: Backend) -> None:
    await proxy.health()
    result = await proxy.chat(QUESTION)
    assert result.text.strip() and result.finish_reason in {"stop", "length"}
    assert result.usage.prompt_tokens > 5 and 0 < result.usage.completion_tokens <= 24
    assert proxy.capabilities.prefix == "approximate"


async def test_stream_through_a_real_server(proxy: Backend) -> None:
    whole = await proxy.chat(QUESTION)
    text, chunks = await streamed(proxy, QUESTION)
    assert text == whole.text
    assert len(chunks) > 2 and chunks[-1].finish_reason == whole.finish_reason


async def test_embeddings_through_a_real_server(proxy: Backend) -> None:
    cat, kitten, rates = await proxy.embed(
        [
            "A cat sits on the mat.",
            "A kitten is sitting on a rug.",
            "Interest rates rose by half a percent.",
        ]
    )
    assert len(cat) == 576
    assert cosine(cat, kitten) > cosine(cat, rates)


async def test_response_format_is_passed_through(proxy: Backend) -> None:
    request = ChatRequest.of(
        "Give a JSON object with a key 'colour'.",
        max_tokens=60,
        response_format=ResponseFormat(type="json_object"),
    )
    assert isinstance(json.loads((await proxy.chat(request)).text), dict)


async def test_an_oversized_prompt_is_a_context_window_error(proxy: Backend) -> None:
    with pytest.raises(
        ContextWindowExceeded,
        match=r"^model 'remote': the prompt does not "
        r"fit the context window",
    ) as info:
        await proxy.chat(ChatRequest.of("word " * 3000, max_tokens=10))
    assert "127.0.0.1" not in str(info.value)  # messages reach HTTP callers: no api_base


async def test_connection_refused_is_a_connection_error() -> None:
    port = free_port()
    backend = await start(
        config("nowhere", "proxy/openai", None, api_base=f"http://127.0.0.1:{port}/v1")
    )
    try:
        with pytest.raises(
            BackendConnectionError,
            match=r"^model 'nowhere': cannot connect "
            r"\(ConnectError: .*\); check "
            r"`api_base`",
        ) as info:
            await backend.chat(QUESTION)
        with pytest.raises(BackendConnectionError):
            await streamed(backend, QUESTION)
        with pytest.raises(BackendConnectionError):
            await backend.embed(["hello"])
        with pytest.raises(BackendConnectionError):
            await backend.health()
        assert "127.0.0.1" not in str(info.value) and str(port) not in str(info.value)
    finally:
        await backend.aclose()


@pytest.mark.parametrize("missing", ["httptools", "orjson", "aiohttp"])
async def test_a_missing_http_package_names_itself_and_the_extra(
    monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    """httptools and orjson are always needed; aiohttp only where the environment
    names a proxy for ``api_base`` (``proxied_http.py``)."""
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setitem(sys.modules, missing, None)  # None in sys.modules: ImportError
    cfg = config("remote", "proxy/openai", None, api_base="http://127.0.0.1:9/v1")
    if missing == "aiohttp":
        await (await start(cfg)).aclose()  # no proxy: loads without it
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    with pytest.raises(
        ModelLoadError,
        match=rf"^model 'remote' needs the Python package '{missing}', .*"
        r"pip install 'smmf-flow\[openai\]'",
    ):
        await start(cfg)


async def test_a_proxy_named_after_load_without_aiohttp_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """load() asks for aiohttp only where a proxy is named then; one named later is
    found at the first call, which says what is missing instead of an ImportError."""
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setitem(sys.modules, "aiohttp", None)
    backend = await start(config("remote", "proxy/openai", None, api_base="http://127.0.0.1:9/v1"))
    try:
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
        with pytest.raises(
            BackendError,
            match=r"^model 'remote': the environment names a proxy for `api_base`, .*"
            r"'aiohttp'.*pip install 'smmf-flow\[openai\]'",
        ):
            await backend.chat(QUESTION)
    finally:
        await backend.aclose()


# --- streams that end too early ------------------------------------------------------------


async def scripted_stream(upstream: ScriptedUpstream) -> tuple[str, list[Any]]:
    backend = await start(config("cut", "proxy/openai", None, api_base=upstream.url, timeout_s=5))
    try:
        return await streamed(backend, QUESTION)
    finally:
        await backend.aclose()


async def test_a_stream_that_ends_with_a_finish_reason_is_whole() -> None:
    async with ScriptedUpstream(["The ", "sea"], "finish") as upstream:
        text, chunks = await scripted_stream(upstream)
    assert text == "The sea" and chunks[-1].finish_reason == "stop"


async def test_a_stream_closed_without_a_finish_reason_is_a_broken_connection() -> None:
    async with ScriptedUpstream(["The ", "sea"], "eof") as upstream:
        with pytest.raises(
            BackendConnectionError,
            match=r"^model 'cut': the server ended the "
            r"stream after 2 chunk\(s\) without "
            r"a finish reason",
        ) as info:
            await scripted_stream(upstream)
    assert info.value.instance == "cut-0"


@pytest.mark.parametrize("ending", ["drop", "reset"])
async def test_a_stream_whose_connection_drops_is_a_broken_connection(ending: Ending) -> None:
    async with ScriptedUpstream(["The ", "sea"], ending) as upstream:
        with pytest.raises(
            BackendConnectionError,
            match=r"^model 'cut': the connection "
            r"broke \(",
        ) as info:
            await scripted_stream(upstream)
    assert "127.0.0.1" not in str(info.value)


async def test_a_stream_that_stalls_past_timeout_s_is_a_timeout() -> None:
    async with ScriptedUpstream(["The "], "stall") as upstream:
        backend = await start(
            config("cut", "proxy/openai", None, api_base=upstream.url, timeout_s=0.5)
        )
        try:
            with pytest.raises(BackendTimeout, match=r"^model 'cut': the request timed out"):
                await streamed(backend, QUESTION)
        finally:
            await backend.aclose()


async def test_error_messages_never_name_the_server(refusing: type[_Refuse]) -> None:
    url = refusing.url  # type: ignore[attr-defined]
    refusing.status, refusing.message = 404, f"no model at {url}/chat/completions"
    backend = await start(config("picky", "proxy/openai", None, api_base=url))
    try:
        with pytest.raises(
            UpstreamError,
            match=r"^model 'picky': the upstream has no such model or endpoint \(HTTP 404; "
            r'upstream said: ".*no model at the server/chat/completions"\); the operator should',
        ) as info:
            await backend.chat(QUESTION)
        assert url.split("//")[1].split("/")[0] not in str(info.value)
    finally:
        await backend.aclose()


class _Refuse(BaseHTTPRequestHandler):
    status: int = 500
    headers_out: ClassVar[dict[str, str]] = {}
    message = "refused"
    page: bytes | None = None  # sent as it is instead of OpenAI's error JSON

    def _answer(self) -> None:
        body = self.page or json.dumps({"error": {"message": self.message, "type": "t"}}).encode()
        self.send_response(self.status)
        for name, value in {"Content-Type": "application/json", **self.headers_out}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def refusing() -> Iterator[type[_Refuse]]:
    """A loopback server answering with ``handler.status``; yields the handler to set it."""
    handler = type("Handler", (_Refuse,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}/v1"  # type: ignore[attr-defined]
    yield handler
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("status", "headers", "message", "error", "pattern"),
    [
        (429, {"Retry-After": "7"}, "slow down", RateLimited, "rate limited"),
        (
            400,
            {},
            "This model's maximum context length is 2048 tokens",
            ContextWindowExceeded,
            "does not fit the context window",
        ),
        (
            422,
            {},
            "temperature must be a number",
            RequestRefused,
            r"the upstream refused the request \(HTTP 422\): .*temperature",
        ),
        (
            401,
            {},
            "bad key",
            UpstreamError,
            r'refused its credentials \(HTTP 401; upstream said: "bad key"\); the operator '
            r"should check `api_key`",
        ),
        (404, {}, "no such model", UpstreamError, "should check `remote_model` and `api_base`"),
        (503, {}, "overloaded", UpstreamError, r'failed \(HTTP 503; upstream said: "overloaded"\)'),
        (418, {}, "teapot", UpstreamError, r"answered with an error \(HTTP 418; "),
    ],
)
async def test_http_errors_become_typed_errors(
    refusing: type[_Refuse],
    status: int,
    headers: dict[str, str],
    message: str,
    error: type[Exception],
    pattern: str,
) -> None:
    refusing.status, refusing.headers_out, refusing.message = status, headers, message
    backend = await start(config("picky", "proxy/openai", None, api_base=refusing.url))  # type: ignore[attr-defined]
    try:
        with pytest.raises(error, match=pattern) as caught:
            await backend.chat(QUESTION)
        assert type(caught.value) is error
        if status == 429:
            assert caught.value.retry_after == 7.0  # type: ignore[attr-defined]
        if isinstance(caught.value, UpstreamError):
            assert caught.value.status == status
        with pytest.raises(error):
            await streamed(backend, QUESTION)
    finally:
        await backend.aclose()


async def test_an_error_page_is_quoted_on_one_bounded_line(refusing: type[_Refuse]) -> None:
    """A proxy's HTML error page, to the health probe and to a call: the pool keeps the
    message as the instance's last error, and every 503 of the model quoted it."""
    rows = "".join(f"<tr><td>row {i}</td></tr>\n" for i in range(500))
    refusing.status, refusing.page = 502, f"<html>\n<h1>502 Bad Gateway</h1>\n{rows}".encode()
    backend = await start(config("paged", "proxy/openai", None, api_base=refusing.url))  # type: ignore[attr-defined]
    try:
        for call in (backend.health, lambda: backend.chat(QUESTION)):
            with pytest.raises(UpstreamError) as caught:
                await call()
            text = str(caught.value)
            assert text.startswith(
                "model 'paged': the upstream failed (HTTP 502; upstream said: "
                '"<html> <h1>502 Bad Gateway</h1> <tr><td>row 0</td></tr>'
            )
            assert "\n" not in text and len(text) < MAX_QUOTED_CHARS + 100
            assert caught.value.status == 502
        refusing.status = 400  # a refusal of the request keeps the words, on one line too
        with pytest.raises(RequestRefused) as refused:
            await backend.chat(QUESTION)
        assert "\n" not in str(refused.value) and len(str(refused.value)) < MAX_QUOTED_CHARS + 100
    finally:
        await backend.aclose()


def test_retry_after_reads_seconds_milliseconds_and_dates() -> None:
    assert retry_after({"retry-after": "3"}) == 3.0
    assert retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert retry_after({"x": "1"}) is None and retry_after(None) is None


def test_continue_final_message_makes_continuation_exact() -> None:
    """Only a server known to take ``continue_final_message`` gets the flag."""
    from smmf_flow.models.backends.openai_proxy import OpenAIProxyBackend
    from smmf_flow.models.config import ModelConfig

    def backend(**extra: object) -> OpenAIProxyBackend:
        return OpenAIProxyBackend(
            ModelConfig(
                name="m", provider="proxy/openai", api_base="http://127.0.0.1:9/v1", **extra
            ),
            "m#0",
        )

    partial = QUESTION.model_copy(update={"assistant_prefix": "The sea"})
    plain, flagged = backend(), backend(continue_final_message=True)
    assert plain.capabilities.prefix == "approximate"
    assert "continue_final_message" not in plain._body(partial)
    assert flagged.capabilities.prefix == "exact"
    body = flagged._body(partial)
    assert body["messages"][-1] == {"role": "assistant", "content": "The sea"}
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False
    assert "continue_final_message" not in flagged._body(QUESTION)


def test_a_registry_serves_synchronous_runs_each_in_an_event_loop_of_its_own(
    llama_server: str,
) -> None:
    """A connection kept alive from a loop that has ended cannot carry the next loop's
    request: each loop gets its own client, and no call fails for it."""
    import anyio

    from smmf_flow.models import ModelRegistry

    entry = {
        "name": "remote",
        "provider": "proxy/openai",
        "api_base": llama_server,
        "api_key": "unused",
        "remote_model": "smollm2",
        "timeout_s": 120,
    }
    with ModelRegistry.from_dict({"models": {"llms": [entry]}}) as models:
        pool = models.pool("remote")
        for _ in range(3):
            result = anyio.run(pool.chat, QUESTION.model_copy(update={"max_tokens": 4}))
            assert result.text.strip() and result.instance == "remote#0"
        (instance,) = pool.instances
        assert (instance.done, instance.failed) == (3, 0)
    assert pool.status == "closed"
