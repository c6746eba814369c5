"""The LangChain adapters on the bundled models, with LangChain's own pieces (its
vector store, prompts, agent): RAG on a fallback group, an agent calling a flow
as a tool, structured output, and embeddings from many callers sharing batches."""

from __future__ import annotations

import threading
from typing import Any

import anyio
import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import ModelRequest, ModelResponse, wrap_model_call
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore
from pydantic import BaseModel

from smmf_flow import DAG, InputError, MapOperator
from smmf_flow.flowfile import loads_flow
from smmf_flow.integrations.langchain import (
    RunnableOperator,
    SmmfChatModel,
    SmmfEmbeddings,
    as_runnable,
    as_tool,
)
from smmf_flow.models import ModelRegistry
from smmf_flow.scheduler import scheduler_for

from .conftest import DOCS, QUESTION

pytestmark = [pytest.mark.anyio, pytest.mark.models]

SHOUT = """
name: shout
description: Shout a text back in capital letters.
inputs:
  text: {type: str, description: the text to shout}
nodes:
  upper: {type: map, expr: "input.text | upper"}
"""

PROMPT = ChatPromptTemplate.from_messages(
    [
        ("system", "Answer the question from this context only.\nContext: {context}"),
        ("human", "{question}"),
    ]
)


def passages(docs: list[Document]) -> str:
    return "\n".join(d.page_content for d in docs)


async def test_rag_chain_on_a_fallback_group(models: ModelRegistry) -> None:
    store = InMemoryVectorStore(embedding=SmmfEmbeddings(registry=models))
    await store.aadd_texts(DOCS)
    retriever = store.as_retriever(search_kwargs={"k": 1})
    context = {"context": retriever | passages, "question": RunnablePassthrough()}
    llm = SmmfChatModel(registry=models, model="chat", max_tokens=40)

    hits = await retriever.ainvoke(QUESTION)
    assert [d.page_content for d in hits] == [DOCS[1]]
    rendered = (context | PROMPT).invoke(QUESTION).to_string()
    assert DOCS[1] in rendered
    assert QUESTION in rendered

    chunks = [chunk async for chunk in (context | PROMPT | llm).astream(QUESTION)]
    answer = chunks[0]
    for chunk in chunks[1:]:
        answer += chunk
    assert len(chunks) > 1  # streamed, not handed over whole
    assert answer.content.strip()
    # 'offline' refused the connection; the group fell back inside the model
    assert answer.response_metadata["model_name"] == "smollm2"
    assert answer.response_metadata["finish_reason"] in ("stop", "length")


async def test_a_stream_survives_its_model_failing_midway(models: ModelRegistry) -> None:
    llm = SmmfChatModel(registry=models, model="resilient", max_tokens=24)
    chunks = [c async for c in llm.astream("Count from one to ten in words.")]
    answer = chunks[0]
    for chunk in chunks[1:]:
        answer += chunk
    # 'dying' broke off after 3 chunks; SmolLM2 went on from the text delivered
    assert len([c for c in chunks if c.content]) > 3
    assert answer.response_metadata["model_name"] == "smollm2"
    assert answer.response_metadata["finish_reason"] in ("stop", "length")


def test_sync_calls_from_plain_threads(models: ModelRegistry) -> None:
    llm = SmmfChatModel(registry=models, model="chat", max_tokens=8)
    answers: list[AIMessage] = []
    errors: list[BaseException] = []

    def ask(n: int) -> None:
        try:
            answers.append(llm.invoke(f"Say the number {n}."))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(answers) == 3
    assert all(a.response_metadata["model_name"] == "smollm2" for a in answers)
    text = "".join(str(c.content) for c in llm.stream("Say hello."))
    assert text  # the sync stream works too


async def test_sync_call_inside_a_running_loop(models: ModelRegistry) -> None:
    embeddings = SmmfEmbeddings(registry=models)
    # a sync method called from async code blocks this loop but cannot deadlock:
    # the work runs on the registry's own loop thread
    assert len(embeddings.embed_query("inside a loop")) == 384
    assert embeddings.embed_documents([]) == []


async def test_64_concurrent_aembed_query_share_batches(models: ModelRegistry) -> None:
    embeddings = SmmfEmbeddings(registry=models, model="minilm")
    await embeddings.aembed_query("warm up")  # loads the model
    batcher = scheduler_for(models).embedding_worker("minilm").batcher
    before = batcher.batches
    vectors: dict[int, list[float]] = {}

    async def embed(n: int) -> None:
        vectors[n] = await embeddings.aembed_query(f"sentence number {n}")

    async with anyio.create_task_group() as group:
        for n in range(64):
            group.start_soon(embed, n)
    assert len(vectors) == 64
    assert all(len(v) == 384 for v in vectors.values())
    assert batcher.batches - before <= 8  # 64 callers, a few backend batches
    again = await embeddings.aembed_query("sentence number 5")
    assert again == pytest.approx(vectors[5], abs=1e-4)  # each caller got its own vector


