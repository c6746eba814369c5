"""smmf-flow inside LangChain, and LangChain inside smmf-flow.

``SmmfEmbeddings`` and ``SmmfChatModel`` are LangChain models on registry names:
a name may be a group, so fallback (mid-stream too) and routing happen inside,
and concurrent embedding calls share the model's micro-batches. ``as_runnable``
makes a flow (a ``DAG`` or a loaded flow file) a ``Runnable``, ``as_tool`` a tool
for agents, and ``RunnableOperator`` runs any ``Runnable`` as a node of a flow
(those three live in ``langchain_flows.py``).

Sync and async methods both work anywhere: every call runs on the registry's
loop thread (``registry_loop.py``), so a sync call from a plain thread or from
inside a running event loop neither starts a loop of its own nor deadlocks.

Tools are JSON, not a native feature of the backends: ``bind_tools`` makes the
model answer under a JSON schema (a grammar on llama.cpp) that is either a call
of one bound tool, with arguments per its schema, or a final one-line answer.
"""

from __future__ import annotations

import json
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
    RunnableMap,
    RunnablePassthrough,
)
from langchain_core.tools import BaseTool  # noqa: E402
from langchain_core.utils.function_calling import (  # noqa: E402
    convert_to_json_schema,
    convert_to_openai_tool,
)
from pydantic import BaseModel, ConfigDict, Field, model_validator  # noqa: E402

from smmf_flow.errors import InputError, UsageError  # noqa: E402
from smmf_flow.integrations.langchain_flows import (  # noqa: E402 - re-exported here
    FlowRunnable,
    RunnableOperator,
    as_runnable,
    as_tool,
)
from smmf_flow.integrations.registry_loop import registry_loop  # noqa: E402
from smmf_flow.models.registry import ModelRegistry  # noqa: E402
from smmf_flow.models.types import ChatMessage, ChatRequest, ResponseFormat  # noqa: E402
from smmf_flow.operators.reply_schemas import harden, text_field  # noqa: E402
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
        json_schema = convert_to_json_schema(cast(Any, schema))
        is_model = isinstance(schema, type) and issubclass(schema, BaseModel)
        parser: Runnable[Any, Any] = (
            PydanticOutputParser(pydantic_object=cast(Any, schema))
            if is_model
            else JsonOutputParser()
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


__all__ = [
    "FlowRunnable",
    "RunnableOperator",
    "SmmfChatModel",
    "SmmfEmbeddings",
    "as_runnable",
    "as_tool",
    "tools_schema",
]
