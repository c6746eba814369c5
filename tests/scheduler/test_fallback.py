"""``FallbackWorker``: models tried in order, and answers that survive a model dying
mid-stream, on real SmolLM2 instances (``dying`` breaks off after 3 chunks, ``dead``
before its first; see ``tests/conftest.py``)."""

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from draining import drain

from smmf_flow.dag import RetryPolicy
from smmf_flow.errors import (
    BackendConnectionError,
    BackendTimeout,
    ContextWindowExceeded,
    PoolBusy,
    RateLimited,
    WorkerUnavailable,
)
from smmf_flow.models.backends.base import Capabilities
from smmf_flow.models.types import ChatChunk, ChatRequest, ChatResult, Usage
from smmf_flow.scheduler import ChatWorker, FallbackPolicy, FallbackWorker, scheduler_for

pytestmark = pytest.mark.anyio

QUESTION = ChatRequest.of("Describe the sea in two sentences.", max_tokens=20, temperature=0)


class Notes(list[dict[str, Any]]):
    """A ``note`` callback that keeps what the worker noted."""

    def __call__(self, event: str, **details: Any) -> None:
        self.append({"event": event, **details})

    def of(self, event: str) -> list[dict[str, Any]]:
        return [n for n in self if n["event"] == event]


def chain(registry: Any, *names: str, **policy: Any) -> FallbackWorker:
    scheduler = scheduler_for(registry)
    return FallbackWorker("fb", [scheduler.chat_worker(n) for n in names], FallbackPolicy(**policy))


async def collect(stream: AsyncIterator[ChatChunk]) -> list[ChatChunk]:
    return [chunk async for chunk in stream]


@pytest.fixture(scope="module")
async def greedy(real_registry: Any) -> ChatResult:
    """SmolLM2's own greedy answer to QUESTION (cut by max_tokens), from its pool."""
    return await real_registry.pool("smollm2").chat(QUESTION)


@pytest.fixture(scope="module")
async def greedy_whole(real_registry: Any) -> ChatResult:
    """The same answer with room to finish on its own."""
    return await real_registry.pool("smollm2").chat(QUESTION.model_copy(update={"max_tokens": 64}))


def text_by_model(chunks: list[ChatChunk]) -> dict[str, str]:
    out: dict[str, str] = {}
    for chunk in chunks:
        out[chunk.model] = out.get(chunk.model, "") + chunk.text
    return out


@pytest.mark.parametrize("whole", [False, True], ids=["cut-by-max-tokens", "stops-itself"])
async def test_a_stream_that_dies_midway_is_continued_without_repeats(
    real_registry: Any, greedy: ChatResult, greedy_whole: ChatResult, whole: bool
) -> None:
    expected = greedy_whole if whole else greedy
    assert expected.finish_reason == ("stop" if whole else "length")
    notes = Notes()
    request = QUESTION.model_copy(update={"max_tokens": 64}) if whole else QUESTION
    chunks = await collect(chain(real_registry, "dying", "smollm2").stream(request, notes))
    text = "".join(c.text for c in chunks)
    # prefix + continuation; llama.cpp continues the exact token sequence, so with
    # the same weights and greedy decoding the seam is invisible, and max_tokens
    # bounds the whole answer, not each model's part
    assert text == expected.text
    assert chunks[-1].finish_reason == expected.finish_reason
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == expected.usage.completion_tokens
    died, continued = notes.of("span")
    cut = died["end"]
    assert died == {"event": "span", "model": "dying", "start": 0, "end": cut, "complete": False}
    assert continued == {
        "event": "span",
        "model": "smollm2",
        "start": cut,
        "end": len(text),
        "complete": True,
    }
    assert 0 < cut < len(text)
    by_model = text_by_model(chunks)
    assert by_model == {"dying": text[:cut], "smollm2": text[cut:]}
    [fallback] = notes.of("fallback")
    assert fallback["model"] == "dying" and fallback["kind"] == "unavailable"
    assert fallback["error"] == "BackendConnectionError" and fallback["delivered_chars"] == cut
    assert fallback["action"] == "next"


async def test_a_model_that_fails_before_its_first_chunk_is_simply_replaced(
    real_registry: Any, greedy: ChatResult
) -> None:
    notes = Notes()
    chunks = await collect(chain(real_registry, "dead", "smollm2").stream(QUESTION, notes))
    assert "".join(c.text for c in chunks) == greedy.text
    assert {c.model for c in chunks} == {"smollm2"}
    assert notes.of("span") == [
        {"event": "span", "model": "smollm2", "start": 0, "end": len(greedy.text), "complete": True}
    ]
    assert notes.of("fallback")[0]["delivered_chars"] == 0


