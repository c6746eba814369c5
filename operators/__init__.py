"""The operator library, built on smmf-flow's public API: prompt, generation
(whole and streamed), embedding, routing and fallback."""

from smmf_flow.operators.embedding import EmbeddingOperator
from smmf_flow.operators.fallback import FallbackOperator
from smmf_flow.operators.llm import LLMOperator, StreamingLLMOperator
from smmf_flow.operators.prompt import PromptOperator
from smmf_flow.operators.router import RouterOperator

__all__ = ["EmbeddingOperator", "FallbackOperator", "LLMOperator", "PromptOperator",
           "RouterOperator", "StreamingLLMOperator"]
