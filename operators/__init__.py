"""The operator library, built on smmf-flow's public API: prompt, generation
(whole or ``stream=True``), embedding, routing and fallback; RAG (splitting,
indexing into a vector store, retrieval, cited answers) and tool-using agents.

Each operator type validates its parameters with one pydantic model (its
``params_model``, beside it: ``LLMParams``, ``RetrieverParams``, ...), which
also gives the flow-file JSON schema. ``ModelOperator`` is the base of an
operator that calls models by name."""

from smmf_flow.operators.agent import AgentOperator, AgentResult, AgentStep
from smmf_flow.operators.answer import Answer, AnswerOperator
from smmf_flow.operators.base import ModelOperator
from smmf_flow.operators.documents import Chunk, Document, load_documents
from smmf_flow.operators.embedding import EmbeddingOperator
from smmf_flow.operators.fallback import FallbackOperator
from smmf_flow.operators.indexing import IndexerOperator, IndexReport
from smmf_flow.operators.llm import LLMOperator
from smmf_flow.operators.params import OperatorParams
from smmf_flow.operators.prompt import PromptOperator
from smmf_flow.operators.retriever import Retrieval, RetrieverOperator
from smmf_flow.operators.router import RouterOperator
from smmf_flow.operators.splitter import TextSplitterOperator
from smmf_flow.operators.tools import Tool, tool
from smmf_flow.operators.vectorstore import Hit, VectorStore

__all__ = [
    "AgentOperator",
    "AgentResult",
    "AgentStep",
    "Answer",
    "AnswerOperator",
    "Chunk",
    "Document",
    "EmbeddingOperator",
    "FallbackOperator",
    "Hit",
    "IndexReport",
    "IndexerOperator",
    "LLMOperator",
    "ModelOperator",
    "OperatorParams",
    "PromptOperator",
    "Retrieval",
    "RetrieverOperator",
    "RouterOperator",
    "TextSplitterOperator",
    "Tool",
    "VectorStore",
    "load_documents",
    "tool",
]