class Person(BaseModel):
    name: str
    age: int


async def test_structured_output_through_the_group(models: ModelRegistry) -> None:
    llm = SmmfChatModel(registry=models, model="chat", max_tokens=48)
    person = await llm.with_structured_output(Person).ainvoke("Invent a person.")
    assert isinstance(person, Person)
    as_dict = llm.with_structured_output(Person.model_json_schema()).invoke("Invent a person.")
    assert set(as_dict) == {"name", "age"}
    raw = llm.with_structured_output(Person, include_raw=True).invoke("Invent a person.")
    assert isinstance(raw["raw"], AIMessage)
    assert isinstance(raw["parsed"], Person)


def test_bound_tool_is_called_under_its_schema(models: ModelRegistry) -> None:
    tool = as_tool(loads_flow(SHOUT), registry=models)
    llm = SmmfChatModel(registry=models, max_tokens=64).bind_tools([tool], tool_choice="shout")
    message = llm.invoke("Shout the words good morning.")
    assert message.content == ""
    [call] = message.tool_calls
    assert call["name"] == "shout"
    assert isinstance(call["args"]["text"], str)  # the schema holds; the words are the model's


def test_agent_calls_a_flow_as_a_tool(models: ModelRegistry) -> None:
    """SmolLM2-135M cannot be trusted to choose a tool, so the agent's turns are
    set as an agent's middleware may set them: the first model call must call
    ``shout`` (the model fills the arguments under the tool's schema), the next
    may only answer. Everything else is LangChain's agent loop and tool node."""
    flow = loads_flow(SHOUT)
    tool = as_tool(flow, registry=models)
    assert tool.args["text"]["type"] == "string"
    assert tool.description == "Shout a text back in capital letters."

    @wrap_model_call
    def call_then_answer(request: ModelRequest, handler: Any) -> ModelResponse:
        called = any(isinstance(m, ToolMessage) for m in request.messages)
        return handler(request.override(tool_choice="none" if called else "shout"))

    agent = create_agent(
        SmmfChatModel(registry=models, max_tokens=48), tools=[tool], middleware=[call_then_answer]
    )
    state = agent.invoke({"messages": [HumanMessage("Shout the words good morning.")]})
    _question, call, result, final = state["messages"]
    assert isinstance(call, AIMessage)
    [tool_call] = call.tool_calls
    assert tool_call["name"] == "shout"
    assert isinstance(result, ToolMessage)
    assert result.tool_call_id == tool_call["id"]
    # the tool node ran the flow on the model's arguments
    assert result.content == tool_call["args"]["text"].upper()
    assert result.content == as_runnable(flow, registry=models).invoke(tool_call["args"])
    assert isinstance(final, AIMessage)
    assert final.tool_calls == []
    assert final.content.strip()


async def test_a_flow_as_a_runnable(models: ModelRegistry) -> None:
    runnable = as_runnable(loads_flow(SHOUT), registry=models)
    schema = runnable.get_input_schema().model_json_schema()
    assert schema["required"] == ["text"]
    assert runnable.invoke({"text": "hi"}) == "HI"
    assert await runnable.ainvoke({"text": "ho"}) == "HO"
    assert runnable.batch([{"text": "a"}, {"text": "b"}]) == ["A", "B"]
    assert await runnable.abatch([{"text": "c"}]) == ["C"]
    assert list(runnable.stream({"text": "s"})) == ["S"]
    assert [c async for c in runnable.astream({"text": "t"})] == ["T"]
    with pytest.raises(InputError, match="missing input 'text'"):
        runnable.invoke({})


async def test_a_streaming_flow_streams_through_the_runnable(models: ModelRegistry) -> None:
    flow = loads_flow(
        """
name: ask
inputs: {question: str}
nodes:
  prompt: {type: prompt, template: "{{ question }}", max_tokens: 24}
  answer: {type: llm, model: chat, stream: true, after: prompt}
"""
    )
    runnable = as_runnable(flow, registry=models)
    chunks = [c async for c in runnable.astream({"question": "Say hello."})]
    assert len(chunks) > 1
    assert "".join(c.text for c in chunks).strip()
    assert chunks[-1].model == "smollm2"
    sync_chunks = list(runnable.stream({"question": "Say hello."}))
    assert len(sync_chunks) > 1


async def test_a_retriever_runs_inside_a_flow(models: ModelRegistry) -> None:
    store = InMemoryVectorStore(embedding=SmmfEmbeddings(registry=models))
    await store.aadd_texts(DOCS)
    retriever = store.as_retriever(search_kwargs={"k": 1})
    with DAG("lookup") as dag:
        node = RunnableOperator(retriever, name="retrieve")
        first = MapOperator(lambda docs: docs[0].page_content, name="first")
        node >> first
    assert node.input_types == (str,)
    assert node.output_type == list[Document]
    assert await dag.arun(QUESTION, registry=models) == DOCS[1]
