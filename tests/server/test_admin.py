"""The admin API (``/admin/models``): who may use it, what a bad request gets, and
what start, stop, restart and scale do to a running server's models.

Most tests run the app in process on the fake backend (no model involved); the
last one runs a real server on SmolLM2 and stops the instance serving a stream
mid-answer: the stream finishes there with its text whole, while new requests
go to the other instance."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import aclosing
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import anyio
import httpx
import pytest
from models.fakes import PROVIDER, FakeBackend
from starlette.testclient import TestClient

from smmf_flow.errors import ServeError
from smmf_flow.models.backends import register_backend
from smmf_flow.models.registry import ModelRegistry
from smmf_flow.models.types import ChatChunk, ChatRequest
from smmf_flow.server import create_app
from smmf_flow.server.browser import BrowserGuard
from smmf_flow.server.limits import ServerLimits

from .conftest import ROOT, free_port, start_server, wait_until
from .test_serve import SMMF, wait_for_health

TENANT, ADMIN = "sk-tenant-0123", "sk-admin-4567"
AS_TENANT = {"Authorization": f"Bearer {TENANT}"}
AS_ADMIN = {"Authorization": f"Bearer {ADMIN}"}
HI = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
CONFIG = {
    "models": {
        "llms": [
            {"name": "m", "provider": PROVIDER, "strategy": "least_busy"},
            {"name": "other", "provider": PROVIDER},
        ],
        "groups": [{"name": "g", "strategy": "fallback", "members": ["m", "other"]}],
    }
}


@pytest.fixture
def app_client() -> Iterator[Callable[..., TestClient]]:
    """``app_client(**create_app options)``: a started app on the fake backend."""
    register_backend(PROVIDER, FakeBackend)
    clients: list[TestClient] = []

    def make(**options: Any) -> TestClient:
        options.setdefault("api_keys", (TENANT,))
        options.setdefault("admin_keys", (ADMIN,))
        app = create_app(ModelRegistry.from_dict(CONFIG), **options)
        client = TestClient(app, base_url="http://127.0.0.1")
        client.__enter__()
        clients.append(client)
        assert wait_until(lambda: client.get("/readyz").status_code == 200)  # warmed up
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def admin(app_client: Callable[..., TestClient]) -> TestClient:
    client = app_client()
    client.headers.update(AS_ADMIN)
    return client


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


# --- who may use it ------------------------------------------------------------------


def test_admin_api_is_off_without_an_admin_key(app_client: Callable[..., TestClient]) -> None:
    client = app_client(admin_keys=())
    for headers in ({}, AS_TENANT, AS_ADMIN):
        error = error_of(client.get("/admin/models", headers=headers), 404)
        assert "admin API is off" in error["message"] and "--admin-key" in error["message"]
        error_of(client.post("/admin/models/m/stop", json={}, headers=headers), 404)
    assert client.post("/v1/chat/completions", json=HI, headers=AS_TENANT).status_code == 200


def test_admin_keys_and_tenant_keys_open_different_doors(
    app_client: Callable[..., TestClient],
) -> None:
    client = app_client()
    assert "no admin key was given" in error_of(client.get("/admin/models"), 401)["message"]
    wrong = {"Authorization": "Bearer sk-guess"}
    assert "not valid" in error_of(client.get("/admin/models", headers=wrong), 401)["message"]
    error = error_of(client.post("/admin/models/m/stop", json={}, headers=AS_TENANT), 403)
    assert "needs an admin key" in error["message"]
    assert client.get("/admin/models", headers=AS_ADMIN).status_code == 200
    assert client.get("/admin/models", headers={"X-API-Key": ADMIN}).status_code == 200
    # an admin key is no tenant key
    error_of(client.post("/v1/chat/completions", json=HI, headers=AS_ADMIN), 401)
    assert client.get("/v1/models", headers=AS_TENANT).status_code == 200
    # nothing was stopped by the refused requests
    assert client.get("/admin/models/m", headers=AS_ADMIN).json()["status"] == "ready"


def test_an_open_server_still_guards_its_admin_api(app_client: Callable[..., TestClient]) -> None:
    client = app_client(api_keys=())
    assert client.post("/v1/chat/completions", json=HI).status_code == 200
    error_of(client.get("/admin/models"), 401)
    assert client.get("/admin/models", headers=AS_ADMIN).status_code == 200


def test_a_key_cannot_be_both_kinds() -> None:
    with pytest.raises(ServeError, match="both as an API key and as an admin key"):
        create_app(ModelRegistry.from_dict(CONFIG), api_keys=("k",), admin_keys=("k",))


def test_web_pages_cannot_reach_the_admin_api(admin: TestClient) -> None:
    error_of(admin.get("/admin/models", headers={"Host": "evil.example"}), 421)
    error_of(admin.post("/admin/models/m/stop", headers={"Origin": "https://evil.example"}), 403)
    error_of(
        admin.post("/admin/models/m/stop", content=b"{}", headers={"Content-Type": "text/plain"}),
        415,
    )
    assert admin.get("/admin/models/m").json()["status"] == "ready"


def test_the_admin_api_is_not_in_the_tenants_schema(admin: TestClient) -> None:
    paths = admin.get("/openapi.json", headers=AS_TENANT).json()["paths"]
    assert "/v1/chat/completions" in paths
    assert not [p for p in paths if p.startswith("/admin")]


# --- bad requests --------------------------------------------------------------------


def test_an_unknown_model_is_a_404_naming_it(admin: TestClient) -> None:
    for response in (
        admin.get("/admin/models/nope"),
        admin.post("/admin/models/nope/stop", json={}),
    ):
        assert "'nope'" in error_of(response, 404)["message"]
    assert "group" in error_of(admin.post("/admin/models/g/stop", json={}), 400)["message"]
    error = error_of(admin.post("/admin/models/m/pause", json={}), 404)
    assert "start, stop, restart, scale" in error["message"]


def test_an_unknown_instance_is_a_404_naming_those_there_are(admin: TestClient) -> None:
    error = error_of(admin.post("/admin/models/m/stop", json={"instance": 3}), 404)
    assert error["param"] == "instance"
    assert error["message"] == "model 'm' has no instance 3 (instances: 0)"


@pytest.mark.parametrize(
    ("action", "body", "param"),
    [
        ("scale", {}, "instances"),
        ("scale", {"instances": 0}, "instances"),
        ("scale", {"instances": "two"}, "instances"),
        ("scale", {"instances": 2, "grace_s": 10**9}, "grace_s"),
        ("stop", {"instance": -1}, "instance"),
        ("stop", {"instances": 2}, "instances"),  # a misspelt field is not ignored
        ("restart", {"grace_s": -1}, "grace_s"),
    ],
)
def test_a_bad_body_is_a_422_saying_where(
    admin: TestClient, action: str, body: dict[str, Any], param: str
) -> None:
    error = error_of(admin.post(f"/admin/models/m/{action}", json=body), 422)
    assert error["param"] == param and f"'{param}'" in error["message"]


def test_a_body_that_is_not_json_is_a_400(admin: TestClient) -> None:
    response = admin.post(
        "/admin/models/m/scale", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert error_of(response, 400)["code"] == "invalid_json"


def test_an_action_takes_no_body_as_empty(admin: TestClient) -> None:
    """The body is optional: no body and no Content-Type is ``{}``."""
    answer = admin.post("/admin/models/m/restart")  # Content-Length: 0
    assert answer.status_code == 200, answer.text
    assert answer.json()["action"] == "restart" and answer.json()["status"] == "ready"
    error = error_of(admin.post("/admin/models/m/scale"), 422)
    assert error["param"] == "instances"


def test_curl_without_a_body_restarts_a_model() -> None:
    """``curl -X POST`` sends neither a length nor a type: HTTP/1.1's "no body"."""
    register_backend(PROVIDER, FakeBackend)
    registry = ModelRegistry.from_dict(CONFIG)
    live = start_server(registry, api_keys=(TENANT,), admin_keys=(ADMIN,), ready_s=30)
    try:
        connection = http.client.HTTPConnection(urlsplit(live.url).netloc, timeout=30)
        connection.putrequest("POST", "/admin/models/m/restart")
        connection.putheader("Authorization", f"Bearer {ADMIN}")
        connection.endheaders()
        reply = connection.getresponse()
        assert reply.status == 200, reply.read()
        connection.close()
    finally:
        live.stop()


