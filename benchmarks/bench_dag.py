"""Side-by-side DAG overhead: smmf-flow vs DB-GPT AWEL vs LangChain LCEL.

How to run (the peers live in their own venv, never in the test install)::

    python3 -m venv .venv-peers
    .venv-peers/bin/pip install -r benchmarks/requirements-peers.txt
    .venv-peers/bin/pip install -e . --no-deps
    .venv-peers/bin/python benchmarks/bench_dag.py            # full run, ~1 min
    .venv-peers/bin/python benchmarks/bench_dag.py --quick    # fewer repeats
    .venv-peers/bin/python benchmarks/bench_dag.py --profile chain   # cProfile smmf

Shapes (the same on every framework, same trivial work, same asyncio loop):

* ``chain``  -- 200 map nodes in a line, each ``x + 1``; input 0, output 200.
* ``fanout`` -- one map feeding 100 parallel maps, joined by a sum (102 nodes).
* ``afanout`` -- the same with ``async def`` branch maps: smmf-flow runs a plain
  synchronous map in the task that made it ready (it never lets another task run
  anyway), while a node that may suspend costs a task of its own; this shape shows
  that cost.
* ``sleep``  -- one map feeding 20 branches that each ``await asyncio.sleep(0.05)``,
  joined by a sum (22 nodes); reported as wall time in ms.

Only the run is timed: every DAG / runnable is built once, outside the timed
region, then warmed up. Frameworks are timed round-robin (one run of each per
round) so that noise on this shared machine hits all of them alike; the table
shows the median over the rounds. Per-node overhead = median run time / nodes.

How each framework is driven:

* smmf-flow: ``await dag.arun(x)`` (input goes to the root node).
* AWEL: ``await end_node.call(call_data=x)`` on a DAG of ``MapOperator`` /
  ``JoinOperator`` built with ``with DAG(...)``; the root map receives the call data.
* LCEL: ``await RunnableSequence(...).ainvoke(x)``; fan-out with
  ``RunnableParallel``. LCEL is given ``async def`` lambdas: a plain ``def`` in
  ``ainvoke`` is pushed to a thread pool per node, which would penalise it; that
  slower variant is available as the extra framework ``lcel-sync``.

AWEL's local runner walks the graph depth-first and awaits one node at a time
(``DefaultWorkflowRunner._execute_node``), so its 20 sleeping branches add up to
about 20 x 50 ms; that is how AWEL runs, not a set-up choice of this script.

A framework that is not installed is skipped with a note, so the script also runs
with smmf-flow alone.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.metadata
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:  # run from a checkout without the editable install: use the repo's package
    import smmf_flow  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CHAIN_N = 200
FAN_W = 100
SLEEP_W = 20
SLEEP_S = 0.05

# Targets from issue 2.
TARGET_CHAIN_RATIO = 9.0  # smmf per-node overhead <= 1/9 of AWEL's on the chain
TARGET_SLEEP_MS = 60.0  # 20 x 50 ms branches finish within 60 ms
# Target from issue 15.
TARGET_FANOUT_US = 15.0  # smmf per-node overhead on the 100-wide fan-out + join


# --- the trivial work, shared by every framework ----------------------------


def inc(x):
    return x + 1


async def ainc(x):
    return x + 1


def total(*xs):
    return sum(xs)


async def slow(x):
    await asyncio.sleep(SLEEP_S)
    return x


Run = Callable[[Any], Awaitable[Any]]

#: width and branch function of each fan-out shape
FANS: dict[str, tuple[int, Callable[[Any], Any]]] = {
    "fanout": (FAN_W, inc),
    "afanout": (FAN_W, ainc),
    "sleep": (SLEEP_W, slow),
}


@dataclass
class Shape:
    key: str
    title: str
    nodes: int
    expected: Any
    unit: str  # "us/node" or "ms"
    warmup: int
    repeat: int


SHAPES = {
    "chain": Shape("chain", f"chain of {CHAIN_N} maps", CHAIN_N, CHAIN_N, "us/node", 5, 60),
    "fanout": Shape("fanout", f"fan-out {FAN_W} + join", FAN_W + 2, 2 * FAN_W, "us/node", 5, 60),
    "afanout": Shape(
        "afanout", f"async fan-out {FAN_W} + join", FAN_W + 2, 2 * FAN_W, "us/node", 5, 60
    ),
    "sleep": Shape(
        "sleep",
        f"{SLEEP_W} branches x {int(SLEEP_S * 1000)} ms",
        SLEEP_W + 2,
        SLEEP_W,
        "ms",
        1,
        7,
    ),
}


# --- smmf-flow ---------------------------------------------------------------


def build_smmf(shape: str) -> Run:
    from smmf_flow import DAG, JoinOperator, MapOperator

    if shape == "chain":
        with DAG("bench_chain") as dag:
            prev = MapOperator(inc, name="n0")
            for i in range(1, CHAIN_N):
                prev = prev >> MapOperator(inc, name=f"n{i}")
    elif shape in ("fanout", "afanout", "sleep"):
        width, fn = FANS[shape]
        with DAG(f"bench_{shape}") as dag:
            src = MapOperator(inc, name="src")
            branches = [MapOperator(fn, name=f"m{i}") for i in range(width)]
            src >> branches
            branches >> JoinOperator(total, name="join")
    else:  # pragma: no cover
        raise KeyError(shape)
    return dag.arun


# --- DB-GPT AWEL ---------------------------------------------------------------


def build_awel(shape: str) -> Run:
    from dbgpt.core.awel import DAG, JoinOperator, MapOperator

    if shape == "chain":
        with DAG("awel_bench_chain"):
            end = MapOperator(inc, task_name="n0")
            for i in range(1, CHAIN_N):
                end = end >> MapOperator(inc, task_name=f"n{i}")
    elif shape in ("fanout", "afanout", "sleep"):
        width, fn = FANS[shape]
        with DAG(f"awel_bench_{shape}"):
            src = MapOperator(inc, task_name="src")
            end = JoinOperator(total, task_name="join")
            for i in range(width):
                src >> MapOperator(fn, task_name=f"m{i}") >> end
    else:  # pragma: no cover
        raise KeyError(shape)

    async def run(x):
        return await end.call(call_data=x)

    return run


# --- LangChain LCEL ------------------------------------------------------------


def _build_lcel(shape: str, sync: bool) -> Run | None:
    from langchain_core.runnables import RunnableLambda, RunnableParallel, RunnableSequence

    step = inc if sync else ainc
    if shape == "chain":
        seq = RunnableSequence(*[RunnableLambda(step) for _ in range(CHAIN_N)])
    elif shape in ("fanout", "afanout", "sleep"):
        if shape != "fanout" and sync:
            return None  # a blocking sleep in a thread is a different benchmark
        width, fn = (FAN_W, step) if shape == "fanout" else FANS[shape]
        if sync:

            def join(d):
                return sum(d.values())

        else:

            async def join(d):
                return sum(d.values())

        seq = RunnableSequence(
            RunnableLambda(step),
            RunnableParallel({f"m{i}": RunnableLambda(fn) for i in range(width)}),
            RunnableLambda(join),
        )
    else:  # pragma: no cover
        raise KeyError(shape)
    return seq.ainvoke


def build_lcel(shape: str) -> Run | None:
    return _build_lcel(shape, sync=False)


def build_lcel_sync(shape: str) -> Run | None:
    return _build_lcel(shape, sync=True)


@dataclass
class Framework:
    key: str
    label: str
    module: str  # import to probe
    dist: str  # distribution name for the version
    build: Callable[[str], Run | None]


FRAMEWORKS = {
    "smmf": Framework("smmf", "smmf-flow", "smmf_flow", "smmf-flow", build_smmf),
    "awel": Framework("awel", "AWEL", "dbgpt.core.awel", "dbgpt", build_awel),
    "lcel": Framework("lcel", "LCEL", "langchain_core.runnables", "langchain-core", build_lcel),
    "lcel-sync": Framework(
        "lcel-sync", "LCEL(sync)", "langchain_core.runnables", "langchain-core", build_lcel_sync
    ),
}


def available(fw: Framework) -> str | None:
    """Return None if importable, else the reason it is skipped."""
    try:
        __import__(fw.module)
    except Exception as exc:  # any import failure means "skip"
        return f"{type(exc).__name__}: {exc}"
    return None


def version(fw: Framework) -> str:
    try:
        return importlib.metadata.version(fw.dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


# --- measuring -------------------------------------------------------------------


async def bench_shape(
    shape: Shape, fws: list[Framework], repeat: int, warmup: int
) -> dict[str, list[float]]:
    """Time every framework on one shape, round-robin; seconds per run."""
    runs: dict[str, Run] = {}
    for fw in fws:
        try:
            run = fw.build(shape.key)
        except Exception as exc:  # report and go on
            print(f"  {fw.label}: build failed for {shape.key}: {type(exc).__name__}: {exc}")
            continue
        if run is None:
            continue
        try:
            for _ in range(warmup):
                out = await run(0)
        except Exception as exc:
            print(f"  {fw.label}: run failed for {shape.key}: {type(exc).__name__}: {exc}")
            continue
        if out != shape.expected:
            print(
                f"  {fw.label}: wrong result for {shape.key}: {out!r} "
                f"(expected {shape.expected!r}); not timed"
            )
            continue
        runs[fw.key] = run

    times: dict[str, list[float]] = {k: [] for k in runs}
    gc.collect()
    clock = time.perf_counter
    for _ in range(repeat):
        for key, run in runs.items():
            t0 = clock()
            await run(0)
            times[key].append(clock() - t0)
    return times


def fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    if unit == "ms":
        return f"{v:.1f}"
    return f"{v:.1f}" if v < 1000 else f"{v:.0f}"


def summarise(shape: Shape, times: dict[str, list[float]]) -> dict[str, float]:
    """Median figure per framework, in the shape's unit."""
    out = {}
    for key, ts in times.items():
        med = statistics.median(ts)
        out[key] = med * 1e3 if shape.unit == "ms" else med * 1e6 / shape.nodes
    return out


