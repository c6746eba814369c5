"""strategy = "prefix_affinity": keys, choices, fallbacks, bounded memory, config checks,
and two real llama.cpp instances that keep a conversation where its KV cache is."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from smmf_flow.errors import ConfigError
from smmf_flow.models import ChatRequest, ModelConfig, Pool, load_toml
from smmf_flow.models.config import AffinitySettings
from smmf_flow.models.strategies import PrefixAffinity, make_strategy, prefix_key
from smmf_flow.models.types import ChatMessage

from .fakes import PROVIDER, FakeBackend
from .test_pool import C  # a plain candidate: the counters a strategy reads

pytestmark = pytest.mark.anyio


def conversation(topic: str, turns: int) -> list[ChatRequest]:
    """The requests of one chat, each turn's history holding the turns before it."""
    messages = [ChatMessage(role="system", content="You are terse.")]
    requests = []
    for turn in range(turns):
        messages.append(ChatMessage(role="user", content=f"Tell me about {topic}, part {turn}."))
        requests.append(ChatRequest(messages=list(messages), max_tokens=8))
        messages.append(ChatMessage(role="assistant", content=f"{topic} fact {turn}."))
    return requests


# --- the key --------------------------------------------------------------------------


def test_a_later_turn_extends_the_key_of_an_earlier_one() -> None:
    first, second = conversation("owls", 2)
    k1, k2 = prefix_key(first).blocks, prefix_key(second).blocks
    assert len(k2) > len(k1) and k2[: len(k1)] == k1
    other = prefix_key(conversation("bees", 1)[0])
    assert other.shared == 1  # the system message: one block
    assert other.blocks[:1] == k1[:1]  # is the same
    assert other.blocks[1:] != k1[1:]  # then the conversations part


def test_a_long_message_is_hashed_in_blocks_so_a_partial_match_counts() -> None:
    text = "x" * 1000
    long_one = ChatRequest.of(text + " first question")
    same_start = ChatRequest.of(text + " second question")
    k1, k2 = prefix_key(long_one, 100).blocks, prefix_key(same_start, 100).blocks
    assert len(k1) == 11  # 1015 characters in blocks of 100
    shared = next(i for i, (a, b) in enumerate(zip(k1, k2, strict=True)) if a != b)
    assert shared == 10  # the ten blocks of x's are shared, the last one is not


# --- choices -----------------------------------------------------------------------------


def test_the_instance_that_saw_the_prefix_is_chosen_over_a_less_busy_one() -> None:
    pa = PrefixAffinity()
    first, second = conversation("owls", 2)
    idle, busy = C(0), C(1, in_flight=1, assigned=5)
    assert pa.choose_for([idle, busy], prefix_key(first)).index == 0  # new: least busy
    pa.choose_for([busy], prefix_key(conversation("bees", 1)[0]))  # instance 1 saw bees
    assert pa.matched(0, prefix_key(second)) == len(prefix_key(first).blocks)
    assert pa.choose_for([busy, idle], prefix_key(second)).index == 0  # owls went to 0


def test_sharing_only_the_system_prompt_is_no_affinity() -> None:
    pa = PrefixAffinity()
    pa.choose_for([C(0), C(1)], prefix_key(conversation("owls", 1)[0]))
    bees = prefix_key(conversation("bees", 1)[0])
    assert pa.matched(0, bees) == bees.shared  # instance 0 saw the system prompt
    assert pa.choose_for([C(0, assigned=1), C(1)], bees).index == 1  # spread, not piled


def test_a_saturated_or_unhealthy_holder_falls_back_to_the_least_busy_candidate() -> None:
    pa = PrefixAffinity()
    first, second = conversation("owls", 2)
    pa.choose_for([C(0), C(1), C(2)], prefix_key(first))
    # instance 0 is not a candidate (no free slot, or unhealthy): least busy of the rest
    chosen = pa.choose_for([C(1, in_flight=2), C(2, in_flight=1)], prefix_key(second))
    assert chosen.index == 2
    assert pa.matched(2, prefix_key(second)) == len(prefix_key(second).blocks)  # 2 learned


def long_conversation(topic: str, turns: int) -> list[ChatRequest]:
    """Like ``conversation``, with turns of a few blocks each (a real chat's size)."""
    requests = conversation(topic, turns)
    for request in requests:
        for message in request.messages[1:]:
            message.content = (message.content + " ") * 40
    return requests


def test_a_busy_holder_of_a_long_prefix_is_waited_for_within_patience() -> None:
    pa = PrefixAffinity()
    first, second = (prefix_key(r) for r in long_conversation("owls", 2))
    pa.choose_for([C(0), C(1)], first)  # owls -> 0
    assert pa.choose_for([C(1)], second, busy=[C(0, in_flight=1)]).index == 0  # wait for 0
    # one call already waits for 0 (patience 1): go to the free one
    assert pa.choose_for([C(1)], second, busy=[C(0, in_flight=1, queued=1)]).index == 1
    assert pa.choose_for([], second, busy=[C(0, in_flight=1, queued=1)]) is None
    impatient = PrefixAffinity(patience=0)
    impatient.choose_for([C(0), C(1)], first)
    assert impatient.choose_for([C(1)], second, busy=[C(0, in_flight=1)]).index == 1


