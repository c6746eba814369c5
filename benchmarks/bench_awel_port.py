"""One AWEL program, two engines: DB-GPT's AWEL and smmf-flow, import line swapped.

The DAGs below are written once, in AWEL's form (``node.call(call_data=...)``),
and built from ``dbgpt.core.awel`` in the peers' venv and from ``smmf_flow`` in
the project's venv: what a user who ports an AWEL program gets. Shapes:

* ``chain``: 100 ``MapOperator`` s in a line, each ``x + 1``;
* ``branch``: input → branch → two maps → a join (``can_skip_in_branch=False``);
* ``sleep``: one map feeding 20 ``async`` maps that each sleep 20 ms, joined.

Each engine runs in its own process (``python bench_awel_port.py --engine
awel|smmf``); rounds alternate between them, so noise on this shared machine
hits both alike. Reported: the median time per call over the rounds and the
AWEL/smmf ratio, with the load average::

    python3 -m venv .venv-peers
    .venv-peers/bin/pip install -r benchmarks/requirements-peers.txt
    .venv/bin/python benchmarks/bench_awel_port.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import itertools
import json
import os
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ENGINES = {"awel": ("dbgpt.core.awel", ROOT / ".venv-peers"), "smmf": ("smmf_flow", ROOT / ".venv")}
CALLS = {"chain": 200, "branch": 500, "sleep": 5}


def build(awel: Any, shape: str) -> Any:
    """The end node of ``shape``, built with the engine's AWEL names."""
    with awel.DAG(f"bench_{shape}"):
        if shape == "chain":
            nodes = [awel.MapOperator(map_function=lambda x: x + 1) for _ in range(100)]
            for a, b in itertools.pairwise(nodes):
                a >> b
            return nodes[-1]
        start = awel.InputOperator(input_source=awel.SimpleCallDataInputSource())
        if shape == "branch":
            branch = awel.BranchOperator(
                branches={lambda x: x % 2 == 0: "even", lambda x: x % 2: "odd"}
            )
            even = awel.MapOperator(map_function=lambda x: x * 10, task_name="even")
            odd = awel.MapOperator(map_function=lambda x: x * x, task_name="odd")
            join = awel.JoinOperator(
                combine_function=lambda a, b: b if awel.is_empty_data(a) else a,
                can_skip_in_branch=False,
            )
            start >> branch >> even >> join
            branch >> odd >> join
            return join

        async def nap(x: int) -> int:
            await asyncio.sleep(0.02)
            return x

        sleepers = [awel.MapOperator(map_function=nap) for _ in range(20)]
        join = awel.JoinOperator(combine_function=lambda *xs: sum(xs))
        for s in sleepers:
            start >> s >> join
        return join


async def time_calls(end: Any, calls: int) -> float:
    """Seconds per call, the mean of ``calls`` calls (after one warm-up)."""
    await end.call(call_data=1)
    began = time.perf_counter()
    for i in range(calls):
        await end.call(call_data=i)
    return (time.perf_counter() - began) / calls


def run_engine(engine: str) -> None:
    awel = importlib.import_module(ENGINES[engine][0])
    out = {shape: asyncio.run(time_calls(build(awel, shape), n)) for shape, n in CALLS.items()}
    print(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", choices=ENGINES)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.engine:
        return run_engine(args.engine)
    times: dict[str, dict[str, list[float]]] = {e: {s: [] for s in CALLS} for e in ENGINES}
    for _ in range(args.rounds):
        for engine, (_, venv) in ENGINES.items():
            python = venv / "bin" / "python"
            done = subprocess.run(
                [str(python), __file__, "--engine", engine],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            for shape, seconds in json.loads(done.stdout.splitlines()[-1]).items():
                times[engine][shape].append(seconds)
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; rounds: {args.rounds}")
    print(f"{'shape':8} {'AWEL ms/call':>13} {'smmf ms/call':>13} {'AWEL/smmf':>10}")
    for shape in CALLS:
        awel_ms = statistics.median(times["awel"][shape]) * 1000
        smmf_ms = statistics.median(times["smmf"][shape]) * 1000
        print(f"{shape:8} {awel_ms:13.3f} {smmf_ms:13.3f} {awel_ms / smmf_ms:10.1f}x")
    return None


if __name__ == "__main__":
    main()