def print_table(rows: list[tuple[Shape, dict[str, float]]], fws: list[Framework]) -> None:
    cols = [fw.label for fw in fws]
    peers = [fw for fw in fws if fw.key != "smmf"]
    ratio_cols = [f"{fw.label}/smmf" for fw in peers]
    head = f"{'shape':<26}{'unit':>9}{'nodes':>7}" + "".join(f"{c:>12}" for c in cols)
    head += "".join(f"{c:>16}" for c in ratio_cols)
    print(head)
    print("-" * len(head))
    for shape, figs in rows:
        line = f"{shape.title:<26}{shape.unit:>9}{shape.nodes:>7}"
        line += "".join(f"{fmt(figs.get(fw.key), shape.unit):>12}" for fw in fws)
        base = figs.get("smmf")
        for fw in peers:
            v = figs.get(fw.key)
            r = f"{v / base:.1f}x" if base and v is not None else "-"
            line += f"{r:>16}"
        print(line)


def print_targets(rows: list[tuple[Shape, dict[str, float]]]) -> None:
    figs = {shape.key: f for shape, f in rows}
    print()
    chain = figs.get("chain", {})
    if "smmf" in chain and "awel" in chain:
        ratio = chain["awel"] / chain["smmf"]
        ok = "PASS" if ratio >= TARGET_CHAIN_RATIO else "MISS"
        print(
            f"target chain: AWEL/smmf >= {TARGET_CHAIN_RATIO:.0f}x  -> {ratio:.1f}x  {ok} "
            f"(smmf {chain['smmf']:.1f} us/node, AWEL {chain['awel']:.1f} us/node)"
        )
    fan = figs.get("fanout", {})
    if "smmf" in fan:
        ok = "PASS" if fan["smmf"] <= TARGET_FANOUT_US else "MISS"
        peers = ", ".join(
            f"{key.upper()}/smmf {value / fan['smmf']:.1f}x"
            for key, value in fan.items()
            if key != "smmf"
        )
        print(
            f"target fan-out: <= {TARGET_FANOUT_US:.0f} us/node -> {fan['smmf']:.1f} us/node  "
            f"{ok}" + (f" ({peers})" if peers else "")
        )
    sleep = figs.get("sleep", {})
    if "smmf" in sleep:
        ok = "PASS" if sleep["smmf"] <= TARGET_SLEEP_MS else "MISS"
        print(
            f"target sleep: {SLEEP_W} x {int(SLEEP_S * 1000)} ms branches <= "
            f"{TARGET_SLEEP_MS:.0f} ms -> {sleep['smmf']:.1f} ms  {ok}"
        )


