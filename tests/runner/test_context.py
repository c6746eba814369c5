"""``RunContext``: data shared by the nodes of one run, passed explicitly."""

from typing import Any

import pytest

from smmf_flow import DAG, JoinOperator, Operator, RunContext, Trace

pytestmark = pytest.mark.anyio


class Remember(Operator):
    """Stores its input under ``key`` in the run context."""

    def __init__(self, key: str, **options: Any) -> None:
        self.key = key
        super().__init__(**options)

    async def execute(self, ctx: RunContext, *inputs: Any) -> Any:
        ctx.set(self.key, inputs[0])
        ctx.note(self, "remembered", key=self.key)
        return inputs[0]


class Recall(Operator):
    """Returns what the context holds under ``keys`` (its input is ignored)."""

    def __init__(self, *keys: str, **options: Any) -> None:
        self.keys = keys
        super().__init__(**options)

    async def execute(self, ctx: RunContext, *inputs: Any) -> Any:
        return {key: ctx.get(key, "missing") for key in self.keys}


@pytest.fixture
def dag() -> DAG:
    """remember → recall(question, seed, other)"""
    with DAG("ctx") as dag:
        Remember("question", name="remember") >> Recall("question", "seed", "other", name="recall")
    return dag


async def test_nodes_share_the_context(dag: DAG) -> None:
    out = await dag.arun("why?")
    assert out == {"question": "why?", "seed": "missing", "other": "missing"}


async def test_data_seeds_the_context(dag: DAG) -> None:
    out = await dag.arun("why?", data={"seed": 42})
    assert out == {"question": "why?", "seed": 42, "other": "missing"}


async def test_each_run_has_its_own_context(dag: DAG) -> None:
    seed = {"seed": 1}
    await dag.arun("first", data=seed)
    assert seed == {"seed": 1}  # the caller's dict is copied, not written to
    assert (await dag.arun("second"))["question"] == "second"


async def test_concurrent_branches_see_each_others_data() -> None:
    with DAG("fan") as dag:
        left = Remember("left", name="left")
        right = Remember("right", name="right")
        join = JoinOperator(name="join")
        [left, right] >> join >> Recall("left", "right", name="recall")
    assert await dag.arun(7) == {"left": 7, "right": 7}


async def test_note_adds_events_to_the_trace(dag: DAG) -> None:
    trace = Trace()
    await dag.arun("q", trace=trace)
    assert trace["remember"].events == [{"event": "remembered", "key": "question"}]


async def test_the_registry_reaches_the_nodes() -> None:
    class Registry:
        def get(self, name: str) -> str:
            return f"model {name}"

    class UseModel(Operator):
        async def execute(self, ctx: RunContext, *inputs: Any) -> Any:
            return ctx.registry.get(inputs[0])

    with DAG("registry") as dag:
        UseModel(name="use")
    assert await dag.arun("m", registry=Registry()) == "model m"


def test_a_context_on_its_own() -> None:
    trace = Trace()
    first, second = RunContext(trace, data={"a": 1}), RunContext(trace)
    assert first.run_id != second.run_id
    assert first.get("a") == 1 and second.get("a") is None
    first.set("b", 2)
    assert first.get("b") == 2 and first.registry is None
    first.note("node", "routed", to="big")
    assert trace["node"].events == [{"event": "routed", "to": "big"}]
