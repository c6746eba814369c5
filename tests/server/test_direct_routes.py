"""The OpenAI POST endpoints served by ``DirectRoutes``, past FastAPI's router: they
answer as the routed app did (errors in OpenAI's shape, a wrong method a 405, the
route named in the access log and the metrics, ``/docs`` still listing them), and
a stream behind the body guard still ends properly. In process, on the fake
backend (no model involved)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from models.fakes import PROVIDER, FakeBackend
from starlette.testclient import TestClient

from smmf_flow.errors import BackendConnectionError
from smmf_flow.models.backends import register_backend
from smmf_flow.models.registry import ModelRegistry
from smmf_flow.server import create_app
from smmf_flow.server.direct_routes import DirectRoutes
from smmf_flow.server.openai_api import DIRECT_ROUTES

from .conftest import wait_until

KEY = "sk-direct-0123"
AUTH = {"Authorization": f"Bearer {KEY}"}
JSON = {"Content-Type": "application/json"}
HI = {"model": "m", "messages": [{"role": "user", "content": "hi there"}], "max_tokens": 4}
CONFIG = {
    "models": {
        "llms": [{"name": "m", "provider": PROVIDER}],
        "embeddings": [{"name": "e", "provider": PROVIDER}],
    }
}


@pytest.fixture
def client() -> Iterator[TestClient]:
    register_backend(PROVIDER, FakeBackend)
    app = create_app(ModelRegistry.from_dict(CONFIG), api_keys=(KEY,))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        client.headers.update(AUTH)
        assert wait_until(lambda: client.get("/readyz").status_code == 200)
        yield client


def fake(client: TestClient) -> FakeBackend:
    pool = client.app.state.smmf.registry.pool("m")  # type: ignore[attr-defined]
    backend: FakeBackend = pool.instances[0].backend
    return backend


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


def test_the_three_posts_are_served_directly() -> None:
    assert set(DIRECT_ROUTES) == {"/v1/chat/completions", "/v1/completions", "/v1/embeddings"}


def test_chat_answers_and_is_logged_under_its_route(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="smmf_flow.server.access"):
        reply = client.post("/v1/chat/completions", json=HI)
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"].endswith(": hi there")
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name.endswith("access")]
    assert lines[-1]["route"] == "/v1/chat/completions" and lines[-1]["model"] == "m"
    metrics = client.get("/metrics").text
    assert 'route="/v1/chat/completions",status="200"' in metrics


def test_completions_and_embeddings(client: TestClient) -> None:
    reply = client.post("/v1/completions", json={"model": "m", "prompt": "a b", "max_tokens": 2})
    assert reply.status_code == 200 and reply.json()["choices"][0]["text"].endswith("a b")
    reply = client.post("/v1/embeddings", json={"model": "e", "input": ["abc", "de"]})
    assert [d["embedding"] for d in reply.json()["data"]] == [[3.0, 1.0], [2.0, 1.0]]


def test_errors_keep_their_status_and_shape(client: TestClient) -> None:
    error = error_of(client.post("/v1/chat/completions", json={**HI, "model": "nope"}), 404)
    assert error["code"] == "model_not_found" and "nope" in error["message"]
    error = error_of(client.post("/v1/chat/completions", json={**HI, "max_tokens": 0}), 422)
    assert error["param"] == "max_tokens"
    error = error_of(client.post("/v1/chat/completions", content=b"{", headers=JSON), 400)
    assert error["type"] == "invalid_request_error"
    fake(client).fail_with = BackendConnectionError("the upstream is gone")
    error = error_of(client.post("/v1/chat/completions", json=HI), 502)
    assert error["code"] == "upstream_unreachable"


def test_an_unexpected_error_is_a_500_that_names_no_internals(
    client: TestClient, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any) -> None:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(client.app.state.smmf.metrics, "count_usage", broken)  # type: ignore[attr-defined]
    with caplog.at_level(logging.ERROR, logger="smmf_flow"):
        reply = client.post("/v1/chat/completions", json=HI)
    error = error_of(reply, 500)
    assert error["code"] == "internal_error" and "secret" not in reply.text
    logged = [r for r in caplog.records if r.exc_info and "secret" in str(r.exc_info[1])]
    assert logged, "the traceback goes to the log"


def test_other_methods_and_paths_still_go_to_fastapi(client: TestClient) -> None:
    error = error_of(client.get("/v1/chat/completions"), 405)
    assert error["code"] == "method_not_allowed"
    error_of(client.post("/v1/chat/completion", json=HI), 404)
    paths = client.get("/openapi.json").json()["paths"]
    for path in DIRECT_ROUTES:
        assert "post" in paths[path] and "requestBody" in paths[path]["post"]
    assert client.get("/v1/models").status_code == 200


def test_guards_still_come_first(client: TestClient) -> None:
    error_of(client.post("/v1/chat/completions", json=HI, headers={"Authorization": ""}), 401)
    error_of(
        client.post("/v1/chat/completions", content=b"{}", headers={"Content-Type": "text/plain"}),
        415,
    )
    error_of(client.post("/v1/chat/completions", json=HI, headers={"Host": "evil.example"}), 421)


def test_a_stream_ends_with_done(client: TestClient) -> None:
    body = {**HI, "stream": True, "stream_options": {"include_usage": True}}
    with client.stream("POST", "/v1/chat/completions", json=body) as reply:
        assert reply.status_code == 200
        data = [line[6:] for line in reply.iter_lines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text.endswith("hi there") and chunks[-1]["usage"]["completion_tokens"] == 2
    assert 'smmf_streams_total{outcome="done"}' in client.get("/metrics").text


def test_a_path_under_a_root_path_is_matched_inside_the_app() -> None:
    """Mounted under a prefix, the app matches the path without it, as its router does."""
    seen: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append("fastapi")
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def endpoint(request: Any) -> Any:
        seen.append(request.scope["route"].path)
        from starlette.responses import Response

        return Response(b"{}", media_type="application/json")

    route = DIRECT_ROUTES["/v1/chat/completions"]
    app = DirectRoutes(inner, {route.path: type(route)(route.path, endpoint, methods=["POST"])})
    client = TestClient(app, root_path="/gateway")
    assert client.post("/gateway/v1/chat/completions", json={}).status_code == 200
    assert client.post("/gateway/v1/models", json={}).status_code == 404
    assert seen == ["/v1/chat/completions", "fastapi"]