# --- profiling (smmf-flow or a peer) --------------------------------------------


def profile(shape_key: str, fw: Framework, runs: int, top: int) -> None:
    """cProfile `runs` runs of one framework on one shape; costs per node."""
    import cProfile
    import pstats

    shape = SHAPES[shape_key]
    run = fw.build(shape_key)
    if run is None:
        sys.exit(f"{fw.label} has no {shape_key} variant")

    async def many(n):
        for _ in range(n):
            await run(0)

    async def main():
        await many(5)  # warm-up
        gc.collect()
        t0 = time.perf_counter()
        await many(runs)
        plain = (time.perf_counter() - t0) / runs
        prof = cProfile.Profile()
        prof.enable()
        t0 = time.perf_counter()
        await many(runs)
        profiled = (time.perf_counter() - t0) / runs
        prof.disable()
        return plain, profiled, prof

    plain, profiled, prof = asyncio.run(main())
    per = runs * shape.nodes
    print(
        f"profile {fw.label} / {shape.title}: {runs} runs x {shape.nodes} nodes; "
        f"unprofiled {plain * 1e6 / shape.nodes:.1f} us/node, "
        f"under cProfile {profiled * 1e6 / shape.nodes:.1f} us/node "
        f"(cProfile inflates; read the shares)"
    )
    st = pstats.Stats(prof)
    entries = []
    total_tt = 0.0
    for (file, line, func), (cc, nc, tt, ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
        total_tt += tt
        entries.append((tt, ct, nc, cc, f"{_short(file)}:{line}({func})"))
    print(f"total own time {total_tt * 1e6 / per:.1f} us/node under cProfile\n")
    hdr = f"{'own us/node':>12}{'share':>7}{'cum us/node':>12}{'calls/node':>11}  function"
    for title, key in (("by own time", 0), ("by cumulative time", 1)):
        print(f"top {top} {title}:")
        print(hdr)
        for tt, ct, nc, _cc, name in sorted(entries, key=lambda e: e[key], reverse=True)[:top]:
            print(
                f"{tt * 1e6 / per:>12.2f}{tt / total_tt:>7.1%}{ct * 1e6 / per:>12.2f}"
                f"{nc / per:>11.2f}  {name}"
            )
        print()


def _short(path: str) -> str:
    for marker in ("site-packages/", "/smmf_flow/", "/lib/python"):
        i = path.find(marker)
        if i >= 0:
            return (
                path[i + len(marker) :]
                if marker != "/smmf_flow/"
                else "smmf_flow/" + path[i + len(marker) :]
            )
    return path


# --- main ------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--frameworks",
        default="smmf,awel,lcel",
        help="comma list of smmf, awel, lcel, lcel-sync (default: smmf,awel,lcel)",
    )
    ap.add_argument("--shapes", default="chain,fanout,afanout,sleep", help="comma list of shapes")
    ap.add_argument("--repeat", type=int, help="timed rounds per shape (default per shape)")
    ap.add_argument("--quick", action="store_true", help="few rounds, for a smoke run")
    ap.add_argument(
        "--profile", metavar="SHAPE", help="cProfile one framework on SHAPE instead of the table"
    )
    ap.add_argument("--profile-framework", default="smmf", help="framework for --profile")
    ap.add_argument("--profile-runs", type=int, default=50)
    ap.add_argument("--top", type=int, default=30, help="rows per profile listing")
    args = ap.parse_args()

    if args.profile:
        fw = FRAMEWORKS[args.profile_framework]
        reason = available(fw)
        if reason:
            sys.exit(f"{fw.label} not importable: {reason}")
        profile(args.profile, fw, args.profile_runs, args.top)
        return

    fws = []
    print(f"Python {platform.python_version()} ({platform.machine()}), asyncio loop")
    for key in args.frameworks.split(","):
        fw = FRAMEWORKS[key.strip()]
        reason = available(fw)
        if reason:
            print(f"  {fw.label:<11} skipped ({reason})")
        else:
            print(f"  {fw.label:<11} {version(fw)}")
            fws.append(fw)
    print()

    async def run_all():
        rows = []
        for key in args.shapes.split(","):
            shape = SHAPES[key.strip()]
            repeat = args.repeat or (max(3, shape.repeat // 6) if args.quick else shape.repeat)
            warmup = 1 if args.quick else shape.warmup
            times = await bench_shape(shape, fws, repeat, warmup)
            rows.append((shape, summarise(shape, times)))
        return rows

    rows = asyncio.run(run_all())
    print("median of rounds; us/node = run time / nodes; ms = wall time of one run\n")
    print_table(rows, fws)
    print_targets(rows)


if __name__ == "__main__":
    main()