async def test_an_answer_survives_two_deaths_in_a_row(
    real_registry: Any, greedy: ChatResult
) -> None:
    notes = Notes()
    worker = chain(real_registry, "dying", "dead", "smollm2")
    chunks = await collect(worker.stream(QUESTION, notes))
    assert "".join(c.text for c in chunks) == greedy.text
    assert [(n["model"], n["complete"]) for n in notes.of("span")] == [
        ("dying", False),
        ("smollm2", True),
    ]
    assert [n["model"] for n in notes.of("fallback")] == ["dying", "dead"]


async def test_a_retried_model_continues_its_own_answer(
    real_registry: Any, greedy: ChatResult
) -> None:
    notes = Notes()
    worker = chain(real_registry, "dying", "smollm2", retry=RetryPolicy(attempts=2, backoff=0.0))
    chunks = await collect(worker.stream(QUESTION, notes))
    assert "".join(c.text for c in chunks) == greedy.text
    spans = notes.of("span")
    assert [(s["model"], s["complete"]) for s in spans] == [
        ("dying", False),
        ("dying", False),
        ("smollm2", True),
    ]
    assert spans[0]["end"] == spans[1]["start"] and spans[1]["end"] == spans[2]["start"]
    assert [(n["attempt"], n["action"]) for n in notes.of("fallback")] == [
        (1, "retry"),
        (2, "next"),
    ]


async def test_when_every_model_fails_the_error_names_each(real_registry: Any) -> None:
    worker = chain(real_registry, "dying", "dead")
    got: list[ChatChunk] = []
    with pytest.raises(
        WorkerUnavailable,
        match=r"all models of 'fb' failed: dying: "
        r"BackendConnectionError: .*; dead: "
        r"BackendConnectionError",
    ):
        await drain(worker.stream(QUESTION), into=got)
    assert got  # the consumer had the first model's text before the error


async def test_a_prompt_too_long_moves_on_to_a_model_with_a_larger_window(
    real_registry: Any,
) -> None:
    notes = Notes()
    scheduler = scheduler_for(real_registry)
    small = scheduler.chat_worker("smollm2-small")
    worker = FallbackWorker(
        "fb", [small, small, scheduler.chat_worker("smollm2")], FallbackPolicy()
    )
    long = ChatRequest.of("Summarise: " + "the cat sat on the mat. " * 40, max_tokens=4)
    result = await worker.chat(long, notes)
    assert result.model == "smollm2"
    assert notes.of("fallback")[0]["kind"] == "context_window"
    assert notes.of("fallback")[0]["action"] == "bigger"
    assert notes.of("fallback_skip") == [
        {
            "event": "fallback_skip",
            "model": "smollm2-small",
            "reason": "context window 256 too small",
        }
    ]
    assert notes.of("fallback_served") == [{"event": "fallback_served", "model": "smollm2"}]


async def test_whole_answers_fall_back_too(real_registry: Any, greedy: ChatResult) -> None:
    notes = Notes()
    result = await chain(real_registry, "dead", "smollm2").chat(QUESTION, notes)
    assert result.text == greedy.text and result.model == "smollm2"
    assert [n["event"] for n in notes] == ["fallback", "fallback_served"]


async def test_the_depth_cap_stops_the_chain(real_registry: Any) -> None:
    worker = chain(real_registry, "dead", "smollm2", max_depth=1)
    with pytest.raises(WorkerUnavailable, match=r"all models of 'fb' failed: dead: "):
        await worker.chat(QUESTION)


async def test_errors_outside_on_are_raised_at_once(real_registry: Any) -> None:
    worker = chain(real_registry, "dead", "smollm2", on=("timeout",))
    with pytest.raises(BackendConnectionError, match="connection reset after 0 chunks"):
        await collect(worker.stream(QUESTION))
    worker = chain(real_registry, "smollm2-small", "smollm2", on=("unavailable",))
    with pytest.raises(ContextWindowExceeded, match="context window holds 256"):
        await worker.chat(ChatRequest.of("word " * 300, max_tokens=4))


# --- the pure parts of continuation, on scripted workers ---------------------------------


