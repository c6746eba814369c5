"""What the handlers of one app share (``server/state.py``), across the app's life:
its lifespan closes the registry when it ends, and an app started again must
serve from fresh pools. On the fake backend: no model is involved."""

from __future__ import annotations

from models.fakes import PROVIDER, FakeBackend
from starlette.testclient import TestClient

from smmf_flow.models.backends import register_backend
from smmf_flow.models.registry import ModelRegistry
from smmf_flow.server import create_app

HI = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


def test_an_app_started_again_serves_with_a_fresh_scheduler() -> None:
    register_backend(PROVIDER, FakeBackend)
    registry = ModelRegistry.from_dict({"models": {"llms": [{"name": "m", "provider": PROVIDER}]}})
    app = create_app(registry, warmup=False)
    schedulers = []
    for _ in range(2):  # each `with` runs the lifespan, which closes the registry at its end
        with TestClient(app, base_url="http://127.0.0.1") as client:
            reply = client.post("/v1/chat/completions", json=HI)
            assert reply.status_code == 200, reply.text
            assert reply.json()["choices"][0]["message"]["content"] == "m#0: hi"
            schedulers.append(app.state.smmf.scheduler)
    assert schedulers[0] is not schedulers[1]  # the first went with the closed registry
