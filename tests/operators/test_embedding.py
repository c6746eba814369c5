"""``EmbeddingOperator`` on MiniLM (sentence-transformers): one text or many, and
concurrent runs sharing backend batches through the model's micro-batcher."""

import math
from typing import Any

import anyio
import pytest

from smmf_flow import DAG
from smmf_flow.errors import InputError, NodeFailed
from smmf_flow.operators import EmbeddingOperator
from smmf_flow.scheduler import scheduler_for

pytestmark = pytest.mark.anyio

SENTENCES = [
    f"Sentence {i}: the {w} jumps over the lazy dog."
    for i, w in enumerate(
        [
            "fox",
            "cat",
            "horse",
            "frog",
            "bird",
            "child",
            "goat",
            "rabbit",
            "deer",
            "kangaroo",
            "flea",
            "cricket",
        ]
    )
]


def embed_flow(model: str | None = "minilm") -> DAG:
    with DAG("embed") as dag:
        EmbeddingOperator(model, name="vec")
    return dag


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


async def test_one_text_gives_one_vector_and_a_list_gives_a_list(real_registry: Any) -> None:
    dag = embed_flow()
    one = await dag.arun("A cat sits on the mat.", registry=real_registry)
    many = await dag.arun(
        ["A cat sits on the mat.", "A kitten rests on a rug.", "Stock markets fell sharply today."],
        registry=real_registry,
    )
    assert len(one) == 384 and all(isinstance(x, float) for x in one)
    assert len(many) == 3 and all(len(v) == 384 for v in many)
    assert one == pytest.approx(many[0], abs=1e-5)
    assert cosine(many[0], many[1]) > cosine(many[0], many[2])


async def test_an_embedding_node_that_names_no_model_uses_default_embedding(
    real_registry: Any,
) -> None:
    vector = await embed_flow(None).arun("hello", registry=real_registry)
    assert len(vector) == 384


async def test_concurrent_runs_share_batches_and_get_their_own_vectors(real_registry: Any) -> None:
    pool = real_registry.pool("minilm")
    one_by_one = [(await pool.embed([s]))[0] for s in SENTENCES]  # the backend, unbatched
    dag = embed_flow()
    batcher = scheduler_for(real_registry).embedding_worker("minilm").batcher
    batches_before, texts_before = batcher.batches, batcher.texts
    got: dict[int, list[float]] = {}

    async def run(i: int) -> None:
        got[i] = await dag.arun(SENTENCES[i], registry=real_registry)

    async with anyio.create_task_group() as tg:
        for i in range(len(SENTENCES)):
            tg.start_soon(run, i)
    assert batcher.texts - texts_before == len(SENTENCES)
    assert 1 <= batcher.batches - batches_before < len(SENTENCES)
    for i, expected in enumerate(one_by_one):
        assert got[i] == pytest.approx(expected, abs=1e-5), SENTENCES[i]


async def test_one_runs_bad_input_fails_only_that_run(real_registry: Any) -> None:
    dag = embed_flow()
    out: dict[str, object] = {}

    async def run(key: str, value: object) -> None:
        try:
            out[key] = await dag.arun(value, registry=real_registry)
        except NodeFailed as exc:
            out[key] = exc

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, "good", "A fine sentence.")
        tg.start_soon(run, "bad", ["fine", None])
        tg.start_soon(run, "also good", ["Another one.", "And one more."])
    assert len(out["good"]) == 384  # type: ignore[arg-type]
    assert len(out["also good"]) == 2  # type: ignore[arg-type]
    assert isinstance(out["bad"], NodeFailed)
    assert "expected a string or a list of strings" in str(out["bad"].__cause__)


async def test_a_value_that_is_not_text_names_the_node(real_registry: Any) -> None:
    with pytest.raises(NodeFailed) as err:
        await embed_flow().arun(42, registry=real_registry)
    assert isinstance(err.value.__cause__, InputError)
    assert str(err.value) == (
        "node 'vec' failed: InputError: expected a string or a list of strings, got int"
    )