def test_a_short_prefix_is_not_worth_waiting_for() -> None:
    pa = PrefixAffinity()
    first, second = (prefix_key(r) for r in conversation("owls", 2))
    pa.choose_for([C(0), C(1)], first)
    assert pa.choose_for([C(1)], second, busy=[C(0, in_flight=1)]).index == 1


def test_memory_per_instance_is_bounded_by_its_cap() -> None:
    pa = PrefixAffinity(block_chars=16, prefixes_per_instance=50)
    for n in range(200):
        request = ChatRequest.of(f"conversation {n}: " + "words " * 40)
        pa.choose_for([C(0, in_flight=n % 2), C(1)], pa.request_key(request))
    assert pa.remembered(0) == pa.remembered(1) == 50  # each saw 100 prompts of 16 blocks
    latest = pa.request_key(ChatRequest.of("conversation 199: " + "words " * 40))
    assert max(pa.matched(0, latest), pa.matched(1, latest)) == len(latest.blocks)


def test_without_a_key_it_is_least_busy() -> None:
    pa = PrefixAffinity()
    assert pa.choose([C(0, in_flight=1), C(1), C(2)]).index == 1


# --- in a pool (fake backend) ------------------------------------------------------------


def affinity_pool(**settings: Any) -> Pool:
    config = ModelConfig(
        name="m", provider=PROVIDER, instances=2, strategy="prefix_affinity", **settings
    )
    return Pool(config)


def backends(pool: Pool) -> list[FakeBackend]:
    return [i.backend for i in pool.instances]  # type: ignore[misc]


async def test_each_conversation_stays_on_one_instance_every_turn() -> None:
    pool = affinity_pool()
    owls, bees = conversation("owls", 4), conversation("bees", 4)
    seen: dict[str, set[str]] = {"owls": set(), "bees": set()}
    order = [("owls", 0), ("owls", 1), ("bees", 0), ("bees", 1)]
    order += [("owls", 2), ("bees", 2), ("bees", 3), ("owls", 3)]
    for topic, turn in order:
        result = await pool.chat((owls if topic == "owls" else bees)[turn])
        seen[topic].add(str(result.instance))
    assert len(seen["owls"]) == 1 and len(seen["bees"]) == 1
    assert seen["owls"] != seen["bees"]  # the new conversation went to the idle one
    assert [i.assigned for i in pool.instances] == [4, 4]
    await pool.aclose()


async def test_round_robin_scatters_the_same_turns_which_is_what_affinity_fixes() -> None:
    pool = Pool(ModelConfig(name="m", provider=PROVIDER, instances=2))
    owls = conversation("owls", 4)
    assert len({(await pool.chat(r)).instance for r in owls}) == 2
    await pool.aclose()


async def test_a_streamed_turn_routes_by_its_request_too() -> None:
    pool = affinity_pool()
    first, second = conversation("owls", 2)
    where = (await pool.chat(first)).instance
    await pool.chat(conversation("bees", 1)[0])
    async with pool.stream_chat(second) as stream:
        chunks = [chunk async for chunk in stream]
    assert {c.instance for c in chunks} == {where}
    await pool.aclose()


async def test_a_turn_whose_instance_is_saturated_goes_to_the_other_at_once() -> None:
    pool = affinity_pool(concurrency=1)
    first, second = conversation("owls", 2)
    home = (await pool.chat(first)).instance
    gate = anyio.Event()
    home_backend = next(b for b in backends(pool) if b.instance_id == home)
    home_backend.gate = gate
    async with anyio.create_task_group() as group:
        group.start_soon(pool.chat, first)  # the same prompt again: it takes home's slot
        await anyio.sleep(0.02)
        assert next(i for i in pool.instances if i.id == home).in_flight == 1
        with anyio.fail_after(2):  # not queued behind the held slot
            elsewhere = (await pool.chat(second)).instance
        gate.set()
    assert elsewhere != home
    await pool.aclose()


async def test_a_long_turn_waits_for_its_busy_instance_while_others_pass() -> None:
    """The warm instance is busy: the next turn queues for it, a new conversation
    arriving after takes the free instance at once, and a cancelled wait leaves no
    count behind."""
    pool = affinity_pool(concurrency=1, affinity={"patience": 2})
    first, second = long_conversation("owls", 2)
    home = (await pool.chat(first)).instance
    holder = next(i for i in pool.instances if i.id == home)
    gate = anyio.Event()
    next(b for b in backends(pool) if b.instance_id == home).gate = gate
    where: list[str] = []

    async def turn(request: ChatRequest) -> None:
        where.append(str((await pool.chat(request)).instance))

    async with anyio.create_task_group() as group:
        group.start_soon(pool.chat, first)  # takes home's slot
        await anyio.sleep(0.02)
        group.start_soon(turn, second)
        await anyio.sleep(0.02)
        assert holder.queued == 1 and where == []
        with anyio.fail_after(2):  # passes the waiting call
            await turn(long_conversation("bees", 1)[0])
        assert where != [home]
        with anyio.move_on_after(0.05):  # a third call waits too, then gives up
            await pool.chat(second)
            raise AssertionError("it did not wait")
        assert holder.queued == 1
        gate.set()
    assert where[-1] == home
    assert holder.queued == 0 and pool.stats().waiting == 0
    await pool.aclose()


