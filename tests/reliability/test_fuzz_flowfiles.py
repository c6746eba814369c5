"""Fuzzing flow files through ``smmf-flow validate``.

Hypothesis writes random YAML (structure, raw text, flow-shaped documents) and
random mutations of the shipped ``flows/*.yaml`` (wrong types, unknown and
missing fields, odd unicode, deep nesting, huge numbers, bad edges, cycles,
broken text). The property: a good file validates (exit 0); a bad one exits 2
with ONE line on stderr, ``error: FILE:LINE:COL: ...`` — never a traceback,
never exit 1 or another code, never a hang. The command runs in-process (fast);
a handful of hostile files also go through a real subprocess.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from smmf_flow.flowfile.loader import FlowLoader

from .fuzzing import FUZZ, MUTATIONS, mutate, odd_text, smmf_in_process, write

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p for p in (ROOT / "flows").glob("*.yaml") if ".input." not in p.name)
COMMAND = Path(sys.executable).with_name("smmf-flow")


def check_verdict(path: Path, code: int, err: str) -> None:
    """The property every flow file must meet."""
    assert "Traceback" not in err and "internal error" not in err, err
    assert code in (0, 2), f"exit {code}: {err}"
    if code == 0:
        return
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert re.match(rf"^error: {re.escape(str(path))}:\d+:\d+: \S", lines[0]), lines[0]


def validate(path: Path, text: str | bytes) -> tuple[int, str]:
    code, _, err = smmf_in_process("validate", str(write(path, text)))
    check_verdict(path, code, err)
    return code, err


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of ``flows/`` (with its plugin module) and ``configs/``, so a mutated
    flow sits where the original sits and finds what it names."""
    root = tmp_path_factory.mktemp("fuzz")
    shutil.copytree(ROOT / "flows", root / "flows")
    shutil.copytree(ROOT / "configs", root / "configs")
    return root / "flows"


# --- values --------------------------------------------------------------------------

FIELDS = [
    "version",
    "name",
    "description",
    "models",
    "plugins",
    "inputs",
    "nodes",
    "edges",
    "output",
    "stream",
    "type",
    "after",
    "timeout",
    "retry",
    "attempts",
    "on",
    "expr",
    "function",
    "template",
    "system",
    "model",
    "max_tokens",
    "temperature",
    "branches",
    "when",
    "to",
    "default",
    "tools",
    "value",
    "items",
    "store",
    "input_key",
    "model_retry",
    "models",
    "k",
]
TYPES = [
    "input",
    "map",
    "branch",
    "join",
    "streamify",
    "unstreamify",
    "transform_stream",
    "reduce_stream",
    "prompt",
    "llm",
    "embedding",
    "router",
    "fallback",
    "splitter",
    "indexer",
    "retriever",
    "answer",
    "agent",
    "nope",
]
names = st.sampled_from(["a", "b", "c", "prompt", "answer", "x-1", "_y"]) | odd_text
huge_ints = st.sampled_from([2**63, -(2**64), 10**400, 10**4299])
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | huge_ints
    | st.floats(allow_nan=True, allow_infinity=True)
    | odd_text
    | st.sampled_from(
        TYPES
        + FIELDS
        + [
            "a >> b",
            "b >> a",
            "a >> a",
            "[a, b] >> c",
            "{{ input }}",
            "{{",
            "input | upper",
            "agent_tools:calculator",
            "os:system",
            "agent_tools:__builtins__.eval",
        ]
    )
)
keys = st.sampled_from(FIELDS) | odd_text
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)

expressions = st.sampled_from(
    [
        "input",
        "input | upper",
        "inputs | join",
        "acc + chunk",
        "input * 3",
        "{{",
        "nope(",
        "input.__class__",
        "9 ** (9 ** 9)",
    ]
)
node_specs = st.fixed_dictionaries(
    {"type": st.sampled_from(TYPES)},
    optional={
        "expr": expressions | values,
        "function": values,
        "model": names | values,
        "template": expressions | values,
        "after": names | values,
        "timeout": values,
        "retry": values,
        "branches": values,
        "default": names,
        "tools": values,
        "value": values,
        "items": values,
        "models": values,
    },
)
inputs = st.dictionaries(
    names, st.sampled_from(["str", "int", "list", "any", "nope"]) | values, max_size=3
)
flow_docs = st.fixed_dictionaries(
    {"nodes": st.dictionaries(names, node_specs, min_size=1, max_size=4)},
    optional={
        "version": st.just(1) | values,
        "name": odd_text | values,
        "inputs": inputs | values,
        "output": names,
        "stream": st.booleans() | values,
        "edges": st.lists(scalars, max_size=4),
        "plugins": values,
    },
)


def dump(data: Any) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def load(path: Path) -> Any:
    """A shipped flow as data, read as the flow loader reads it (``on:`` a string)."""
    return yaml.load(path.read_text(encoding="utf-8"), Loader=FlowLoader)


