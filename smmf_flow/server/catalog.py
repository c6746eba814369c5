"""The flows a server offers: every YAML file of one folder, loaded and checked
before the first request.

``FlowCatalog.from_dir(folder, registry)`` loads each ``*.yaml``/``*.yml`` with
the flow-file loader (``smmf_flow.flowfile``) and checks it against the
server's model registry, so an unknown model or a bad template stops the server
at start-up with the file and line, not at the first request. Every flow runs
against the server's registry (a flow file's own ``models:`` is not used: one
server, one set of pools).

A run's input is checked against the flow's declared ``inputs:`` (names, types,
defaults) before anything runs; ``prepare`` raises an ``ApiError`` (422) that
names the input.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smmf_flow.errors import FlowError
from smmf_flow.flowfile.flow import Flow, load_flow
from smmf_flow.models.types import ChatChunk, Usage
from smmf_flow.server.errors import ApiError

if TYPE_CHECKING:
    from smmf_flow.models.registry import ModelRegistry


class FlowCatalog:
    """Flows by name, and how to describe, check input for, and run each."""

    def __init__(self, flows: dict[str, Flow], registry: "ModelRegistry") -> None:
        self.flows = flows
        self.registry = registry

    @classmethod
    def from_dir(cls, folder: str | Path, registry: "ModelRegistry") -> "FlowCatalog":
        """Load and check every flow file in ``folder`` (raises ``FlowFileError``)."""
        root = Path(folder)
        if not root.is_dir():
            raise FlowError(f"{root}: the flows folder does not exist")
        flows: dict[str, Flow] = {}
        for path in sorted([*root.glob("*.yaml"), *root.glob("*.yml")]):
            flow = load_flow(path)
            if flow.name in flows:
                raise FlowError(f"{path}: flow name '{flow.name}' is already used by "
                                f"{flows[flow.name].file}; give each flow a unique `name:`")
            flow.check(registry)
            flows[flow.name] = flow
        return cls(flows, registry)

    def get(self, name: str) -> Flow:
        flow = self.flows.get(name)
        if flow is None:
            known = ", ".join(sorted(self.flows)) or "(none)"
            raise ApiError(404, f"unknown flow '{name}' (known flows: {known})",
                           code="flow_not_found")
        return flow

    @staticmethod
    def describe(flow: Flow) -> dict[str, Any]:
        """What a client needs to call the flow: its inputs and whether it streams."""
        inputs = {name: {"type": spec.type, "required": spec.required,
                         "description": spec.description,
                         **({} if spec.required else {"default": spec.default})}
                  for name, spec in flow.spec.inputs.items()}
        return {"name": flow.name, "description": flow.spec.description, "inputs": inputs,
                "output": flow.output, "stream": flow.spec.stream}

    @staticmethod
    def prepare(flow: Flow, values: dict[str, Any]) -> Any:
        """The run input, checked against the declared inputs (422 if it does not fit)."""
        try:
            return flow.prepare(values)
        except FlowError as exc:
            raise ApiError(422, f"flow '{flow.name}': {exc}", code="invalid_input",
                           param="inputs") from None

    async def run(self, flow: Flow, value: Any) -> Any:
        """The flow's output; a stream output is gathered (see ``gather``)."""
        out = await flow.arun(value, registry=self.registry)
        if isinstance(out, AsyncIterator):
            try:
                return gather([chunk async for chunk in out])
            finally:
                close = getattr(out, "aclose", None)
                if close is not None:
                    await close()
        return out

    def stream(self, flow: Flow, value: Any) -> AsyncIterator[Any]:
        return flow.astream(value, registry=self.registry)


def gather(chunks: list[Any]) -> Any:
    """A whole answer from a stream's chunks: joined text for text or chat chunks
    (with the last chunk's finish reason, usage and model), else the list."""
    if chunks and all(isinstance(c, str) for c in chunks):
        return "".join(chunks)
    if chunks and all(isinstance(c, ChatChunk) for c in chunks):
        last = chunks[-1]
        return ChatChunk("".join(c.text for c in chunks), finish_reason=last.finish_reason,
                         usage=last.usage or Usage(), model=last.model, instance=last.instance)
    return chunks


__all__ = ["FlowCatalog", "gather"]
