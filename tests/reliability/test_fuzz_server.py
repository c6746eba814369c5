"""Fuzzing the server with schemathesis, from its own OpenAPI schema.

Property: whatever a client with a key sends to any endpoint, the answer is not a
5xx and comes back (no hang). The server is real (uvicorn on loopback) and so are
its models: SmolLM2 on llama.cpp with a 192-token window, so a valid generation is
short, and MiniLM. Valid and invalid bodies are both generated (schemathesis's
positive and negative modes); the ``model`` and flow-name fields are drawn from
the names this server knows and a run's ``inputs`` shaped like a flow's, so the
fuzzer reaches the models and flows, not just their 404s. The flows are the
server tests' ``ask`` and ``ask-stream``, and ``similar`` (embeddings).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from server.conftest import FLOWS as SERVER_FLOWS
from server.conftest import KEY, LiveServer, start_server

from smmf_flow.models.registry import ModelRegistry
from smmf_flow.server import FlowCatalog

AUTH = {"Authorization": f"Bearer {KEY}"}
#: examples per operation and generation mode
EXAMPLES = 60
FLOWS = {
    **SERVER_FLOWS,
    "similar.yaml": """
version: 1
name: similar
inputs:
  a: str
  b: str
nodes:
  texts: {type: map, expr: "[input.a, input.b]"}
  embed: {type: embedding, model: minilm}
  score: {type: map, expr: "cosine(input[0], input[1]) | round(4)"}
edges: ["texts >> embed >> score"]
""",
}


@pytest.fixture(scope="module")
def registry(llama_entry: Any, minilm_entry: dict[str, Any]) -> ModelRegistry:
    return ModelRegistry.from_dict(
        {
            "models": {
                "llms": [llama_entry("smollm2", context_length=192, max_queue=64)],
                "embeddings": [minilm_entry],
                "groups": [{"name": "chat", "strategy": "fallback", "members": ["smollm2"]}],
            }
        }
    )


@pytest.fixture(scope="module")
def catalog(registry: ModelRegistry, tmp_path_factory: pytest.TempPathFactory) -> FlowCatalog:
    folder = tmp_path_factory.mktemp("fuzz-flows")
    for name, text in FLOWS.items():
        (folder / name).write_text(text)
    return FlowCatalog.from_dir(folder, registry, strict=True)


@pytest.fixture(scope="module")
def fuzzed(registry: ModelRegistry, catalog: FlowCatalog) -> Iterator[LiveServer]:
    server = start_server(registry, flows=catalog, api_keys=(KEY,))
    yield server
    server.stop()


def widened(raw: dict[str, Any], models: list[str], catalog: FlowCatalog) -> dict[str, Any]:
    """The schema with ``model`` fields and name parameters drawn from the known names,
    and a flow run's ``inputs`` shaped like some flow's declared inputs, so that valid
    cases reach the models and flows (invalid ones still try anything else)."""
    raw = copy.deepcopy(raw)
    flows = sorted(catalog.flows)
    for item in raw["paths"].values():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                names = models if parameter["name"] == "model" else flows
                parameter["schema"] = {"type": "string", "enum": names}
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            properties = body["schema"].get("properties", {}) if body else {}
            if "model" in properties:
                properties["model"] = {"type": "string", "enum": models}
            if "inputs" in properties:
                properties["inputs"] = {"anyOf": [_inputs(flow) for flow in catalog.flows.values()]}
    return raw


def _inputs(flow: Any) -> dict[str, Any]:
    """A JSON schema of the flow's declared inputs."""
    json_type = {
        "str": "string",
        "int": "integer",
        "float": "number",
        "bool": "boolean",
        "list": "array",
        "dict": "object",
    }
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            name: {"type": json_type[spec.type]} for name, spec in flow.spec.inputs.items()
        },
        "required": [name for name, spec in flow.spec.inputs.items() if spec.required],
    }


@pytest.fixture(scope="module")
def api_schema(fuzzed: LiveServer, catalog: FlowCatalog) -> Any:
    raw = httpx.get(f"{fuzzed.url}/openapi.json", headers=AUTH).json()
    schema = schemathesis.openapi.from_dict(widened(raw, fuzzed.registry.names, catalog))
    schema.config.update(base_url=fuzzed.url)
    return schema


def operations(schema: Any) -> list[Any]:
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_makes_a_server_error_or_a_hang(
    api_schema: Any, fuzzed: LiveServer, mode: GenerationMode
) -> None:
    """Every operation, with bodies that fit its schema (positive) and that do not
    (negative)."""
    for operation in operations(api_schema):
        if mode is GenerationMode.NEGATIVE and not (operation.body or operation.path_parameters):
            continue  # nothing about it can be invalid

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def answers(case: Any) -> None:
            response = case.call(base_url=fuzzed.url, headers=AUTH, timeout=60)  # or hangs
            assert response.status_code < 500, (case.as_curl_command(), response.text[:500])
            if response.status_code >= 400:  # every refusal is OpenAI's error shape
                error = response.json()["error"]
                assert set(error) == {"message", "type", "param", "code"} and error["message"]

        answers()


def test_every_endpoint_is_fuzzed(api_schema: Any) -> None:
    """Each operation the server documents is in the schema the fuzzer reads, POST
    bodies included."""
    found = {(op.method.upper(), op.path): op for op in operations(api_schema)}
    assert {
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/completions"),
        ("POST", "/v1/embeddings"),
        ("POST", "/v1/flows/{name}/run"),
        ("GET", "/v1/models"),
        ("GET", "/v1/models/{model}"),
        ("GET", "/v1/flows"),
        ("GET", "/v1/flows/{name}"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
    } <= set(found)
    assert all(op.body for (method, _), op in found.items() if method == "POST")
