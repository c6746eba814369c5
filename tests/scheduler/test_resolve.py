"""The scheduler: every model name of a flow is resolved before anything runs."""

import gc
import weakref
from typing import Any

import pytest

from smmf_flow import DAG, MapOperator, RunContext, Trace
from smmf_flow.errors import FlowError, ModelKindMismatch, ModelNotFound
from smmf_flow.models.registry import ModelRegistry
from smmf_flow.operators import (
    EmbeddingOperator,
    FallbackOperator,
    LLMOperator,
    PromptOperator,
    RouterOperator,
)
from smmf_flow.scheduler import (
    Binding,
    FallbackWorker,
    NodePlan,
    PoolChatWorker,
    RouteWorker,
    Scheduler,
    plan,
    scheduler_for,
)
from smmf_flow.scheduler.fallback_policy import DEFAULT_ON


def one_node(op_factory: Any) -> DAG:
    with DAG("one") as dag:
        op_factory()
    return dag


def test_an_unknown_model_fails_validation_with_the_closest_name(real_registry: Any) -> None:
    with DAG("typo") as dag:
        PromptOperator("{{ q }}", name="prompt") >> LLMOperator("smolm2", name="answer")
    with pytest.raises(
        ModelNotFound,
        match=r"node 'answer': unknown model 'smolm2'; did you "
        r"mean 'smollm2'.*\(known models: .*smollm2",
    ) as err:
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


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: RouterOperator([{"model": "smollm2"}], default="larg"), "unknown model 'larg'"),
        (
            lambda: RouterOperator(
                default="smollm2", classifier={"model": "clasifier", "labels": ["a", "b"]}
            ),
            "unknown model 'clasifier'",
        ),
        (lambda: EmbeddingOperator("minilm2"), "unknown model 'minilm2'; did you mean 'minilm'"),
    ],
)
def test_every_model_a_node_names_is_checked(real_registry: Any, make: Any, message: str) -> None:
    with pytest.raises(ModelNotFound, match=message):
        one_node(make).validate(real_registry)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: LLMOperator("minilm", name="gen"),
            "node 'gen': model 'minilm' is an embedding model and cannot be used for generation",
        ),
        (
            lambda: FallbackOperator(["smollm2", "minilm"], name="gen"),
            "node 'gen': model 'minilm' is an embedding model and cannot be used for generation",
        ),
        (
            lambda: RouterOperator(default="minilm", name="gen"),
            "node 'gen': model 'minilm' is an embedding model",
        ),
        (
            lambda: EmbeddingOperator("smollm2", name="vec"),
            "node 'vec': model 'smollm2' is an LLM model and cannot be used for embeddings",
        ),
        (
            lambda: EmbeddingOperator("chat", name="vec"),
            "node 'vec': 'chat' is a model group; groups serve generation, not embeddings",
        ),
    ],
)
def test_a_model_of_the_wrong_kind_fails_validation(
    real_registry: Any, make: Any, message: str
) -> None:
    with pytest.raises(ModelKindMismatch, match=message):
        one_node(make).validate(real_registry)


def test_nodes_that_name_no_model_get_the_registry_defaults(real_registry: Any) -> None:
    with DAG("defaults") as dag:
        MapOperator(str, name="text") >> [LLMOperator(name="gen"), EmbeddingOperator(name="vec")]
    rows = {row.node: row for row in plan(dag, real_registry)}
    gen, vec = rows["gen"].bindings[0], rows["vec"].bindings[0]
    assert (gen.requested, gen.name, gen.kind, gen.provider) == (
        None,
        "smollm2",
        "llm",
        "llama.cpp",
    )
    assert (vec.requested, vec.name, vec.kind, vec.provider) == (
        None,
        "minilm",
        "embedding",
        "sentence-transformers",
    )
    assert gen.describe() == "smollm2 (default llm) → llama.cpp ×1 (round_robin)"


@pytest.mark.anyio
async def test_without_a_default_an_unnamed_model_is_an_error(
    make_registry: Any, llama_entry: Any
) -> None:
    registry = make_registry({"models": {"llms": [llama_entry("only")]}})
    with pytest.raises(
        FlowError,
        match=r"node 'gen': no model named and the model config "
        r"sets no \[models\] default_llm",
    ):
        one_node(lambda: LLMOperator(name="gen")).validate(registry)
    with pytest.raises(FlowError, match=r"default_embedding"):
        one_node(lambda: EmbeddingOperator(name="vec")).validate(registry)


def test_the_plan_describes_node_model_provider_and_pool(real_registry: Any) -> None:
    with DAG("planned") as dag:
        prompt = PromptOperator("{{ q }}", name="prompt")
        prompt >> RouterOperator(
            [{"model": "smollm2-small", "when": {"fits_context": True}}],
            default="chat",
            name="route",
        )
    rows = plan(dag, real_registry)
    assert [(r.node, r.operator) for r in rows] == [("route", "RouterOperator")]
    small, chat = rows[0].bindings
    assert small == Binding(
        "smollm2-small",
        "smollm2-small",
        "llm",
        provider="llama.cpp",
        instances=1,
        strategy="round_robin",
    )
    assert chat.kind == "group" and chat.strategy == "fallback"
    assert [(m.name, m.provider, m.instances) for m in chat.members] == [
        ("unreachable-proxy", "proxy/openai", 1),
        ("smollm2", "llama.cpp", 1),
    ]
    assert chat.describe() == (
        "chat → fallback group [unreachable-proxy → proxy/openai ×1 (round_robin), "
        "smollm2 → llama.cpp ×1 (round_robin)]"
    )
    assert chat.as_dict()["members"][1]["provider"] == "llama.cpp"
    assert isinstance(rows[0], NodePlan)


