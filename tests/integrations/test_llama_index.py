"""The LlamaIndex adapters on the bundled models: a ``VectorStoreIndex`` built with
``SmmfEmbedding`` and queried through ``SmmfLLM`` on a fallback group."""

from __future__ import annotations

import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.llms import ChatMessage, MessageRole

from smmf_flow.integrations.llama_index import SmmfEmbedding, SmmfLLM
from smmf_flow.models import ModelRegistry

from .conftest import DOCS, QUESTION

pytestmark = [pytest.mark.anyio, pytest.mark.models]


def test_vector_store_index_answers_from_its_documents(models: ModelRegistry) -> None:
    index = VectorStoreIndex.from_documents(
        [Document(text=d) for d in DOCS], embed_model=SmmfEmbedding(registry=models)
    )
    [hit] = index.as_retriever(similarity_top_k=1).retrieve(QUESTION)
    assert hit.node.get_content() == DOCS[1]

    llm = SmmfLLM(registry=models, model="chat", max_tokens=40)
    engine = index.as_query_engine(llm=llm, streaming=True, similarity_top_k=1)
    response = engine.query(QUESTION)
    tokens = list(response.response_gen)
    assert len(tokens) > 1  # streamed
    assert "".join(tokens).strip()
    assert [n.node.get_content() for n in response.source_nodes] == [DOCS[1]]


async def test_async_query_and_embeddings(models: ModelRegistry) -> None:
    embedding = SmmfEmbedding(registry=models, model="minilm")
    vectors = await embedding.aget_text_embedding_batch(DOCS)
    assert [len(v) for v in vectors] == [384, 384, 384]
    query = await embedding.aget_query_embedding(QUESTION)
    assert query == pytest.approx(embedding.get_query_embedding(QUESTION), abs=1e-4)

    index = VectorStoreIndex.from_documents([Document(text=d) for d in DOCS], embed_model=embedding)
    engine = index.as_query_engine(llm=SmmfLLM(registry=models, max_tokens=32), similarity_top_k=1)
    response = await engine.aquery(QUESTION)
    assert str(response).strip()
    assert response.source_nodes[0].node.get_content() == DOCS[1]


async def test_chat_and_completion_streamed_or_not(models: ModelRegistry) -> None:
    llm = SmmfLLM(registry=models, model="chat", max_tokens=16)
    assert llm.metadata.context_window == 2048
    assert llm.metadata.is_chat_model
    messages = [
        ChatMessage(role=MessageRole.SYSTEM, content="You are brief."),
        ChatMessage(role=MessageRole.USER, content="Say hello."),
    ]
    answer = await llm.achat(messages)
    assert answer.message.content
    assert answer.raw["model"] == "smollm2"  # 'offline' failed; the group fell back
    parts = [r async for r in await llm.astream_chat(messages)]
    assert len(parts) > 1
    assert parts[-1].message.content == "".join(p.delta or "" for p in parts)
    assert llm.complete("Say hello.").text
    streamed = list(llm.stream_complete("Say hello."))
    assert streamed[-1].text == "".join(r.delta or "" for r in streamed)
    assert (await llm.acomplete("Say hello.")).text