class Scripted(ChatWorker):
    """Yields ``pieces`` (one chunk each), then raises ``error`` if given; a whole
    answer is the pieces joined, or the error."""

    def __init__(
        self, name: str, pieces: list[str], error: Exception | None = None, *, prefix: str = "exact"
    ) -> None:
        self.name, self.pieces, self.error = name, pieces, error
        self.prefix = prefix
        self.requests: list[ChatRequest] = []
        self.chunk_timeouts: list[float | None] = []

    @property
    def context_length(self) -> int:
        return 2048

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(prefix=self.prefix)  # type: ignore[arg-type]

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    async def chat(self, request: ChatRequest, note: Any = None) -> ChatResult:
        self.requests.append(request)
        if self.error is not None:
            raise self.error
        return ChatResult("".join(self.pieces), model=self.name)

    async def stream(
        self, request: ChatRequest, note: Any = None, *, chunk_timeout: float | None = None
    ) -> AsyncIterator[ChatChunk]:
        self.requests.append(request)
        self.chunk_timeouts.append(chunk_timeout)
        for i, piece in enumerate(self.pieces):
            last = i == len(self.pieces) - 1 and self.error is None
            yield ChatChunk(
                piece,
                finish_reason="stop" if last else None,
                usage=Usage(7, len(self.pieces)) if last else None,
                model=self.name,
            )
        if self.error is not None:
            raise self.error


def broken(name: str, pieces: list[str], **kw: Any) -> Scripted:
    return Scripted(name, pieces, BackendConnectionError(f"{name} dropped"), **kw)


async def test_the_next_model_gets_the_text_so_far_and_the_tokens_left() -> None:
    first = broken("first", ["one ", "two "])
    second = Scripted("second", ["three"])
    request = ChatRequest.of("count", max_tokens=10, assistant_prefix="zero ")
    chunks = await collect(FallbackWorker("fb", [first, second], FallbackPolicy()).stream(request))
    assert "".join(c.text for c in chunks) == "one two three"
    [asked] = second.requests
    assert asked.assistant_prefix == "zero one two "
    assert asked.max_tokens == 8  # 10 minus the two words 'first' wrote
    assert chunks[-1].usage == Usage(7, 1 + 2)  # the whole answer's tokens
    assert request.assistant_prefix == "zero " and request.max_tokens == 10  # untouched


async def test_a_model_that_cannot_continue_is_skipped_once_text_was_delivered() -> None:
    notes = Notes()
    first = broken("first", ["one "])
    no_prefix = Scripted("no-prefix", ["never"], prefix="none")
    last = Scripted("last", ["two"])
    chunks = await collect(
        FallbackWorker("fb", [first, no_prefix, last], FallbackPolicy()).stream(
            ChatRequest.of("count"), notes
        )
    )
    assert "".join(c.text for c in chunks) == "one two"
    assert no_prefix.requests == []
    assert notes.of("fallback_skip") == [
        {
            "event": "fallback_skip",
            "model": "no-prefix",
            "reason": "cannot continue a partial answer",
        }
    ]


async def test_a_model_that_cannot_continue_is_not_retried_after_partial_text() -> None:
    notes = Notes()
    first = broken("first", ["one "], prefix="none")
    last = Scripted("last", ["two"])
    policy = FallbackPolicy(retry=RetryPolicy(attempts=3, backoff=0.0))
    chunks = await collect(
        FallbackWorker("fb", [first, last], policy).stream(ChatRequest.of("count"), notes)
    )
    assert "".join(c.text for c in chunks) == "one two"  # not "one one one two"
    assert len(first.requests) == 1


async def test_a_model_that_can_start_over_is_used_when_nothing_was_delivered() -> None:
    first = broken("first", [])
    no_prefix = Scripted("no-prefix", ["fresh"], prefix="none")
    chunks = await collect(
        FallbackWorker("fb", [first, no_prefix], FallbackPolicy()).stream(ChatRequest.of("count"))
    )
    assert "".join(c.text for c in chunks) == "fresh"
    assert no_prefix.requests[0].assistant_prefix is None


async def test_an_answer_cut_after_its_last_token_ends_without_another_model() -> None:
    notes = Notes()
    first = broken("first", ["one ", "two ", "three"])
    second = Scripted("second", ["four"])
    chunks = await collect(
        FallbackWorker("fb", [first, second], FallbackPolicy()).stream(
            ChatRequest.of("count", max_tokens=3), notes
        )
    )
    assert "".join(c.text for c in chunks) == "one two three"
    assert chunks[-1].finish_reason == "length"
    assert second.requests == []


async def test_a_consumer_that_stops_early_frees_the_model_at_once(real_registry: Any) -> None:
    stream = chain(real_registry, "dead", "smollm2").stream(QUESTION)
    async for _ in stream:
        break
    await stream.aclose()  # type: ignore[attr-defined]
    [instance] = real_registry.pool("smollm2").stats().instances
    assert instance.in_flight == 0


