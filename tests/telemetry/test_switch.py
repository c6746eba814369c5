"""Telemetry is off unless asked for, and then costs nothing: not even an import
of OpenTelemetry. It is asked for in code, by ``--otel``, or by the standard
``OTEL_*`` environment; an exporter it cannot serve is a clear error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from server.test_serve import wait_for_health

from smmf_flow import telemetry
from smmf_flow.errors import ConfigError
from smmf_flow.telemetry.env import wanted
from smmf_flow.telemetry.setup import provider_from_env

from .conftest import free_port

TESTS = Path(__file__).resolve().parents[1]
CLEAN = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}

OFF = """
import sys
sys.path.insert(0, sys.argv[1])
from models.fakes import PROVIDER, FakeBackend
from starlette.testclient import TestClient
from smmf_flow import DAG
from smmf_flow.models.backends import register_backend
from smmf_flow.models.registry import ModelRegistry
from smmf_flow.operators import FallbackOperator, PromptOperator
from smmf_flow.server import create_app

register_backend(PROVIDER, FakeBackend)
config = {"models": {"llms": [{"name": "m", "provider": PROVIDER}]}}
with DAG("d") as dag:
    PromptOperator("say {{ w }}") >> FallbackOperator(["m"], stream=True)
with ModelRegistry.from_dict(config) as registry:
    assert dag.run({"w": "x"}, registry=registry)
app = create_app(ModelRegistry.from_dict(config), warmup=False)
with TestClient(app, base_url="http://127.0.0.1") as client:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    assert client.post("/v1/chat/completions", json=body, headers=headers).status_code == 200
print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))
"""


def test_off_imports_no_opentelemetry() -> None:
    """A run, a served request with a traceparent, and the CLI's switch, all with
    telemetry off: OpenTelemetry is never imported."""
    done = subprocess.run(
        [sys.executable, "-c", OFF, str(TESTS)],
        env=CLEAN,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, False),
        ({"OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}, False),
    ],
)
def test_the_environment_decides(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: bool
) -> None:
    for name in [k for k in os.environ if k.startswith("OTEL_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert wanted() is expected
    try:
        assert (telemetry.configure() is not None) is expected
        assert telemetry.configure(flag=True) is not None or "OTEL_SDK_DISABLED" in env
    finally:
        telemetry.disable()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"OTEL_TRACES_EXPORTER": "zipkin"},
            r"^OTEL_TRACES_EXPORTER: unknown exporter 'zipkin'; smmf-flow exports traces "
            r"with otlp, console, none$",
        ),
        (
            {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
            r"^OTEL_EXPORTER_OTLP_PROTOCOL: protocol 'http/json' is not served; "
            r"use http/protobuf or grpc$",
        ),
    ],
)
def test_an_exporter_it_cannot_serve_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        telemetry.configure(flag=True)
    assert telemetry.active() is None


def test_the_provider_names_the_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    provider = provider_from_env()
    assert isinstance(provider, TracerProvider)
    assert provider.resource.attributes["service.name"] == "smmf-flow"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "gateway-7")
    assert provider_from_env().resource.attributes["service.name"] == "gateway-7"


FLOW = """\
version: 1
name: greet
inputs:
  who: str
nodes:
  greeting: {type: prompt, template: "hello {{ who }}"}
"""


def smmf_flow(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).with_name("smmf-flow")), *args]
    return subprocess.run(
        command, env={**CLEAN, **env}, capture_output=True, text=True, timeout=120, check=False
    )


def json_objects(text: str) -> list[dict[str, object]]:
    """The JSON objects written one after another into ``text`` (the console
    exporter's spans), whatever else is between them."""
    decoder, found, at = json.JSONDecoder(), [], text.find("{")
    while at != -1:
        value, end = decoder.raw_decode(text, at)
        found.append(value)
        at = text.find("{", end)
    return found


def test_run_exports_spans_where_the_environment_says(tmp_path: Path) -> None:
    flow = tmp_path / "greet.yaml"
    flow.write_text(FLOW)
    done = smmf_flow("run", str(flow), "--input", "who=you", OTEL_TRACES_EXPORTER="console")
    assert done.returncode == 0, done.stderr
    assert "hello you" in done.stdout and "invoke_workflow" not in done.stdout
    names = {span["name"] for span in json_objects(done.stderr)}
    assert names == {"invoke_workflow greet", "node greeting"}


def test_run_refuses_an_exporter_it_cannot_serve(tmp_path: Path) -> None:
    flow = tmp_path / "greet.yaml"
    flow.write_text(FLOW)
    done = smmf_flow(
        "run", str(flow), "--input", "who=you", "--otel", OTEL_TRACES_EXPORTER="jaeger"
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: OTEL_TRACES_EXPORTER: unknown exporter 'jaeger'; smmf-flow exports traces "
        "with otlp, console, none"
    )
    assert done.stdout == ""


def test_serve_otel_continues_the_callers_trace(tmp_path: Path) -> None:
    """``smmf-flow serve --otel``: a request's span continues its ``traceparent``
    and the access log names the trace (a config of one proxied model: no model
    loads)."""
    models = tmp_path / "models.toml"
    models.write_text(
        '[[models.llms]]\nname = "far"\nprovider = "proxy/openai"\n'
        f'api_base = "http://127.0.0.1:{free_port()}/v1"\napi_key = "unused"\n'
    )
    port = free_port()
    command = [str(Path(sys.executable).with_name("smmf-flow")), "serve", "--otel"]
    server = subprocess.Popen(
        [*command, "--models", str(models), "--port", str(port)],
        env={**CLEAN, "OTEL_TRACES_EXPORTER": "console"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_health(f"http://127.0.0.1:{port}")
        trace = "4bf92f3577b34da6a3ce929d0e0e4736"
        reply = httpx.get(
            f"http://127.0.0.1:{port}/v1/models",
            headers={"traceparent": f"00-{trace}-00f067aa0ba902b7-01"},
        )
        assert reply.status_code == 200
    finally:
        server.terminate()
        _, errors = server.communicate(timeout=60)
    lines = [json.loads(line) for line in errors.splitlines() if line.startswith('{"ts"')]
    assert [(line["path"], line["trace_id"]) for line in lines if line["path"] == "/v1/models"] == [
        ("/v1/models", trace)
    ]
    spans = [s for s in json_objects(errors) if s.get("name") == "GET /v1/models"]
    assert len(spans) == 1
    assert spans[0]["context"]["trace_id"] == f"0x{trace}"
    assert spans[0]["parent_id"] == "0x00f067aa0ba902b7"