def graph_mutation(data: dict[str, Any], kind: str, first: int, second: int, name: str) -> None:
    """Bad edges and cycles between the flow's own nodes (``first``, ``second``
    pick them; ``name`` is a node name that may not exist)."""
    nodes = list(data["nodes"])
    a, b = nodes[first % len(nodes)], nodes[second % len(nodes)]
    edges = data.setdefault("edges", [])
    if kind == "cycle":
        edges += [f"{a} >> {b}", f"{b} >> {a}"]
    elif kind == "self":
        edges.append(f"{a} >> {a}")
    elif kind == "unknown":
        edges.append(f"{a} >> {name}")
    elif kind == "syntax":
        edges.append(f"{a} -> {b}")
    elif kind == "after":
        data["nodes"][a]["after"] = [b, name]


# --- the properties ------------------------------------------------------------------


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_flow_validates(path: Path) -> None:
    code, out, err = smmf_in_process("validate", str(path))
    assert (code, err) == (0, ""), err
    assert ": ok — flow " in out


@FUZZ
@given(text=st.text(max_size=200))
def test_random_text(folder: Path, text: str) -> None:
    validate(folder / "fuzz.yaml", text)


@FUZZ
@given(data=values)
def test_random_yaml_structure(folder: Path, data: Any) -> None:
    validate(folder / "fuzz.yaml", dump(data))


@FUZZ
@given(doc=flow_docs)
def test_random_flow_shaped_documents(folder: Path, doc: dict[str, Any]) -> None:
    validate(folder / "fuzz.yaml", dump(doc))


@FUZZ
@given(
    source=st.sampled_from(SHIPPED),
    pick=st.integers(0, 10**6),
    how=st.sampled_from(MUTATIONS),
    new=values,
)
def test_mutated_shipped_flows(folder: Path, source: Path, pick: int, how: str, new: Any) -> None:
    validate(
        folder / source.name.replace(".yaml", ".fuzz.yaml"),
        dump(mutate(load(source), pick, how, new, deepest=120)),
    )


@FUZZ
@given(
    source=st.sampled_from(SHIPPED),
    kind=st.sampled_from(["cycle", "self", "unknown", "syntax", "after"]),
    first=st.integers(0, 9),
    second=st.integers(0, 9),
    name=names,
)
def test_bad_edges_and_cycles_in_shipped_flows(
    folder: Path, source: Path, kind: str, first: int, second: int, name: str
) -> None:
    flow = load(source)
    graph_mutation(flow, kind, first, second, name)
    code, _ = validate(folder / source.name.replace(".yaml", ".fuzz.yaml"), dump(flow))
    if kind in ("cycle", "self", "syntax"):
        assert code == 2, f"a {kind} edge was accepted"


@FUZZ
@given(
    source=st.sampled_from(SHIPPED),
    at=st.integers(0, 10**6),
    insert=st.text(st.characters(exclude_categories=("Cs",)), max_size=6),
    cut=st.integers(0, 12),
)
def test_broken_text_of_shipped_flows(
    folder: Path, source: Path, at: int, insert: str, cut: int
) -> None:
    text = source.read_text(encoding="utf-8")
    at %= len(text) + 1
    validate(
        folder / source.name.replace(".yaml", ".fuzz.yaml"), text[:at] + insert + text[at + cut :]
    )


@FUZZ
@given(
    source=st.sampled_from(SHIPPED),
    at=st.integers(0, 10**6),
    junk=st.binary(min_size=1, max_size=4),
)
def test_bytes_that_are_not_utf8(folder: Path, source: Path, at: int, junk: bytes) -> None:
    raw = source.read_bytes()
    at %= len(raw) + 1
    validate(folder / source.name.replace(".yaml", ".fuzz.yaml"), raw[:at] + junk + raw[at:])


# --- a handful through the real command ----------------------------------------------

HOSTILE = {
    "laughs": "a: &a [x, x, x, x, x, x, x, x, x]\n"
    + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in itertools.pairwise("abcdefghi")
    )
    + "nodes: *i\n",
    "deep": "nodes:\n  a: {type: map, expr: input, x: " + "[" * 500 + "]" * 500 + "}\n",
    "nul": 'nodes:\n  a: {type: map, expr: "in\x00put"}\n',
    "tag": "nodes:\n  a: {type: map, expr: input, timeout: !!float abc}\n",
    "digits": "nodes:\n  a: {type: map, expr: input, timeout: " + "9" * 5000 + "}\n",
    "dunder": "nodes:\n  a: {type: map, function: 'agent_tools:__builtins__.eval'}\n"
    "plugins: [agent_tools]\n",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_files_through_a_real_subprocess(folder: Path, name: str) -> None:
    path = write(folder / f"hostile-{name}.yaml", HOSTILE[name])
    env = {k: v for k, v in os.environ.items() if k != "SMMF_MODELS"}
    done = subprocess.run(
        [str(COMMAND), "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
    )
    check_verdict(path, done.returncode, done.stderr)
    assert done.returncode == 2
