"""Flows as endpoints: listed with their inputs, run with JSON in and out, streamed
as server-sent events, and input checked against the declared inputs. The last
tests run the app in process on the fake backend (no model involved)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from models.fakes import PROVIDER, FakeBackend
from starlette.testclient import TestClient

from smmf_flow.models.backends import register_backend
from smmf_flow.models.registry import ModelRegistry
from smmf_flow.server import FlowCatalog, create_app

from .conftest import FLOWS, wait_until


async def post_to_flow(
    folder: Path, flow: str, inputs: dict[str, Any], **body: Any
) -> httpx.Response:
    """``POST /v1/flows/f/run`` to an app in this process that serves the flow file
    ``folder/f.yaml`` holding ``flow`` (YAML text; no models)."""
    (folder / "f.yaml").write_text(flow, encoding="utf-8")
    registry = ModelRegistry.from_dict({"models": {}})
    app = create_app(registry, flows=FlowCatalog.from_dir(folder, registry), warmup=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        return await client.post("/v1/flows/f/run", json={"inputs": inputs, **body})


def test_flows_are_listed_with_their_inputs(http: httpx.Client) -> None:
    flows = {f["name"]: f for f in http.get("/v1/flows").json()["data"]}
    assert set(flows) == {"ask", "ask-stream"}
    assert flows["ask"]["inputs"] == {
        "question": {"type": "str", "required": True, "description": ""},
        "words": {"type": "int", "required": False, "description": "", "default": 5},
    }
    assert flows["ask"]["stream"] is False and flows["ask-stream"]["stream"] is True
    assert http.get("/v1/flows/ask").json()["output"] == "answer"


def test_run_json_in_json_out(http: httpx.Client) -> None:
    reply = http.post("/v1/flows/ask/run", json={"inputs": {"question": "What is rain?"}})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["flow"] == "ask"
    assert body["output"]["text"] and body["output"]["model"] == "smollm2"
    assert body["output"]["usage"]["completion_tokens"] <= 6


def test_run_streams_as_server_sent_events(http: httpx.Client) -> None:
    with http.stream(
        "POST", "/v1/flows/ask-stream/run", json={"inputs": {"question": "Say hello."}}
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(line)["chunk"] for line in lines[:-1]]
    text = "".join(c["text"] for c in chunks)
    assert text and chunks[-1]["finish_reason"] in ("stop", "length")
    # the same flow without streaming gathers the same text
    whole = http.post(
        "/v1/flows/ask-stream/run", json={"inputs": {"question": "Say hello."}, "stream": False}
    ).json()
    assert whole["output"]["text"] == text


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({}, "missing input 'question' (str); give it as inputs.question"),
        (
            {"question": "x", "colour": "red"},
            "unknown input 'colour' (the flow's inputs: question, words)",
        ),
        ({"question": "x", "words": "five"}, "input 'words' must be int, got 'five'"),
    ],
)
def test_input_is_checked_against_the_declared_inputs(
    http: httpx.Client, inputs: dict[str, Any], message: str
) -> None:
    reply = http.post("/v1/flows/ask/run", json={"inputs": inputs})
    assert reply.status_code == 422, reply.text
    error = reply.json()["error"]
    assert error["param"] == "inputs" and error["code"] == "invalid_input"
    assert message in error["message"]


def test_unknown_flow_and_malformed_run_body(http: httpx.Client) -> None:
    reply = http.post("/v1/flows/nope/run", json={"inputs": {}})
    assert reply.status_code == 404
    assert "known flows: ask, ask-stream" in reply.json()["error"]["message"]
    reply = http.post("/v1/flows/ask/run", json={"input": {"question": "x"}})
    assert reply.status_code == 422
    assert reply.json()["error"]["param"] == "input"


@pytest.mark.anyio
async def test_inputs_named_like_dict_methods_answer_their_values(tmp_path: Path) -> None:
    flow = """
inputs: {keys: str, values: str}
nodes:
  a: {type: map, expr: "input.keys ~ '/' ~ input.values"}
"""
    reply = await post_to_flow(tmp_path, flow, {"keys": "K", "values": "V"})
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"flow": "f", "output": "K/V"}


DIVIDE = """
inputs: {q: str}
nodes:
  a: {type: map, expr: "(input.q | int) // 0"}
"""
ZERO_DIVISION = (
    "flow 'f', node 'a': expression '(input.q | int) // 0' failed: "
    "ZeroDivisionError: integer division or modulo by zero"
)


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [False, True])
async def test_an_expression_that_fails_on_the_input_is_a_422_naming_it(
    tmp_path: Path, stream: bool
) -> None:
    reply = await post_to_flow(tmp_path, DIVIDE, {"q": "3"}, stream=stream)
    assert reply.status_code == 422, reply.text
    error = reply.json()["error"]
    assert (error["code"], error["message"]) == ("invalid_input", ZERO_DIVISION)


@pytest.mark.anyio
async def test_an_expression_that_fails_mid_stream_ends_it_with_a_422_event(
    tmp_path: Path,
) -> None:
    flow = """
inputs: {q: str}
stream: true
nodes:
  digits: {type: streamify, expr: "input.q | list"}
  a: {type: transform_stream, expr: "10 // (chunk | int)"}
edges: ["digits >> a"]
"""
    reply = await post_to_flow(tmp_path, flow, {"q": "50"})
    events = [line[6:] for line in reply.text.splitlines() if line.startswith("data: ")]
    assert events[0] == '{"chunk":2}' and events[-1] == "[DONE]"
    error = json.loads(events[1])["error"]
    assert error["code"] == "invalid_input"
    assert error["message"] == (
        "flow 'f', node 'a': expression '10 // (chunk | int)' failed: "
        "ZeroDivisionError: integer division or modulo by zero"
    )


@pytest.fixture
def local(tmp_path: Path) -> Iterator[TestClient]:
    """The app in process with the flow ``ask`` of the shared server, its model on the
    fake backend."""
    register_backend(PROVIDER, FakeBackend)
    config = {"models": {"llms": [{"name": "smollm2", "provider": PROVIDER}]}}
    registry = ModelRegistry.from_dict(config)
    (tmp_path / "ask.yaml").write_text(FLOWS["ask.yaml"])
    app = create_app(registry, flows=FlowCatalog.from_dir(tmp_path, registry))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert wait_until(lambda: client.get("/readyz").status_code == 200)
        yield client


def test_a_missing_input_is_asked_for_as_the_body_gives_it(local: TestClient) -> None:
    """Not as the command line does (``--input question=...``)."""
    error = local.post("/v1/flows/ask/run", json={"inputs": {}}).json()["error"]
    assert error["message"] == (
        "flow 'ask': missing input 'question' (str); give it as inputs.question"
    )
    reply = local.post("/v1/flows/ask/run", json={"inputs": {"question": "rain?"}})
    assert reply.status_code == 200, reply.text


def test_an_empty_run_body_is_400(local: TestClient) -> None:
    reply = local.post("/v1/flows/ask/run", headers={"Content-Type": "application/json"})
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["message"] == "the request body is empty; send a JSON object"
