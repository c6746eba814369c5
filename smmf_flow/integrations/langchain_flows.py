"""Flows inside LangChain, and LangChain runnables inside flows.

``as_runnable`` makes a flow (a ``DAG`` or a loaded flow file) a LangChain
``Runnable`` whose input schema is the flow's ``inputs:``; ``as_tool`` makes it a
tool an agent can call; ``RunnableOperator`` runs any ``Runnable`` (a retriever,
a tool, a chain) as a node of a flow, with the ports it declares. Runs go
through the registry's loop thread, as every adapter call does
(``registry_loop.py``). Import these from ``smmf_flow.integrations.langchain``.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

from smmf_flow.integrations import require

require("langchain_core", "langchain")

from langchain_core.runnables import Runnable, RunnableConfig  # noqa: E402 - after the check
from langchain_core.tools import StructuredTool  # noqa: E402
from pydantic import BaseModel, Field, create_model  # noqa: E402

from smmf_flow.dag import Operator, RunContext  # noqa: E402
from smmf_flow.dag.ports import stream_of  # noqa: E402
from smmf_flow.errors import UsageError  # noqa: E402
from smmf_flow.flowfile import Flow  # noqa: E402
from smmf_flow.flowfile.input_types import python_type  # noqa: E402
from smmf_flow.integrations.registry_loop import registry_loop  # noqa: E402
from smmf_flow.models.registry import ModelRegistry  # noqa: E402
from smmf_flow.runner import DAG  # noqa: E402
from smmf_flow.runner.values import jsonable  # noqa: E402


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
                tp = python_type(spec.type)
                default = spec.default if not spec.required else ...
                fields[name] = (tp, Field(default, description=spec.description or None))
            return create_model(_model_name(self.flow.name, "Input"), **fields)
        return cast(type[BaseModel], super().get_input_schema(config))

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


__all__ = ["FlowRunnable", "RunnableOperator", "as_runnable", "as_tool"]