@pytest.mark.anyio
async def test_validating_and_planning_load_nothing(
    make_registry: Any, llama_entry: Any, minilm_entry: dict[str, Any]
) -> None:
    registry = make_registry(
        {
            "models": {
                "llms": [llama_entry("smollm2")],
                "embeddings": [minilm_entry],
                "groups": [{"name": "g", "members": ["smollm2"]}],
            }
        }
    )
    with DAG("lazy") as dag:
        MapOperator(str) >> [LLMOperator("g"), EmbeddingOperator("minilm")]
    dag.validate(registry)
    plan(dag, registry)
    assert {row.name: row.status for row in registry.list() if row.kind != "group"} == {
        "smollm2": "not loaded",
        "minilm": "not loaded",
    }


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
    make_registry: Any, llama_entry: Any
) -> None:
    registry = make_registry(
        {
            "models": {
                "llms": [llama_entry("a"), llama_entry("b")],
                "groups": [
                    {
                        "name": "picky",
                        "members": ["a", "b"],
                        "on": ["timeout"],
                        "chunk_timeout": 2.5,
                        "max_depth": 2,
                    },
                    {"name": "plain", "members": ["b", "a"]},
                ],
            }
        }
    )
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
        PromptOperator("Say hello to {{ who }}.") >> LLMOperator("chat", name="gen", max_tokens=8)
    trace = Trace()
    answer = await dag.arun({"who": "Ada"}, registry=real_registry, trace=trace)
    assert answer.model == "smollm2" and answer.text
    events = trace["gen"].events
    tried = [e for e in events if e.get("model") == "unreachable-proxy"]
    assert tried and tried[0]["event"] in ("fallback", "fallback_skip")
    assert {"event": "fallback_served", "model": "smollm2"} in events or tried[0][
        "event"
    ] == "fallback_skip"


@pytest.mark.anyio
async def test_a_route_group_picks_the_member_whose_window_fits(real_registry: Any) -> None:
    with DAG("sized") as dag:
        LLMOperator("sized", name="gen", max_tokens=4)
    short_trace, long_trace = Trace(), Trace()
    short = await dag.arun("Hi!", registry=real_registry, trace=short_trace)
    long = await dag.arun(
        "Summarise: " + "the cat sat on the mat. " * 40, registry=real_registry, trace=long_trace
    )
    assert short.model == "smollm2-small"
    assert long.model == "smollm2"
    short_route = next(e for e in short_trace["gen"].events if e["event"] == "route")
    long_route = next(e for e in long_trace["gen"].events if e["event"] == "route")
    assert short_route["model"] == "smollm2-small"
    assert short_route["reason"].endswith("window 256")
    assert long_route["model"] == "smollm2"


def test_without_a_registry_a_model_flow_fails_before_anything_runs() -> None:
    """No hidden default: the error names the node and says what to pass."""
    ran: list[str] = []
    with DAG("no-registry") as dag:
        MapOperator(lambda q: ran.append(q) or q, name="first") >> LLMOperator(
            "smollm2", name="gen"
        )
    expected = (
        r"node 'gen': no model registry was given; pass "
        r"registry=ModelRegistry\.default\(\) \(or ModelRegistry\.from_toml\(PATH\)\)"
    )
    with pytest.raises(FlowError, match=expected) as error:
        dag.validate()
    assert (error.value.node, error.value.param) == ("gen", "model")
    with pytest.raises(FlowError, match=expected):
        dag.run("hello")
    assert ran == []
    with pytest.raises(FlowError, match="no model registry was given"):
        scheduler_for(None)
    with DAG("no-models") as plain:
        MapOperator(str.upper, name="up")
    assert plain.run("needs none") == "NEEDS NONE"


def test_closing_a_registry_drops_its_scheduler_and_the_workers_made_from_it(
    llama_entry: Any,
) -> None:
    op = LLMOperator("smollm2", name="gen")
    one_node(lambda: op)
    with ModelRegistry.from_dict({"models": {"llms": [llama_entry("smollm2")]}}) as registry:
        scheduler = scheduler_for(registry)
        worker = op.worker(RunContext(Trace(), registry=registry))
        assert registry.attachments == {Scheduler: scheduler}
        assert op.worker(RunContext(Trace(), registry=registry)) is worker
    assert registry.attachments == {}
    fresh = op.worker(RunContext(Trace(), registry=registry))
    assert scheduler_for(registry) is not scheduler and fresh is not worker
    assert fresh.pool is registry.pool("smollm2") and fresh.pool is not worker.pool
    registry.close()


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
    registry = ModelRegistry.from_dict(
        {
            "models": {
                "embeddings": [
                    {
                        **minilm_entry,
                        "batch_size": 16,
                        "max_batch_wait_ms": 7,
                        "instances": 2,
                        "concurrency": 2,
                    }
                ]
            }
        }
    )
    batcher = scheduler_for(registry).embedding_worker("minilm").batcher
    assert (batcher.max_batch, batcher.max_wait, batcher.max_concurrent) == (16, 0.007, 4)
    assert batcher.model == "minilm"
    assert scheduler_for(registry).embedding_worker("minilm").batcher is batcher
