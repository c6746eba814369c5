"""The flows a server offers: every flow file of one folder, loaded and checked
before the first request.

``FlowCatalog.from_dir(folder, registry)`` loads each ``*.yaml``/``*.yml`` with
the flow-file loader (``smmf_flow.flowfile``) and checks it against the
server's model registry, so an unknown model or a bad template is found at
start-up with the file and line, not at the first request. Every flow runs
against the server's registry (a flow file's own ``models:`` is not used: one
server, one set of pools).

Input files are not flows: a file named ``NAME.input.yaml`` (or ``.input.yml``)
holds sample inputs for ``NAME.yaml`` (``smmf-flow run NAME.yaml --input-file
NAME.input.yaml``) and is skipped. A flow that fails to load or to check is
*broken*: by default the server logs a warning with the located error and
serves the others (``catalog.broken`` keeps the messages); with ``strict=True``
(``smmf-flow serve --strict-flows``) the first broken flow stops the start-up.

A run's input is checked against the flow's declared ``inputs:`` (names, types,
defaults) before anything runs; ``prepare`` raises an ``ApiError`` (422) that
names the input. A path in a run's input may only name files inside one
folder (``dag/files.py``): the server's data root if it has one, else the
folder of the flow file; the operators check every such path through it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smmf_flow.dag.files import FileAccess
from smmf_flow.errors import FlowError, InputError, SmmfError
from smmf_flow.flowfile.flow import INPUT_SUFFIXES, Flow, load_flow
from smmf_flow.models.types import ChatChunk, Usage
from smmf_flow.server.errors import ApiError

if TYPE_CHECKING:
    from smmf_flow.models.registry import ModelRegistry

logger = logging.getLogger("smmf_flow.server")
#: how a run request gives a missing input (``flow_inputs.prepare_inputs``'s ``hint``)
HTTP_HINT = "give it as inputs.{name}"


class FlowCatalog:
    """Flows by name, and how to describe, check input for, and run each."""

    def __init__(
        self,
        flows: dict[str, Flow],
        registry: ModelRegistry,
        *,
        data_root: str | os.PathLike[str] | None = None,
        broken: dict[str, str] | None = None,
    ) -> None:
        self.flows = flows
        self.registry = registry
        #: the folder paths in run inputs may name (None: each flow's own folder)
        self.data_root = Path(data_root).resolve() if data_root is not None else None
        #: flow file → why it is not served
        self.broken = broken or {}

    @classmethod
    def from_dir(
        cls,
        folder: str | os.PathLike[str],
        registry: ModelRegistry,
        *,
        strict: bool = False,
        data_root: str | os.PathLike[str] | None = None,
    ) -> FlowCatalog:
        """Load and check every flow file in ``folder``; a broken one is logged and
        left out, or with ``strict`` raised (its located error)."""
        root = Path(folder)
        if not root.is_dir():
            raise FlowError(f"{root}: the flows folder does not exist")
        flows: dict[str, Flow] = {}
        broken: dict[str, str] = {}
        for path in flow_files(root):
            try:
                flow = load_flow(path)
                if flow.name in flows:
                    raise FlowError(
                        f"{path}: flow name '{flow.name}' is already used by "
                        f"{flows[flow.name].file}; give each flow a unique `name:`"
                    )
                flow.check(registry)
            except SmmfError as exc:
                if strict:
                    raise
                broken[str(path)] = str(exc)
                logger.warning("flow not served: %s", exc)
                continue
            flows[flow.name] = flow
        return cls(flows, registry, data_root=data_root, broken=broken)

    def get(self, name: str) -> Flow:
        flow = self.flows.get(name)
        if flow is None:
            known = ", ".join(sorted(self.flows)) or "(none)"
            raise ApiError(
                404, f"unknown flow '{name}' (known flows: {known})", code="flow_not_found"
            )
        return flow

    @staticmethod
    def describe(flow: Flow) -> dict[str, Any]:
        """What a client needs to call the flow: its inputs and whether it streams."""
        inputs = {
            name: {
                "type": spec.type,
                "required": spec.required,
                "description": spec.description,
                **({} if spec.required else {"default": spec.default}),
            }
            for name, spec in flow.spec.inputs.items()
        }
        return {
            "name": flow.name,
            "description": flow.spec.description,
            "inputs": inputs,
            "output": flow.output,
            "stream": flow.spec.stream,
        }

    @staticmethod
    def prepare(flow: Flow, values: dict[str, Any]) -> Any:
        """The run input, checked against the declared inputs (422 if it does not fit;
        a missing input is asked for as the body's ``inputs.NAME``, not ``--input``)."""
        try:
            return flow.prepare(values, hint=HTTP_HINT)
        except InputError as exc:
            raise ApiError(
                422, f"flow '{flow.name}': {exc}", code="invalid_input", param="inputs"
            ) from None

    def files(self, flow: Flow) -> FileAccess:
        """The files a path in a run's input may name: those inside the data root, or
        inside the flow file's folder."""
        return FileAccess.inside(self.data_root or Path(flow.file).resolve().parent)

    async def run(self, flow: Flow, value: Any) -> Any:
        """The flow's output; a stream output is gathered (see ``gather``)."""
        out = await flow.arun(value, registry=self.registry, files=self.files(flow))
        if isinstance(out, AsyncIterator):
            try:
                return gather([chunk async for chunk in out])
            finally:
                close = getattr(out, "aclose", None)
                if close is not None:
                    await close()
        return out

    def stream(self, flow: Flow, value: Any) -> AsyncIterator[Any]:
        return flow.astream(value, registry=self.registry, files=self.files(flow))


def flow_files(folder: Path) -> list[Path]:
    """The flow files of ``folder``, in name order (sample-input files left out)."""
    return sorted(
        path
        for pattern in ("*.yaml", "*.yml")
        for path in folder.glob(pattern)
        if not path.name.endswith(INPUT_SUFFIXES)
    )


def gather(chunks: list[Any]) -> Any:
    """A whole answer from a stream's chunks: joined text for text or chat chunks
    (with the last chunk's finish reason, usage and model), else the list."""
    if chunks and all(isinstance(c, str) for c in chunks):
        return "".join(chunks)
    if chunks and all(isinstance(c, ChatChunk) for c in chunks):
        last = chunks[-1]
        return ChatChunk(
            "".join(c.text for c in chunks),
            finish_reason=last.finish_reason,
            usage=last.usage or Usage(),
            model=last.model,
            instance=last.instance,
        )
    return chunks


__all__ = ["HTTP_HINT", "INPUT_SUFFIXES", "FlowCatalog", "flow_files", "gather"]