def test_a_body_still_needs_its_type(admin: TestClient) -> None:
    for content in (b"{}", iter([b"{}"])):  # with a length, and chunked
        error = error_of(admin.post("/admin/models/m/stop", content=content), 415)
        assert error["message"].endswith("(got none)")
    assert admin.get("/admin/models/m").json()["status"] == "ready"
    # HTTP/2 need not say a body's length: there only `Content-Length: 0` says none
    guard = BrowserGuard(admin.app)
    scope = {"type": "http", "method": "POST", "headers": [(b"host", b"127.0.0.1")]}
    assert guard.refusal({**scope, "http_version": "1.1"}) is None
    refused = guard.refusal({**scope, "http_version": "2"})
    assert refused is not None and refused.status == 415
    with_length = {**scope, "headers": [*scope["headers"], (b"content-length", b"0")]}
    assert guard.refusal({**with_length, "http_version": "2"}) is None


def test_scaling_past_the_limit_is_refused(app_client: Callable[..., TestClient]) -> None:
    client = app_client(limits=ServerLimits(max_instances=3))
    client.headers.update(AS_ADMIN)
    error = error_of(client.post("/admin/models/m/scale", json={"instances": 4}), 422)
    assert error["param"] == "instances" and "max_instances = 3" in error["message"]
    assert len(client.get("/admin/models/m").json()["instances"]) == 1


