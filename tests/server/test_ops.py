"""Health, readiness, Prometheus metrics and the structured access log."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest

from .conftest import KEY, LiveServer, wait_until


def test_healthz_and_readyz(live: LiveServer) -> None:
    assert httpx.get(f"{live.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{live.url}/readyz").json()
    assert ready["status"] == "ready"
    assert ready["models"]["smollm2"] == "ready" and ready["models"]["minilm"] == "ready"
    assert ready["models"]["chat"] == "ready"


def test_metrics(http: httpx.Client) -> None:
    http.post(
        "/v1/chat/completions",
        json={"model": "smollm2", "max_tokens": 2, "messages": [{"role": "user", "content": "Hi"}]},
    )
    http.post("/v1/chat/completions", json={"model": "nope", "messages": []})
    # a stream an earlier test left is cancelled and closed a moment after the client
    # goes; then only the scrape itself is in flight
    assert wait_until(lambda: "smmf_http_requests_in_flight 1.0" in http.get("/metrics").text)
    reply = http.get("/metrics")
    assert reply.headers["content-type"].startswith("text/plain")
    text = reply.text
    for needle in (
        'smmf_http_requests_total{method="POST",route="/v1/chat/completions",status="200"}',
        'smmf_http_requests_total{method="POST",route="/v1/chat/completions",status="422"}',
        'smmf_http_request_duration_seconds_bucket{le="0.005",route="/v1/chat/completions"}',
        "smmf_http_requests_in_flight 1.0",  # the scrape itself
        'smmf_tokens_total{model="smollm2",type="completion"}',
        'smmf_pool_queue_depth{model="smollm2"} 0.0',
        'smmf_instance_healthy{instance="smollm2#0",model="smollm2",state="healthy"} 1.0',
        'smmf_instance_in_flight{instance="minilm#0",model="minilm"} 0.0',
        'smmf_instance_calls_total{instance="smollm2#0",model="smollm2",outcome="done"}',
    ):
        assert needle in text, needle


def test_fallbacks_are_counted(http: httpx.Client) -> None:
    http.post(
        "/v1/chat/completions",
        json={"model": "chat", "max_tokens": 24, "messages": [{"role": "user", "content": "Hi"}]},
    )
    text = http.get("/metrics").text
    assert 'smmf_fallbacks_total{group="chat",kind="unavailable",model="dying"}' in text


def test_access_log_is_structured_and_has_no_secrets(
    http: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="smmf_flow.server.access")
    http.get("/v1/models?api_key=leak", headers={"X-Request-Id": "req-42"})

    def logged() -> list[dict[str, Any]]:  # written once the request has ended, just after
        return [
            entry
            for entry in (
                json.loads(r.getMessage())
                for r in caplog.records
                if r.name == "smmf_flow.server.access"
            )
            if entry["id"] == "req-42"
        ]

    assert wait_until(lambda: bool(logged()), timeout=10)
    line = logged()[0]
    assert line["method"] == "GET" and line["path"] == "/v1/models"
    assert line["route"] == "/v1/models" and line["status"] == 200
    assert line["ms"] >= 0 and line["client"] == "127.0.0.1"
    assert KEY not in caplog.text and "leak" not in caplog.text