class Hanging(Scripted):
    """Yields its pieces, then stalls without failing (a stalled server); given a
    ``chunk_timeout`` it fails as a pool's stream does once that has passed."""

    async def stream(
        self, request: ChatRequest, note: Any = None, *, chunk_timeout: float | None = None
    ) -> AsyncIterator[ChatChunk]:
        self.requests.append(request)
        self.chunk_timeouts.append(chunk_timeout)
        for piece in self.pieces:
            yield ChatChunk(piece, model=self.name)
        if chunk_timeout is None:
            await anyio.sleep_forever()
        await anyio.sleep(chunk_timeout)
        raise BackendTimeout(f"model '{self.name}' sent no chunk for {chunk_timeout:g}s")


@pytest.mark.parametrize(
    ("policy", "given", "used"),
    [(0.2, None, 0.2), (None, 0.2, 0.2), (5.0, 0.2, 0.2), (0.2, 5.0, 0.2)],
)
async def test_a_stream_that_stalls_midway_falls_through_after_chunk_timeout(
    policy: float | None, given: float | None, used: float
) -> None:
    """The chain hands the sooner of its own and its caller's limit to each member
    (whose pool enforces it, see tests/models/test_health.py), and a stall falls
    through like any failure."""
    notes = Notes()
    first = Hanging("first", ["one ", "two "])
    second = Scripted("second", ["three"])
    worker = FallbackWorker("fb", [first, second], FallbackPolicy(chunk_timeout=policy))
    with anyio.fail_after(5):
        chunks = await collect(worker.stream(ChatRequest.of("count"), notes, chunk_timeout=given))
    assert "".join(c.text for c in chunks) == "one two three"
    assert second.requests[0].assistant_prefix == "one two "
    assert first.chunk_timeouts == second.chunk_timeouts == [used]
    [fallback] = notes.of("fallback")
    assert fallback["error"] == "BackendTimeout" and fallback["kind"] == "timeout"
    assert f"sent no chunk for {used:g}s" in fallback["message"]


def busy(name: str, retry_after: float) -> Scripted:
    return Scripted(
        name, [], PoolBusy(f"model '{name}' is busy", retry_after=retry_after, model=name)
    )


@pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])
async def test_when_every_model_is_busy_the_chain_is_busy_with_the_soonest_retry(
    streamed: bool,
) -> None:
    worker = FallbackWorker(
        "fb", [busy("a", 3.0), busy("b", 0.5), busy("c", 2.0)], FallbackPolicy()
    )
    request = ChatRequest.of("count")
    call = collect(worker.stream(request)) if streamed else worker.chat(request)
    with pytest.raises(
        PoolBusy,
        match=r"every model of 'fb' is busy: a: PoolBusy: model 'a' "
        r"is busy; b: PoolBusy: .*; c: PoolBusy",
    ) as info:
        await call
    assert info.value.retry_after == 0.5 and info.value.model == "fb"


async def test_a_chain_of_busy_and_rate_limited_models_is_busy_too() -> None:
    limited = Scripted(
        "b", [], RateLimited("model 'b': rate limited (HTTP 429)", retry_after=None, model="b")
    )
    worker = FallbackWorker("fb", [busy("a", 3.0), limited], FallbackPolicy())
    with pytest.raises(
        PoolBusy,
        match=r"every model of 'fb' is busy: a: PoolBusy: .*; "
        r"b: RateLimited",
    ) as info:
        await worker.chat(ChatRequest.of("count"))
    assert info.value.retry_after == 1.0  # the upstream named no time: one second


async def test_a_chain_with_one_busy_and_one_broken_model_is_unavailable_not_busy() -> None:
    worker = FallbackWorker("fb", [busy("a", 3.0), broken("b", [])], FallbackPolicy())
    with pytest.raises(WorkerUnavailable, match=r"all models of 'fb' failed: a: PoolBusy") as info:
        await worker.chat(ChatRequest.of("count"))
    assert not isinstance(info.value, PoolBusy)
    worker = FallbackWorker("fb", [busy("a", 3.0), Scripted("b", ["fine"])], FallbackPolicy())
    assert (await worker.chat(ChatRequest.of("count"))).text == "fine"


async def test_without_chunk_timeout_a_stall_is_left_to_the_node_timeout() -> None:
    worker = FallbackWorker(
        "fb", [Hanging("first", ["one "]), Scripted("second", ["x"])], FallbackPolicy()
    )
    with anyio.move_on_after(0.3) as scope:
        await collect(worker.stream(ChatRequest.of("count")))
    assert scope.cancelled_caught