# --- what the actions do ---------------------------------------------------------------


def test_list_shows_each_model_and_its_instances(admin: TestClient) -> None:
    models = {m["model"]: m for m in admin.get("/admin/models").json()["models"]}
    assert set(models) == {"m", "other"}  # groups are not controlled here
    m = models["m"]
    assert (m["kind"], m["provider"], m["placement"], m["status"]) == (
        "llm",
        PROVIDER,
        "local",
        "ready",
    )
    [instance] = m["instances"]
    assert instance["id"] == "m#0" and instance["state"] == "healthy"
    assert instance["in_flight"] == 0 and instance["done"] == 0


def test_scale_up_and_down_while_serving(admin: TestClient) -> None:
    answer = admin.post("/admin/models/m/scale", json={"instances": 3}).json()
    assert answer["action"] == "scale" and answer["status"] == "ready"
    assert [i["id"] for i in answer["instances"]] == ["m#0", "m#1", "m#2"]
    served = set()
    for _ in range(6):
        reply = admin.post("/v1/chat/completions", json=HI, headers=AS_TENANT)
        served.add(reply.json()["choices"][0]["message"]["content"].split(":")[0])
    assert served == {"m#0", "m#1", "m#2"}
    after = admin.get("/admin/models/m").json()["instances"]
    assert sum(i["done"] for i in after) == 6  # counters follow the new instances
    answer = admin.post("/admin/models/m/scale", json={"instances": 1}).json()
    assert len(answer["instances"]) == 1 and answer["status"] == "ready"
    assert admin.post("/v1/chat/completions", json=HI, headers=AS_TENANT).status_code == 200
    metrics = admin.get("/metrics", headers=AS_TENANT).text
    assert 'instance="m#2"' not in metrics  # a removed instance leaves the metrics


def test_a_stopped_model_answers_503_and_its_group_falls_through(admin: TestClient) -> None:
    answer = admin.post("/admin/models/m/stop", json={"grace_s": 5}).json()
    assert answer["status"] == "stopped"
    assert [i["state"] for i in answer["instances"]] == ["stopped"]
    error = error_of(admin.post("/v1/chat/completions", json=HI, headers=AS_TENANT), 503)
    assert "stopped" in error["message"]
    group = admin.post("/v1/chat/completions", json={**HI, "model": "g"}, headers=AS_TENANT)
    assert group.status_code == 200 and group.json()["model"] == "other"
    ready = admin.get("/readyz")  # stopped on purpose: the server is still ready
    assert ready.status_code == 200 and ready.json()["models"]["m"] == "stopped"
    assert admin.post("/admin/models/m/start", json={}).json()["status"] == "ready"
    assert admin.post("/v1/chat/completions", json=HI, headers=AS_TENANT).status_code == 200


def test_stop_start_and_restart_one_instance(admin: TestClient) -> None:
    admin.post("/admin/models/m/scale", json={"instances": 2})
    answer = admin.post("/admin/models/m/stop", json={"instance": 1}).json()
    assert answer["status"] == "degraded"
    assert [i["state"] for i in answer["instances"]] == ["healthy", "stopped"]
    for _ in range(3):
        reply = admin.post("/v1/chat/completions", json=HI, headers=AS_TENANT).json()
        assert reply["choices"][0]["message"]["content"].startswith("m#0:")
    assert admin.post("/admin/models/m/start", json={"instance": 1}).json()["status"] == "ready"
    answer = admin.post("/admin/models/m/restart", json={"instance": 0}).json()
    assert [i["state"] for i in answer["instances"]] == ["healthy", "healthy"]
    assert admin.post("/admin/models/m/restart", json={}).json()["status"] == "ready"


# --- smmf-flow serve: the admin keys reach the server -------------------------------------


