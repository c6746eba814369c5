"""``AnswerOperator``: retrieved passages into a prompt, a JSON reply whose
citations can only be passages it was shown, mapped back to chunk ids. On the
real SmolLM2 (shape only, never facts) and on a scripted model (exact)."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from smmf_flow import DAG
from smmf_flow.dag import Trace
from smmf_flow.errors import (
    FlowError,
    InputError,
    InvalidOutput,
    NodeFailed,
    TemplateError,
    UnknownParameter,
)
from smmf_flow.operators import Answer, AnswerOperator, RetrieverOperator
from smmf_flow.operators.retriever import Retrieval
from smmf_flow.operators.vectorstore import Hit

pytestmark = pytest.mark.anyio
QUESTION = "Who designed the Varnholm lighthouse?"


def rag(spec: dict[str, str], model: str, **answer: Any) -> DAG:
    with DAG("rag") as dag:
        retrieve = RetrieverOperator(spec, model="minilm", k=3, name="retrieve")
        reply = AnswerOperator(model, name="answer", **answer)
        retrieve >> reply
    return dag


def hits(*sources: str) -> list[Hit]:
    return [
        Hit(f"id-{i}", f"Passage {i} of {s}.", 0.9 - i / 10, {"source": s})
        for i, s in enumerate(sources)
    ]


async def test_smollm2_answers_with_text_and_cited_chunk_ids(
    real_registry: Any, docs_store: tuple[dict[str, str], Any]
) -> None:
    spec, _ = docs_store
    trace = Trace()
    answer = await rag(spec, "smollm2", max_tokens=120, max_chars=240, passages=True).arun(
        QUESTION, registry=real_registry, trace=trace
    )
    assert isinstance(answer, Answer) and answer.model == "smollm2"
    assert answer.text.strip() and len(answer.text) <= 240
    shown = [h.id for h in answer.passages]
    assert len(shown) == 3 and answer.citations
    assert set(answer.citations) <= set(shown)
    assert len(set(answer.citations)) == len(answer.citations)
    assert set(answer.sources) <= {h.source for h in answer.passages}
    assert answer.passages[0].source == "lighthouse.md"
    assert {"event": "answered", "model": "smollm2", "citations": answer.citations} in trace[
        "answer"
    ].events


async def test_citations_map_passage_numbers_to_chunk_ids(scripted: Any) -> None:
    reply = {"answer": "Ilse Marrow did.", "sources": [2, 3, 2]}
    registry = scripted.registry(json.dumps(reply))
    with DAG("a") as dag:
        AnswerOperator("scripted", name="answer")
    found = Retrieval(QUESTION, hits("lighthouse.md", "lighthouse.md", "tides.md"))
    answer = await dag.arun(found, registry=registry)
    assert answer.text == "Ilse Marrow did."
    assert answer.citations == ["id-1", "id-2"]
    assert answer.sources == ["lighthouse.md", "tides.md"]
    assert answer.passages == []  # not asked for
    request = scripted.requests[0]
    prompt = request.messages[-1].content
    assert "[1] (lighthouse.md) Passage 0 of lighthouse.md." in prompt
    assert prompt.endswith(f"Question: {QUESTION}")
    schema = request.response_format.schema
    assert schema["properties"]["sources"]["items"] == {"enum": [1, 2, 3]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"answer": "x", "sources": [4]}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"answer": 'say "x"', "sources": [1]}, schema)


async def test_passages_are_in_the_answer_only_when_the_node_asks(scripted: Any) -> None:
    reply = json.dumps({"answer": "Ilse Marrow did.", "sources": [1]})
    found = Retrieval(QUESTION, hits("lighthouse.md", "tides.md"))
    answers = []
    for asked in (False, True):
        registry = scripted.registry(reply)
        with DAG("a") as dag:
            AnswerOperator("scripted", name="answer", passages=asked)
        answers.append(await dag.arun(found, registry=registry))
    hidden, shown = answers
    assert (
        (hidden.text, hidden.citations, hidden.sources)
        == (shown.text, shown.citations, shown.sources)
        == ("Ilse Marrow did.", ["id-0"], ["lighthouse.md"])
    )
    assert hidden.passages == [] and shown.passages == found.hits
    with pytest.raises(
        FlowError,
        match=r"^node 'a': parameter 'passages': input should be a valid boolean, got 'yes'",
    ):
        AnswerOperator(passages="yes", name="a")


async def test_a_reply_that_breaks_the_schema_fails_the_node(scripted: Any) -> None:
    registry = scripted.registry('{"answer": "no sources given"}')
    with DAG("a") as dag:
        AnswerOperator("scripted", name="answer")
    with pytest.raises(NodeFailed) as info:
        await dag.arun(Retrieval(QUESTION, hits("a.md")), registry=registry)
    assert isinstance(info.value.__cause__, InvalidOutput)
    assert "'sources' is a required property" in str(info.value.__cause__)


async def test_without_passages_the_model_is_not_asked(scripted: Any) -> None:
    registry = scripted.registry()
    with DAG("a") as dag:
        AnswerOperator("scripted", name="answer", no_context="Nothing indexed about that.")
    answer = await dag.arun(Retrieval(QUESTION, []), registry=registry)
    assert answer == Answer("Nothing indexed about that.")
    assert scripted.requests == []


def test_a_template_that_fails_on_the_question_is_an_input_error() -> None:
    node = AnswerOperator("smollm2", template="{{ (question | int) // 0 }}", name="a")
    with pytest.raises(InputError) as caught:
        node.request(Retrieval("7", hits("a.md")))
    assert str(caught.value) == (
        "template '{{ (question | int) // 0 }}' failed: ZeroDivisionError: "
        "integer division or modulo by zero"
    )


def test_template_and_parameters_are_checked_when_the_node_is_made() -> None:
    with pytest.raises(TemplateError, match=r"^node 'a': template syntax error on line 1"):
        AnswerOperator(template="{{ question ", name="a")
    with pytest.raises(
        TemplateError,
        match=r"^node 'a': the template uses 'passage'; its "
        r"variables are passages, question",
    ) as caught:
        AnswerOperator(template="{{ question }} {{ passage }}", name="a")
    assert caught.value.param == "template"
    with pytest.raises(UnknownParameter, match=r"^node 'a': unknown parameter 'json_schema'"):
        AnswerOperator(json_schema={"type": "object"}, name="a")  # it sets the schema itself
    with pytest.raises(
        UnknownParameter,
        match=r"^node 'a': unknown parameter 'max_token'; did you mean 'max_tokens'",
    ):
        AnswerOperator(max_token=5, name="a")
    node = AnswerOperator("smollm2", max_chars=200, name="a")
    assert node.params() == {"model": "smollm2", "max_chars": 200}
    assert node.generation == {"max_tokens": 200, "temperature": 0.0}  # greedy by default
    assert AnswerOperator(passages=True, name="a").params()["passages"] is True
