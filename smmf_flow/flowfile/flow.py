"""``Flow``: a loaded flow file — its spec, its DAG, and how to check and run it.

``load_flow(path)`` reads, validates and builds a flow; nothing runs and no
model is touched. ``flow.check(registry)`` then asks every node whether it can
run against a model registry (unknown models, wrong model kinds), with errors
pointing at the parameter that names the model. ``flow.arun`` /
``flow.astream`` run it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smmf_flow.errors import FlowError, InputError, did_you_mean
from smmf_flow.flowfile.build import build_dag
from smmf_flow.flowfile.flow_inputs import CLI_HINT, prepare_inputs
from smmf_flow.flowfile.loader import Document, read_flow_file, read_flow_text
from smmf_flow.flowfile.registry import OperatorTypes
from smmf_flow.flowfile.schema import FlowSpec
from smmf_flow.models.defaults import default_config
from smmf_flow.runner.dag import DAG

#: the suffix of a flow's sample-input file (``smmf-flow run --input-file``), which
#: ``serve --flows`` and ``validate`` pass over rather than load as a flow
INPUT_SUFFIXES = (".input.yaml", ".input.yml")


@dataclass
class Flow:
    """A flow file, built into a DAG."""

    spec: FlowSpec
    dag: DAG
    doc: Document
    types: OperatorTypes
    #: modules given on the command line (they join the flow's own ``plugins:``)
    extra_plugins: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.dag.name

    @property
    def file(self) -> str:
        return self.doc.file

    @property
    def output(self) -> str:
        """The node whose result a run returns."""
        if self.spec.output:
            return self.spec.output
        return next(n for n, d in self.dag.graph.out_degree() if d == 0)

    def kind(self, node: str) -> str:
        """The flow-file type name of ``node``."""
        return self.spec.nodes[node].type

    # --- models --------------------------------------------------------------------

    def models_path(self, override: str | os.PathLike[str] | None = None) -> Path:
        """The model config: ``override``, else the flow's ``models:`` (relative to
        the flow file), else ``default_config()``: ``$SMMF_MODELS``, else the
        ``default.toml`` shipped in the package (never the working directory)."""
        if override:
            return Path(override)
        if self.spec.models:
            path = Path(self.spec.models).expanduser()
            return (
                path
                if path.is_absolute()
                else Path(os.path.normpath(Path(self.file).parent / path))
            )
        return default_config()

    @property
    def uses_models(self) -> bool:
        """Whether any node calls a model (and so needs a model registry)."""
        return any(hasattr(op, "model_refs") for op in self.dag.nodes)

    def check(self, registry: Any) -> None:
        """Run every node's ``check(registry)`` and validate the DAG against it; an
        error is located at the node and parameter it names."""
        for op in self.dag.nodes:
            with self.doc.locating(node=op.name):
                op.check(registry)
        with self.doc.locating():
            self.dag.validate(registry)
        self.check_inputs_read()

    def check_inputs_read(self) -> None:
        """A first node reads the flow's inputs: a template variable or an
        ``input_key`` that names no declared input is a typo, refused before a run
        (a flow that declares no inputs takes anything, and is not checked)."""
        declared = self.spec.inputs
        if not declared:
            return
        first = {name for name, degree in self.dag.graph.in_degree() if degree == 0}
        for op in self.dag.nodes:
            reads = getattr(op, "reads_inputs", None)
            if op.name not in first or reads is None:
                continue
            for name, param in sorted(reads().items()):
                if name not in declared:
                    with self.doc.locating(node=op.name):
                        raise FlowError(
                            f"reads '{name}', which is not an input of the flow"
                            f"{did_you_mean(name, declared)} (its inputs: {', '.join(declared)})",
                            param=param,
                        )

    # --- running -------------------------------------------------------------------

    def locate(self, error: InputError) -> InputError:
        """Give a run's ``InputError`` the place in this file of the node that refused
        the input (the runner names the node); return it."""
        if error.node in self.spec.nodes:
            line, column = self.doc.where(("nodes", error.node), key=True)
            error.locate(file=self.file, line=line, column=column)
        return error

    def prepare(
        self, values: Any, *, from_strings: Sequence[str] = (), hint: str = CLI_HINT
    ) -> Any:
        """The run input for ``values``, checked against the declared inputs (``hint``:
        how to give a missing one, as ``prepare_inputs`` takes it)."""
        return prepare_inputs(
            self.spec.inputs, values, from_strings=frozenset(from_strings), hint=hint
        )

    async def arun(self, values: Any = None, **options: Any) -> Any:
        """Run the flow and return the output node's result (options as ``dag.arun``)."""
        return await self.dag.arun(self.prepare(values), output=self.output, **options)

    async def astream(self, values: Any = None, **options: Any) -> AsyncIterator[Any]:
        """Run the flow and yield the output's chunks as they come."""
        async for chunk in self.dag.astream(self.prepare(values), output=self.output, **options):
            yield chunk


def load_flow(
    path: str | os.PathLike[str], *, plugins: Sequence[str] = (), types: OperatorTypes | None = None
) -> Flow:
    """Read, validate and build the flow file at ``path``; nothing runs.

    ``plugins`` are modules named on the command line; they may add operator
    types and functions, like the flow's own ``plugins:``.
    """
    return _build(read_flow_file(path), plugins, types)


def loads_flow(
    text: str,
    *,
    file: str = "<flow>",
    plugins: Sequence[str] = (),
    types: OperatorTypes | None = None,
) -> Flow:
    """``load_flow`` for YAML text; ``file`` names it in errors."""
    return _build(read_flow_text(text, file), plugins, types)


def _build(doc: Document, plugins: Sequence[str], types: OperatorTypes | None) -> Flow:
    types = (types or OperatorTypes.default()).copy()
    for module in plugins:
        types.add_plugin(module, [Path.cwd()])
    spec, dag, used = build_dag(doc, types)
    return Flow(spec, dag, doc, used, list(plugins))


__all__ = ["INPUT_SUFFIXES", "Flow", "load_flow", "loads_flow"]