def test_serve_takes_admin_keys_from_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "models.toml"
    config.write_text(
        '[models]\n[[models.llms]]\nname = "remote"\nprovider = "proxy/openai"\n'
        'api_base = "http://127.0.0.1:9/v1"\napi_key = "none"\n'
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "SMMF_ADMIN_KEYS": ADMIN}
    command = [*SMMF, "serve", "--models", str(config), "--port", str(port)]
    proc = subprocess.Popen(
        [*command, "--api-key", TENANT], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for_health(url)
        listed = httpx.get(f"{url}/admin/models", headers=AS_ADMIN)
        assert [m["model"] for m in listed.json()["models"]] == ["remote"]
        assert httpx.get(f"{url}/admin/models", headers=AS_TENANT).status_code == 403
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0 and ADMIN not in stderr and "admin API on" in stderr
    both = subprocess.run(
        [*command, "--api-key", ADMIN], env=env, capture_output=True, text=True, timeout=120
    )
    assert both.returncode == 2 and "both as --api-key and as --admin-key" in both.stderr


# --- a real model: a stream in flight when its instance is stopped ------------------------


class HeldLlama:
    """Makes the real llama.cpp backend class whose first stream once ``hold`` is
    set (other calls run freely) pauses after its first chunk until ``hold`` is
    cleared; the model's text is unchanged."""

    hold: ClassVar[threading.Event | None] = None
    claimed: ClassVar[bool] = False
    paused: ClassVar[bool] = False  # the held stream has sent its first chunk and waits

    @classmethod
    def backend(cls) -> type:
        from smmf_flow.models.backends.llama_cpp import LlamaCppBackend

        class Held(LlamaCppBackend):
            provider = "test/llama-held"

            async def stream_chat(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
                held = cls.hold is not None and not cls.claimed
                cls.claimed = cls.claimed or held
                sent = 0
                async with aclosing(super().stream_chat(request)) as chunks:
                    async for chunk in chunks:
                        yield chunk
                        sent += 1
                        while held and sent == 1 and cls.hold is not None and cls.hold.is_set():
                            cls.paused = True
                            await anyio.sleep(0.01)

        return Held


@pytest.fixture
def held_server(llama_entry: Callable[..., dict[str, Any]]) -> Iterator[Any]:
    held = HeldLlama.backend()
    register_backend(held.provider, held)
    entry = llama_entry("duo", provider=held.provider, instances=2, context_length=512)
    registry = ModelRegistry.from_dict({"models": {"llms": [entry]}}, base_dir=ROOT / "configs")
    server = start_server(registry, api_keys=(TENANT,), admin_keys=(ADMIN,))
    yield server
    HeldLlama.hold, HeldLlama.claimed, HeldLlama.paused = None, False, False
    server.stop()


@pytest.mark.models
def test_a_stream_in_flight_on_a_stopped_instance_finishes_with_its_text_whole(
    held_server: Any,
) -> None:
    ask = {
        "model": "duo",
        "messages": [{"role": "user", "content": "Tell me about rivers."}],
        "max_tokens": 24,
        "temperature": 0,
    }
    pool = held_server.registry.pool("duo")
    with httpx.Client(base_url=held_server.url, timeout=120) as http:
        whole = http.post("/v1/chat/completions", json=ask, headers=AS_TENANT).json()
        expected = whole["choices"][0]["message"]["content"]
        assert expected

        HeldLlama.hold = threading.Event()
        HeldLlama.hold.set()
        pieces: list[str] = []
        stopped: list[httpx.Response] = []

        def consume() -> None:
            body = {**ask, "stream": True}
            with http.stream("POST", "/v1/chat/completions", json=body, headers=AS_TENANT) as r:
                for line in r.iter_lines():
                    if line.startswith("data: {"):
                        choice = json.loads(line[6:])["choices"][0]
                        pieces.append(choice["delta"].get("content") or "")

        reader = threading.Thread(target=consume)
        reader.start()
        assert wait_until(lambda: HeldLlama.paused)  # a chunk is out, the stream held
        [busy] = [i for i in pool.instances if i.in_flight]
        done_before = busy.done

        def stop() -> None:
            stopped.append(
                http.post(
                    "/admin/models/duo/stop",
                    json={"instance": busy.index, "grace_s": 120},
                    headers=AS_ADMIN,
                )
            )

        stopper = threading.Thread(target=stop)
        stopper.start()
        assert wait_until(lambda: busy.state == "draining")
        # no new call reaches the draining instance: this one goes to the other
        other = http.post("/v1/chat/completions", json=ask, headers=AS_TENANT)
        assert other.status_code == 200
        assert other.json()["choices"][0]["message"]["content"] == expected
        assert busy.state == "draining" and busy.done == done_before

        HeldLlama.hold.clear()
        reader.join(timeout=120)
        stopper.join(timeout=120)
        assert "".join(pieces) == expected  # nothing lost, nothing repeated
        assert stopped[0].status_code == 200, stopped[0].text
        states = {i["id"]: i["state"] for i in stopped[0].json()["instances"]}
        assert states[busy.id] == "stopped" and list(states.values()).count("healthy") == 1

        started = http.post(
            "/admin/models/duo/start", json={"instance": busy.index}, headers=AS_ADMIN
        )
        assert started.json()["status"] == "ready"
        served = busy.done  # the held stream counted
        assert served == done_before + 1
        deadline = time.monotonic() + 60
        while busy.done == served and time.monotonic() < deadline:  # it serves again
            reply = http.post("/v1/chat/completions", json=ask, headers=AS_TENANT)
            assert reply.json()["choices"][0]["message"]["content"] == expected
        assert busy.done > served
