"""Bad input to the adapters: clear errors at construction or at the call, and
no model loaded to find them. Also: importing smmf_flow imports neither library.

No ``from __future__ import annotations`` here: LangChain reads a RunnableLambda's
types from its function's annotations as they are, and a string is no type.
"""

import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableLambda

from smmf_flow import DAG, EdgeTypeError, FlowError, MapOperator, ModelNotFound, UsageError
from smmf_flow.errors import InputError, MissingDependency, ModelKindMismatch
from smmf_flow.flowfile import loads_flow
from smmf_flow.integrations import require
from smmf_flow.integrations.langchain import (
    RunnableOperator,
    SmmfChatModel,
    SmmfEmbeddings,
    as_runnable,
    as_tool,
    tools_schema,
)
from smmf_flow.integrations.llama_index import SmmfEmbedding, SmmfLLM
from smmf_flow.integrations.registry_loop import registry_loop
from smmf_flow.models import ModelRegistry

pytestmark = pytest.mark.anyio


def test_importing_smmf_flow_imports_neither_library() -> None:
    code = (
        "import sys, smmf_flow, smmf_flow.integrations, smmf_flow.operators\n"
        "loaded = [m for m in ('langchain_core', 'langchain', 'llama_index') if m in sys.modules]\n"
        "print(loaded)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_missing_extra_says_what_to_install() -> None:
    with pytest.raises(MissingDependency, match=r"pip install 'smmf-flow\[langchain\]'"):
        require("langchain_core_not_installed", "langchain")


def test_unknown_names_fail_at_construction(models: ModelRegistry) -> None:
    with pytest.raises(ModelNotFound, match=r"unknown model 'minlm'.*did you mean 'minilm'"):
        SmmfEmbeddings(registry=models, model="minlm")
    with pytest.raises(ModelNotFound, match="'smolm2'"):
        SmmfChatModel(registry=models, model="smolm2")
    with pytest.raises(ModelNotFound, match="'nope'"):
        SmmfEmbedding(registry=models, model="nope")
    with pytest.raises(ModelNotFound, match="'nope'"):
        SmmfLLM(registry=models, model="nope")


def test_wrong_kinds_fail_at_construction(models: ModelRegistry) -> None:
    with pytest.raises(
        ModelKindMismatch, match="embedding model and cannot be used for generation"
    ):
        SmmfChatModel(registry=models, model="minilm")
    with pytest.raises(ModelKindMismatch, match="groups serve generation, not embeddings"):
        SmmfEmbeddings(registry=models, model="chat")
    with pytest.raises(ModelKindMismatch, match="cannot be used for embeddings"):
        SmmfEmbedding(registry=models, model="smollm2")


def test_a_registry_is_required(models: ModelRegistry) -> None:
    with pytest.raises(ValueError, match="registry"):
        SmmfChatModel(model="smollm2")  # type: ignore[call-arg]  # the error under test


def test_bad_tool_choices_and_parameters(models: ModelRegistry) -> None:
    llm = SmmfChatModel(registry=models)
    tool = as_tool(loads_flow(SHOUT), registry=models)
    with pytest.raises(
        UsageError, match=r"tool_choice 'whisper' names no bound tool \(bound: shout"
    ):
        llm.bind_tools([tool], tool_choice="whisper")
    with pytest.raises(UsageError, match="does not take frequency_penalty"):
        llm.invoke("hi", frequency_penalty=1.0)
    with pytest.raises(UsageError, match="method 'function_calling' is not supported"):
        llm.with_structured_output({"type": "object"}, method="function_calling")
    with pytest.raises(InputError, match="message 0 has a 'image_url' block"):
        llm.invoke([HumanMessage(content=[{"type": "image_url", "image_url": {"url": "x"}}])])


def test_tool_schemas() -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "add",
                "description": "Add.",
                "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}},
            },
        }
    ]
    auto = tools_schema(tools, "auto")
    assert auto is not None
    assert [v["properties"].get("tool", {}).get("const") for v in auto["anyOf"]] == ["add", None]
    required = tools_schema(tools, "required")
    assert required is not None
    assert len(required["anyOf"]) == 1
    assert tools_schema(tools, {"type": "function", "function": {"name": "add"}}) == required
    assert tools_schema(tools, "none") is None


SHOUT = """
name: shout
description: Shout a text back in capital letters.
inputs: {text: str}
nodes:
  upper: {type: map, expr: "input.text | upper"}
"""


def test_flows_are_checked_when_wrapped(models: ModelRegistry) -> None:
    bad = loads_flow("name: ask\nnodes:\n  answer: {type: llm, model: smolm2}\n", file="ask.yaml")
    with pytest.raises(ModelNotFound, match=r"ask.yaml:3:.*node 'answer'.*'smolm2'"):
        as_runnable(bad, registry=models)
    with pytest.raises(UsageError, match="calls models; pass registry="):
        as_runnable(bad)
    undescribed = loads_flow("name: quiet\nnodes:\n  up: {type: map, expr: input}\n")
    with pytest.raises(UsageError, match="no description for the tool; pass description="):
        as_tool(undescribed, registry=models)
    with pytest.raises(InputError, match="unknown input 'txt'; did you mean 'text'"):
        as_runnable(loads_flow(SHOUT), registry=models).invoke({"txt": "x"})


def test_runnable_ports_are_checked_at_the_edge() -> None:
    def shout(text: str) -> str:
        return text.upper()

    def length(text: str) -> int:
        return len(text)

    with DAG("typed"):
        node = RunnableOperator(RunnableLambda(shout), name="shout")
        assert node.input_types == (str,)
        assert node.output_type is str
        with pytest.raises(EdgeTypeError, match=r"'count'.*'shout'"):
            MapOperator(length, name="count") >> node
    with DAG("fits") as dag:
        MapOperator(str.strip, name="strip") >> RunnableOperator(RunnableLambda(shout))
    assert dag.run(" hey ") == "HEY"
    with pytest.raises(UsageError, match="takes a LangChain Runnable, not function"):
        RunnableOperator(shout)  # type: ignore[arg-type]  # the error under test


async def test_a_streaming_runnable_node() -> None:
    async def words(text: str) -> AsyncIterator[str]:
        for word in text.split():
            yield word

    with DAG("stream") as dag:
        RunnableOperator(RunnableLambda(words), stream=True, name="words")
    assert [c async for c in dag.astream("a b c")] == ["a", "b", "c"]


async def test_a_sync_call_on_the_registry_loop_is_refused(models: ModelRegistry) -> None:
    loop = registry_loop(models)

    async def sync_inside() -> None:
        loop.call(noop)

    async def noop() -> None:
        return None

    with pytest.raises(UsageError, match="would wait for itself; use the async method"):
        await loop.acall(sync_inside)


def test_a_flow_without_models_needs_no_registry_but_a_runnable_needs_one() -> None:
    with pytest.raises(FlowError, match="no model registry"):
        as_runnable(_model_dag())
    runnable = as_runnable(loads_flow(SHOUT))
    with pytest.raises(UsageError, match="needs registry="):
        runnable.invoke({"text": "x"})


def _model_dag() -> DAG:
    from smmf_flow.operators import LLMOperator

    with DAG("needs-models") as dag:
        LLMOperator(model="smollm2")
    return dag