async def test_an_unhealthy_holder_is_skipped() -> None:
    pool = affinity_pool()
    first, second = conversation("owls", 2)
    home = (await pool.chat(first)).instance
    holder = next(i for i in pool.instances if i.id == home)
    holder.mark_unhealthy(0.0, "gone", retry_in=3600)
    assert (await pool.chat(second)).instance != home
    await pool.aclose()


def test_the_affinity_table_sets_the_knobs() -> None:
    config = ModelConfig(
        name="m",
        provider=PROVIDER,
        strategy="prefix_affinity",
        affinity=AffinitySettings(block_chars=64, prefixes_per_instance=10),
    )
    strategy = make_strategy(config.strategy, config)
    assert isinstance(strategy, PrefixAffinity)
    assert (strategy.block_chars, strategy.prefixes_per_instance) == (64, 10)


# --- config errors, located ---------------------------------------------------------------

HEAD = """[models]

[[models.llms]]
name = "chat"
provider = "proxy/openai"
api_base = "http://127.0.0.1:9"
"""


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (
            'strategy = "prefix_affinity"\naffinity = { blok_chars = 64 }',
            r"x\.toml:\d+: models\.llms\[0\] \(name 'chat'\), field 'affinity\.blok_chars': "
            r"unknown field \(did you mean 'block_chars'\?\); valid fields here: "
            r"block_chars, prefixes_per_instance",
        ),
        (
            'strategy = "prefix_affinity"\naffinity = { prefixes_per_instance = 0 }',
            r"x\.toml:\d+: models\.llms\[0\] \(name 'chat'\), field "
            r"'affinity\.prefixes_per_instance': expected greater than or equal to 1; got 0",
        ),
        (
            'strategy = "prefix_affinity"\naffinity = { block_chars = "big" }',
            r"field 'affinity\.block_chars': expected a valid integer.*; got 'big'",
        ),
        (
            'strategy = "least_busy"\naffinity = { block_chars = 64 }',
            r"x\.toml:8: models\.llms\[0\] \(name 'chat'\), field 'affinity': only strategy = "
            r"\"prefix_affinity\" takes `affinity`; this model has strategy = \"least_busy\"",
        ),
        (
            'strategy = "prefix_afinity"',
            r"x\.toml:7: .*field 'strategy': expected one of .*'prefix_affinity'; got "
            r"'prefix_afinity' \(did you mean 'prefix_affinity'\?\)",
        ),
    ],
)
def test_bad_affinity_settings_are_located(tmp_path: Path, lines: str, expected: str) -> None:
    path = tmp_path / "x.toml"
    path.write_text(HEAD + lines + "\n")
    with pytest.raises(ConfigError, match=expected):
        load_toml(path)


def test_good_affinity_settings_load(tmp_path: Path) -> None:
    path = tmp_path / "x.toml"
    path.write_text(HEAD + 'strategy = "prefix_affinity"\naffinity = { block_chars = 64 }\n')
    entry = load_toml(path).models.llms[0]
    assert entry.affinity == AffinitySettings(block_chars=64)


# --- real llama.cpp -------------------------------------------------------------------------


@pytest.mark.models
async def test_two_llama_instances_keep_each_conversation_on_one_instance(
    llama_entry: Callable[..., dict[str, Any]],
    make_registry: Callable[[dict[str, Any]], Any],
) -> None:
    entry = llama_entry("pair", instances=2, strategy="prefix_affinity", threads=1)
    registry = make_registry({"models": {"llms": [entry]}})
    pool = registry.pool("pair")
    streams = [(os.fstat(fd).st_dev, os.fstat(fd).st_ino) for fd in (1, 2)]
    await pool.start()  # both load at once: stdout and stderr must survive that
    assert [(os.fstat(fd).st_dev, os.fstat(fd).st_ino) for fd in (1, 2)] == streams
    owls, bees = conversation("owls", 3), conversation("bees", 3)
    where: dict[str, set[str]] = {"owls": set(), "bees": set()}
    for turn in range(3):
        for topic, chat in (("owls", owls), ("bees", bees)):
            result = await pool.chat(chat[turn])
            assert result.text or result.finish_reason
            where[topic].add(str(result.instance))
    assert len(where["owls"]) == 1 and len(where["bees"]) == 1
    assert where["owls"] != where["bees"]
    assert [i.done for i in pool.stats().instances] == [3, 3]
