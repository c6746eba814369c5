"""smmf-flow inside LangChain, and LangChain inside smmf-flow.

``SmmfEmbeddings`` and ``SmmfChatModel`` are LangChain models on registry names:
a name may be a group, so fallback (mid-stream too) and routing happen inside,
and concurrent embedding calls share the model's micro-batches. ``as_runnable``
makes a flow (a ``DAG`` or a loaded flow file) a ``Runnable``, ``as_tool`` a tool
for agents, and ``RunnableOperator`` runs any ``Runnable`` as a node of a flow.

Sync and async methods both work anywhere: every call runs on the registry's
loop thread (``registry_loop.py``), so a sync call from a plain thread or from
inside a running event loop neither starts a loop of its own nor deadlocks.

Tools are JSON, not a native feature of the backends: ``bind_tools`` makes the
model answer under a JSON schema (a grammar on llama.cpp) that is either a call
of one bound tool, with arguments per its schema, or a final one-line answer.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any, cast

from smmf_flow.integrations import require

require("langchain_core", "langchain")

from langchain_core.callbacks import (  # noqa: E402 - after the extra is checked
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.embeddings import Embeddings  # noqa: E402
from langchain_core.language_models import BaseChatModel, LanguageModelInput  # noqa: E402
from langchain_core.messages import (  # noqa: E402
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser  # noqa: E402
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk  # noqa: E402
from langchain_core.outputs import ChatResult as LCChatResult  # noqa: E402
from langchain_core.runnables import (  # noqa: E402
    Runnable,
    RunnableConfig,
    RunnableMap,
    RunnablePassthrough,
)
from langchain_core.tools import BaseTool, StructuredTool  # noqa: E402
from langchain_core.utils.function_calling import (  # noqa: E402
    convert_to_json_schema,
    convert_to_openai_tool,
)
from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator  # noqa: E402

from smmf_flow.dag import Operator, RunContext  # noqa: E402
from smmf_flow.dag.ports import stream_of  # noqa: E402
from smmf_flow.errors import InputError, UsageError  # noqa: E402
from smmf_flow.flowfile import Flow  # noqa: E402
from smmf_flow.flowfile.flow_inputs import JSON_NAMES  # noqa: E402
from smmf_flow.integrations.registry_loop import registry_loop  # noqa: E402
from smmf_flow.models.registry import ModelRegistry  # noqa: E402
from smmf_flow.models.types import ChatMessage, ChatRequest, ResponseFormat  # noqa: E402
from smmf_flow.operators.reply_schemas import harden, text_field  # noqa: E402
from smmf_flow.runner import DAG  # noqa: E402
from smmf_flow.runner.values import jsonable  # noqa: E402
from smmf_flow.scheduler import scheduler_for  # noqa: E402

#: longest final answer (characters) when tools are bound: the JSON reply keeps it on one line
FINAL_CHARS = 2000


# --- embeddings -----------------------------------------------------------------------


class SmmfEmbeddings(BaseModel, Embeddings):
    """LangChain ``Embeddings`` on a registry's embedding model (default: the
    registry's ``default_embedding``), through its micro-batcher. The name is
    checked when the object is made."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)
    registry: ModelRegistry
    model: str | None = None

    @model_validator(mode="after")
    def _resolve(self) -> SmmfEmbeddings:
        scheduler_for(self.registry).resolve(self.model, "embedding")
        return self

    async def _embed(self, texts: list[str]) -> list[list[float]]:
        return await scheduler_for(self.registry).embedding_worker(self.model).embed(texts)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return registry_loop(self.registry).call(self._embed, list(texts)) if texts else []

    def embed_query(self, text: str) -> list[float]:
        return registry_loop(self.registry).call(self._embed, [text])[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return await registry_loop(self.registry).acall(self._embed, list(texts)) if texts else []

    async def aembed_query(self, text: str) -> list[float]:
        return (await registry_loop(self.registry).acall(self._embed, [text]))[0]


# --- chat -------------------------------------------------------------------------------


class SmmfChatModel(BaseChatModel):
    """A LangChain chat model on a registry name or group (default: the registry's
    ``default_llm``): fallback and routing happen inside, and the answer's
    ``response_metadata["model_name"]`` names the member that served. Structured
    output (``with_structured_output``) and tools (``bind_tools``) are a JSON
    schema the backend enforces (a grammar on llama.cpp) or, where it cannot, that
    the answer is checked against."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    registry: ModelRegistry
    model: str | None = None
    max_tokens: int | None = Field(default=256, ge=1)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    stop: list[str] | None = None
    seed: int | None = None

    @model_validator(mode="after")
    def _resolve(self) -> SmmfChatModel:
        scheduler_for(self.registry).resolve(self.model, "llm")
        return self

    @property
    def _llm_type(self) -> str:
        return "smmf-flow"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model, "registry": self.registry.source}

    # --- requests ----------------------------------------------------------------------

    def _request(
        self, messages: list[BaseMessage], stop: list[str] | None, **kwargs: Any
    ) -> tuple[ChatRequest, bool]:
        """The request for ``messages``, and whether its answer is a tool step."""
        tools = kwargs.pop("tools", None)
        choice = kwargs.pop("tool_choice", None)
        schema = kwargs.pop("response_format", None)
        kwargs.pop("ls_structured_output_format", None)
        unknown = set(kwargs) - {"max_tokens", "temperature", "top_p", "seed"}
        if unknown:
            raise UsageError(
                f"SmmfChatModel does not take {', '.join(sorted(unknown))} (it takes "
                "max_tokens, temperature, top_p, seed, stop, tools, tool_choice, response_format)"
            )
        params = {
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": self.seed,
            **kwargs,
        }
        step = tools_schema(tools, choice) if tools else None
        if step is not None:
            schema = step
        return ChatRequest(
            messages=[_message(m, i) for i, m in enumerate(messages)],
            stop=stop if stop is not None else self.stop,
            response_format=ResponseFormat.from_schema(schema) if schema else None,
            **params,
        ), step is not None

    def _worker(self) -> Any:
        return scheduler_for(self.registry).chat_worker(self.model)

    async def _answer(self, request: ChatRequest, tool_step: bool) -> LCChatResult:
        result = await self._worker().chat(request)
        meta = {
            "model_name": result.model,
            "instance": result.instance,
            "finish_reason": result.finish_reason,
        }
        usage = {
            "input_tokens": result.usage.prompt_tokens,
            "output_tokens": result.usage.completion_tokens,
            "total_tokens": result.usage.total_tokens,
        }
        if tool_step:
            message = _tool_step_message(result.text, meta, usage)
        else:
            message = AIMessage(
                content=result.text,
                response_metadata=meta,
                usage_metadata=cast(Any, usage),
            )
        return LCChatResult(generations=[ChatGeneration(message=message)])

    async def _chunks(
        self, request: ChatRequest, tool_step: bool
    ) -> AsyncIterator[ChatGenerationChunk]:
        if tool_step:  # a tool call is whole JSON: parsed once, handed on as one chunk
            answer = (await self._answer(request, True)).generations[0].message
            yield ChatGenerationChunk(message=_as_chunk(cast(AIMessage, answer)))
            return
        stream = self._worker().stream(request)
        try:
            async for chunk in stream:
                meta: dict[str, Any] = {"model_name": chunk.model, "instance": chunk.instance}
                usage = None
                if chunk.finish_reason is not None:
                    meta["finish_reason"] = chunk.finish_reason
                if chunk.usage is not None:
                    usage = {
                        "input_tokens": chunk.usage.prompt_tokens,
                        "output_tokens": chunk.usage.completion_tokens,
                        "total_tokens": chunk.usage.total_tokens,
                    }
                message = AIMessageChunk(
                    content=chunk.text,
                    response_metadata=meta if chunk.finish_reason is not None else {},
                    usage_metadata=cast(Any, usage),
                )
                yield ChatGenerationChunk(message=message)
        finally:
            await stream.aclose()

    # --- BaseChatModel -----------------------------------------------------------------

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> LCChatResult:
        request, tool_step = self._request(messages, stop, **kwargs)
        return registry_loop(self.registry).call(self._answer, request, tool_step)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> LCChatResult:
        request, tool_step = self._request(messages, stop, **kwargs)
        return await registry_loop(self.registry).acall(self._answer, request, tool_step)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        request, tool_step = self._request(messages, stop, **kwargs)
        for chunk in registry_loop(self.registry).iterate(lambda: self._chunks(request, tool_step)):
            if run_manager is not None:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        request, tool_step = self._request(messages, stop, **kwargs)
        chunks = registry_loop(self.registry).aiterate(lambda: self._chunks(request, tool_step))
        async for chunk in chunks:
            if run_manager is not None:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    # --- tools and structured output -----------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[Mapping[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | bool | Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """The model with ``tools`` bound. ``tool_choice``: ``None``/``"auto"`` (a
        call or an answer), ``"any"``/``"required"``/``True`` (a call of any tool),
        a tool's name (a call of that tool), ``"none"``/``False`` (plain text)."""
        formatted = [convert_to_openai_tool(t) for t in tools]
        tools_schema(formatted, tool_choice)  # refuses a bad choice now, not at the call
        return self.bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    def with_structured_output(
        self,
        schema: Mapping[str, Any] | type,
        *,
        include_raw: bool = False,
        method: str = "json_schema",
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, Any]:
        """The model answering ``schema`` (a pydantic class, a TypedDict or a JSON
        schema) as JSON, parsed: into the class for a pydantic class, else a dict."""
        if method not in ("json_schema", "json_mode"):
            raise UsageError(
                f"SmmfChatModel.with_structured_output: method {method!r} is not "
                "supported; use 'json_schema' (the backend enforces the schema)"
            )
        json_schema = convert_to_json_schema(schema)
        is_model = isinstance(schema, type) and issubclass(schema, BaseModel)
        parser: Runnable[Any, Any] = (
            PydanticOutputParser(pydantic_object=schema) if is_model else JsonOutputParser()
        )
        llm = self.bind(response_format=json_schema, **kwargs)
        if not include_raw:
            return llm | parser
        parsed = RunnablePassthrough.assign(
            parsed=lambda x: parser.invoke(x["raw"]), parsing_error=lambda _: None
        )
        return RunnableMap(raw=llm) | parsed


def tools_schema(
    tools: Sequence[Mapping[str, Any]], choice: str | bool | Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """The JSON schema of one reply with ``tools`` bound (OpenAI tool dicts), or None
    for plain text (``tool_choice="none"``)."""
    names = [t["function"]["name"] for t in tools]
    if isinstance(choice, Mapping):
        choice = choice.get("function", {}).get("name") or choice.get("name")
    if choice in (None, "auto"):
        wanted, final = names, True
    elif choice in ("any", "required", True):
        wanted, final = names, False
    elif choice in ("none", False):
        return None
    elif isinstance(choice, str) and choice in names:
        wanted, final = [choice], False
    else:
        raise UsageError(
            f"tool_choice {choice!r} names no bound tool (bound: {', '.join(names) or 'none'}; "
            "or 'auto', 'any', 'required', 'none')"
        )
    variants: list[dict[str, Any]] = []
    defs: dict[str, Any] = {}
    for tool in tools:
        function = tool["function"]
        if function["name"] not in wanted:
            continue
        arguments = harden(dict(function.get("parameters") or {"type": "object"}))
        defs.update(arguments.pop("$defs", {}))
        variants.append(
            {
                "type": "object",
                "properties": {"tool": {"const": function["name"]}, "arguments": arguments},
                "required": ["tool", "arguments"],
                "additionalProperties": False,
            }
        )
    if final:
        variants.append(
            {
                "type": "object",
                "properties": {"final": text_field(FINAL_CHARS)},
                "required": ["final"],
                "additionalProperties": False,
            }
        )
    schema: dict[str, Any] = {"anyOf": variants}
    if defs:
        schema["$defs"] = defs
    return schema


def _tool_step_message(text: str, meta: dict[str, Any], usage: dict[str, Any]) -> AIMessage:
    """A tool step's reply (checked against its schema already) as LangChain's message."""
    step = json.loads(text)
    if "tool" in step:
        call = {"name": step["tool"], "args": step["arguments"], "id": f"call_{uuid.uuid4().hex}"}
        return AIMessage(
            content="",
            tool_calls=[cast(Any, call)],
            response_metadata=meta,
            usage_metadata=cast(Any, usage),
        )
    return AIMessage(content=step["final"], response_metadata=meta, usage_metadata=cast(Any, usage))


def _as_chunk(message: AIMessage) -> AIMessageChunk:
    return AIMessageChunk(
        content=message.content,
        tool_call_chunks=[
            {"name": c["name"], "args": json.dumps(c["args"]), "id": c["id"], "index": i}
            for i, c in enumerate(message.tool_calls)
        ],
        response_metadata=message.response_metadata,
        usage_metadata=message.usage_metadata,
    )


def _message(message: BaseMessage, index: int) -> ChatMessage:
    """A LangChain message as ours; a tool call or result becomes the JSON text a
    tool step is written in, so any backend reads it."""
    text = _text(message, index)
    if isinstance(message, SystemMessage):
        return ChatMessage(role="system", content=text)
    if isinstance(message, HumanMessage):
        return ChatMessage(role="user", content=text)
    if isinstance(message, AIMessage):
        if message.tool_calls:
            call = message.tool_calls[0]
            text = json.dumps({"tool": call["name"], "arguments": call["args"]})
        return ChatMessage(role="assistant", content=text)
    if isinstance(message, ToolMessage):
        name = message.name or "the tool"
        return ChatMessage(role="user", content=f"Result of {name}: {text}")
    raise InputError(
        f"message {index} is a {type(message).__name__}; SmmfChatModel takes system, "
        "human, AI and tool messages"
    )


def _text(message: BaseMessage, index: int) -> str:
    if isinstance(message.content, str):
        return message.content
    parts = []
    for block in message.content:
        if isinstance(block, str):
            parts.append(block)
        elif block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        else:
            raise InputError(
                f"message {index} has a {block.get('type')!r} block; SmmfChatModel takes text"
            )
    return "".join(parts)


# --- flows as runnables and tools ------------------------------------------------------------

_PY_TYPES: dict[str, Any] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "list": list,
    "dict": dict,
    "any": Any,
}


class FlowRunnable(Runnable[Any, Any]):
    """A flow as a LangChain ``Runnable``: its input is the flow's input (a flow
    file's named ``inputs:``, a DAG's root input), its output the output node's
    result; ``stream`` yields a streaming output's chunks (else the result once)."""

    def __init__(
        self, flow: DAG | Flow, registry: ModelRegistry | None, *, output: str | None = None
    ) -> None:
        self.flow = flow
        self.registry = registry
        self.output = output
        self.name = flow.name
        if isinstance(flow, Flow):
            if flow.uses_models and registry is None:
                raise UsageError(f"flow '{flow.name}' calls models; pass registry=")
            if registry is not None:
                flow.check(registry)
        else:
            flow.validate(registry)

    # --- schemas -----------------------------------------------------------------------

    @property
    def InputType(self) -> Any:
        if isinstance(self.flow, Flow):
            return dict[str, Any] if self.flow.spec.inputs else Any
        roots = [op for op in self.flow.nodes if self.flow.graph.in_degree(op.name) == 0]
        types = {op.input_types[0] if op.input_types else Any for op in roots}
        return types.pop() if len(types) == 1 else Any

    @property
    def OutputType(self) -> Any:
        node = self.output or (self.flow.output if isinstance(self.flow, Flow) else None)
        dag = self.flow.dag if isinstance(self.flow, Flow) else self.flow
        ends = [op for op in dag.nodes if op.name == node or (node is None and _is_end(dag, op))]
        return ends[0].output_type if len(ends) == 1 else Any

    def get_input_schema(self, config: RunnableConfig | None = None) -> type[BaseModel]:
        if isinstance(self.flow, Flow) and self.flow.spec.inputs:
            fields: dict[str, Any] = {}
            for name, spec in self.flow.spec.inputs.items():
                tp = _PY_TYPES[JSON_NAMES.get(spec.type, spec.type)]
                default = spec.default if not spec.required else ...
                fields[name] = (tp, Field(default, description=spec.description or None))
            return cast(type[BaseModel], create_model(_model_name(self.name, "Input"), **fields))
        return super().get_input_schema(config)

    # --- running -----------------------------------------------------------------------

    def _options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"registry": self.registry}
        if self.output is not None and not isinstance(self.flow, Flow):  # a Flow knows its own
            options["output"] = self.output
        return options

    async def _arun(self, value: Any) -> Any:
        return await self.flow.arun(value, **self._options())

    def _astream_flow(self, value: Any) -> AsyncIterator[Any]:
        return self.flow.astream(value, **self._options())

    def _loop(self) -> Any:
        if self.registry is None:
            raise UsageError(f"flow '{self.name}': a runnable over a flow needs registry=")
        return registry_loop(self.registry)

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return self._call_with_config(lambda v: self._loop().call(self._arun, v), input, config)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        async def run(value: Any) -> Any:
            return await self._loop().acall(self._arun, value)

        return await self._acall_with_config(run, input, config)

    def _chunks(self, inputs: Iterator[Any]) -> Iterator[Any]:
        for value in inputs:
            yield from self._loop().iterate(lambda v=value: self._astream_flow(v))

    async def _achunks(self, inputs: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for value in inputs:
            async for chunk in self._loop().aiterate(lambda v=value: self._astream_flow(v)):
                yield chunk

    def stream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[Any]:
        yield from self._transform_stream_with_config(iter([input]), self._chunks, config)

    async def astream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        async def one() -> AsyncIterator[Any]:
            yield input

        async for chunk in self._atransform_stream_with_config(one(), self._achunks, config):
            yield chunk


def _is_end(dag: DAG, op: Operator) -> bool:
    return bool(dag.graph.out_degree(op.name) == 0)


def _model_name(name: str, suffix: str) -> str:
    return re.sub(r"\W", "_", name).title().replace("_", "") + suffix


def as_runnable(
    flow: DAG | Flow, *, registry: ModelRegistry | None = None, output: str | None = None
) -> FlowRunnable:
    """``flow`` (a ``DAG`` or a ``load_flow`` result) as a LangChain ``Runnable``,
    checked against ``registry`` now (unknown models fail here, not at the call)."""
    return FlowRunnable(flow, registry, output=output)


def as_tool(
    flow: DAG | Flow,
    *,
    registry: ModelRegistry | None = None,
    name: str | None = None,
    description: str | None = None,
    output: str | None = None,
) -> StructuredTool:
    """``flow`` as a LangChain tool: its arguments are a flow file's ``inputs:``
    (a DAG takes one, ``input``), its result the output as text (JSON unless a string)."""
    runnable = as_runnable(flow, registry=registry, output=output)
    tool_name = re.sub(r"[^A-Za-z0-9_-]", "_", name or flow.name)
    text = description or (flow.spec.description if isinstance(flow, Flow) else "")
    if not text:
        raise UsageError(
            f"flow '{flow.name}' has no description for the tool; pass description= "
            "(a model reads it to choose the tool)"
        )
    named = isinstance(flow, Flow) and bool(flow.spec.inputs)
    if named:
        schema = runnable.get_input_schema()
    else:
        schema = create_model(_model_name(tool_name, "Args"), input=(runnable.InputType, ...))

    def value(arguments: dict[str, Any]) -> Any:
        return arguments if named else arguments["input"]

    def sync(**arguments: Any) -> str:
        return _tool_text(runnable.invoke(value(arguments)))

    async def coroutine(**arguments: Any) -> str:
        return _tool_text(await runnable.ainvoke(value(arguments)))

    return StructuredTool.from_function(
        func=sync,
        coroutine=coroutine,
        name=tool_name,
        description=text,
        args_schema=schema,
    )


def _tool_text(result: Any) -> str:
    data = jsonable(result)
    return data if isinstance(data, str) else json.dumps(data)


# --- runnables inside flows -------------------------------------------------------------


class RunnableOperator(Operator):
    """A node that runs a LangChain ``Runnable`` (a retriever, a tool, a chain) with
    ``ainvoke`` (``stream=True``: ``astream``, a stream port). Its ports are the
    types the Runnable declares where they are plain classes (a retriever: ``str``
    in, ``list[Document]`` out), else ``Any``."""

    def __init__(
        self, runnable: Runnable[Any, Any], *, stream: bool = False, **options: Any
    ) -> None:
        if not isinstance(runnable, Runnable):
            raise UsageError(
                f"RunnableOperator takes a LangChain Runnable, not {type(runnable).__name__}"
            )
        self.runnable = runnable
        self.stream = stream
        output = _port(runnable.OutputType)
        options.setdefault("input_type", _port(runnable.InputType))
        options.setdefault("output_type", stream_of(output) if stream else output)
        super().__init__(**options)

    async def execute(self, ctx: RunContext, value: Any) -> Any:
        if self.stream:
            return self.runnable.astream(value)
        return await self.runnable.ainvoke(value)


def _port(tp: Any) -> Any:
    """``tp`` where the ports can check it (a class, or a generic such as
    ``list[Document]``), else ``Any``."""
    origin = getattr(tp, "__origin__", None)
    if isinstance(tp, type) and origin is None and tp is not object:
        return tp
    if origin in (list, dict, tuple) and all(isinstance(a, type) for a in tp.__args__):
        return tp
    return Any


__all__ = [
    "FlowRunnable",
    "RunnableOperator",
    "SmmfChatModel",
    "SmmfEmbeddings",
    "as_runnable",
    "as_tool",
    "tools_schema",
]
