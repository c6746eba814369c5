"""Operator types: the names a flow file may give as a node's ``type``.

Three sources, and nothing else, so that a flow file never imports code of its
own choosing:

1. the built-ins below, referenced as ``"module:Class"`` strings and imported
   only when a flow uses them;
2. installed packages that declare an entry point in the group
   ``smmf_flow.operators`` (``mytype = "pkg.module:MyOperator"``);
3. plugin modules named explicitly: on the command line (``--plugin MODULE``,
   any importable module), or under ``plugins:`` in the flow — and then only a
   module that lives in the flow's own folder, so a flow file cannot pull in
   installed code (``plugins: [os]`` is refused). Every ``Operator`` subclass
   a plugin defines with its own ``kind`` becomes a type.

``function: module:name`` (map, join, branch, stream and input nodes) and an
agent's ``tools: [module:name]`` reach code through an allow-list, never by
attribute access: ``module`` must be a plugin, and ``name`` one public
module-level name of it (no leading ``_``, no dots) that is

* a function or class the plugin defines itself (``__module__`` is the
  plugin's: not ``os.system`` or ``json.loads`` that it imported),
* an ``@map_operator`` function it defines, or
* a ``Tool`` (made with ``@tool`` or ``make_tool``; a plugin may re-export
  ready-made tools, as ``flows/agent_tools.py`` does).

An agent's tools must be ``Tool`` objects. So a flow file reaches no dunder
(``__builtins__``, ``__loader__``), nothing private and nothing imported.

A built-in name cannot be taken over by an entry point or a plugin.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import importlib.metadata
import inspect
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeGuard

from smmf_flow.dag.map import MapOperatorFactory
from smmf_flow.dag.operator import Operator
from smmf_flow.errors import FlowError, describe, did_you_mean

if TYPE_CHECKING:
    from smmf_flow.operators.tools import Tool

ENTRY_POINT_GROUP = "smmf_flow.operators"
_ALLOWED = "a function or class the plugin defines itself, an @map_operator function, or a @tool"

BUILTINS: dict[str, str] = {
    "input": "smmf_flow.dag.input_operator:InputOperator",
    "map": "smmf_flow.dag.map:MapOperator",
    "branch": "smmf_flow.dag.branch:BranchOperator",
    "join": "smmf_flow.dag.join:JoinOperator",
    "streamify": "smmf_flow.dag.stream_operators:StreamifyOperator",
    "unstreamify": "smmf_flow.dag.stream_operators:UnstreamifyOperator",
    "transform_stream": "smmf_flow.dag.stream_operators:TransformStreamOperator",
    "reduce_stream": "smmf_flow.dag.stream_operators:ReduceStreamOperator",
    "prompt": "smmf_flow.operators:PromptOperator",
    "llm": "smmf_flow.operators:LLMOperator",
    "embedding": "smmf_flow.operators:EmbeddingOperator",
    "router": "smmf_flow.operators:RouterOperator",
    "fallback": "smmf_flow.operators:FallbackOperator",
    "splitter": "smmf_flow.operators:TextSplitterOperator",
    "indexer": "smmf_flow.operators:IndexerOperator",
    "retriever": "smmf_flow.operators:RetrieverOperator",
    "answer": "smmf_flow.operators:AnswerOperator",
    "agent": "smmf_flow.operators:AgentOperator",
}


class OperatorTypes:
    """Type name → operator class, resolved lazily."""

    def __init__(self, refs: dict[str, str | type[Operator]] | None = None) -> None:
        self._refs: dict[str, str | type[Operator]] = dict(BUILTINS if refs is None else refs)
        self._origin: dict[str, str] = dict.fromkeys(self._refs, "built-in")
        #: plugin modules by name: the only places ``function:`` may reach
        self.plugins: dict[str, ModuleType] = {}

    @classmethod
    def default(cls) -> OperatorTypes:
        """The built-ins plus every installed entry point."""
        types = cls()
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name not in types._refs:
                types._refs[ep.name] = ep.value
                types._origin[ep.name] = f"entry point of {ep.dist.name if ep.dist else '?'}"
        return types

    def copy(self) -> OperatorTypes:
        other = OperatorTypes(self._refs)
        other._origin = dict(self._origin)
        other.plugins = dict(self.plugins)
        return other

    # --- looking up --------------------------------------------------------------------

    def names(self) -> list[str]:
        return sorted(self._refs)

    def __contains__(self, name: object) -> bool:
        return name in self._refs

    def resolve(self, name: str) -> type[Operator]:
        """The class of type ``name``; a ``FlowError`` saying what is known otherwise."""
        ref = self._refs.get(name)
        if ref is None:
            raise FlowError(
                f"unknown operator type '{name}'{did_you_mean(name, self._refs)} "
                f"(known types: {', '.join(self.names())}; more come from "
                "--plugin MODULE)"
            )
        if isinstance(ref, str):
            ref = self._refs[name] = _import_class(name, ref)
        return ref

    def kind_of(self, op: Operator) -> str:
        """The type name under which ``op``'s class is registered (for export)."""
        kind = type(op).kind
        if kind and kind in self._refs:
            try:
                registered = self.resolve(kind)
            except FlowError:
                registered = None
            if registered is type(op):
                return kind
        raise FlowError(
            f"it is a {type(op).__module__}.{type(op).__qualname__}, which is not a registered "
            "operator type; give the class its own `kind` and list its module as a plugin (or "
            f"register it under the entry point group '{ENTRY_POINT_GROUP}')",
            node=op.name,
        )

    # --- plugins -----------------------------------------------------------------------

    def add_plugin(
        self, module_name: str, search: Sequence[Path] = (), *, local_to: Path | None = None
    ) -> ModuleType:
        """Import ``module_name`` (looking first in ``search``) and register its types.

        With ``local_to`` (a flow file's folder) the module must be a file in that
        folder: a flow file may name its own modules, not installed ones.
        """
        if module_name in self.plugins:
            return self.plugins[module_name]
        if local_to is not None:
            _check_local(module_name, local_to)
            search = [local_to]
        try:
            with _on_path(search):
                module = importlib.import_module(module_name)
        except Exception as exc:
            raise FlowError(f"cannot import plugin '{module_name}': {describe(exc)}") from exc
        if local_to is not None and not _inside(module, local_to):
            raise FlowError(
                f"plugin '{module_name}' is already imported from "
                f"{getattr(module, '__file__', '?')}, not from the flow's folder; "
                "rename the flow's module"
            )
        for obj in vars(module).values():
            if (
                isinstance(obj, type)
                and issubclass(obj, Operator)
                and obj.__module__ == module.__name__
                and "kind" in vars(obj)
                and obj.kind
            ):
                self._register(obj.kind, obj, f"plugin {module_name}")
        self.plugins[module_name] = module
        return module

    def _register(self, name: str, cls: type[Operator], origin: str) -> None:
        current = self._refs.get(name)
        if current is not None and current is not cls:
            raise FlowError(
                f"{origin} defines operator type '{name}' ({cls.__qualname__}), "
                f"but '{name}' is already a type ({self._origin[name]}); "
                "give the class another `kind`"
            )
        self._refs[name] = cls
        self._origin[name] = origin

    def function(self, ref: str) -> Callable[..., Any]:
        """The callable ``module:name`` names: see the module docstring for what a
        flow file may name."""
        module, obj = self._public(ref, "function")
        if isinstance(obj, MapOperatorFactory) and _defined_in(obj.fn, module):
            return obj.fn
        if _is_tool(obj):
            return obj
        if (inspect.isfunction(obj) or isinstance(obj, type)) and _defined_in(obj, module):
            return obj
        raise FlowError(
            f"function '{ref}' names {_describe(obj, module)}; a flow file may name only {_ALLOWED}"
        )

    def tool(self, ref: str) -> Any:
        """The ``Tool`` ``module:name`` names (an agent's ``tools:`` entry)."""
        module, obj = self._public(ref, "tool")
        if not _is_tool(obj):
            raise FlowError(
                f"tool '{ref}' names {_describe(obj, module)}, not a tool; "
                "decorate a function of the plugin with @tool "
                "(smmf_flow.operators.tool)"
            )
        return obj

    def _public(self, ref: str, what: str) -> tuple[ModuleType, Any]:
        """The plugin module and the object ``ref`` names, refusing anything but
        one public module-level name of a plugin."""
        module_name, sep, name = ref.partition(":") if isinstance(ref, str) else ("", "", "")
        if not sep or not module_name or not name:
            raise FlowError(f"{what} '{ref}' must be written 'module:name'")
        module = self.plugins.get(module_name)
        if module is None:
            listed = ", ".join(self.plugins) or "none"
            raise FlowError(
                f"{what} '{ref}': module '{module_name}' is not a plugin "
                f"(plugins: {listed}); list it under `plugins:` in the flow or "
                f"pass --plugin {module_name}"
            )
        if not name.isidentifier() or name.startswith("_"):
            why = (
                "an attribute chain"
                if "." in name
                else "private"
                if name.startswith("_")
                else "not a plain name"
            )
            raise FlowError(
                f"{what} '{ref}': '{name}' is {why}; a flow file may name only "
                f"one public module-level name of a plugin: {_ALLOWED}"
            )
        if name not in vars(module):
            raise FlowError(f"{what} '{ref}': plugin '{module_name}' has no '{name}'")
        return module, vars(module)[name]


def _defined_in(obj: Any, module: ModuleType) -> bool:
    return getattr(obj, "__module__", None) == module.__name__


def _is_tool(obj: Any) -> TypeGuard[Tool]:
    from smmf_flow.operators.tools import Tool  # the operator library loads on demand

    return isinstance(obj, Tool)


def _describe(obj: Any, module: ModuleType) -> str:
    """What a refused object is: ``the module json``, ``posix.system, which plugin
    'p' imports rather than defines``, ``a partial``."""
    if isinstance(obj, ModuleType):
        return f"the module {obj.__name__}"
    origin = getattr(obj, "__module__", None)
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    if not (isinstance(origin, str) and isinstance(name, str) and callable(obj)):
        return f"a {type(obj).__name__}"
    if origin != module.__name__:
        return f"{origin}.{name}, which plugin '{module.__name__}' imports rather than defines"
    return f"{origin}.{name}"


def _check_local(module_name: str, folder: Path) -> None:
    top = module_name.split(".")[0]
    if importlib.machinery.PathFinder.find_spec(top, [str(folder)]) is None:
        raise FlowError(
            f"plugin '{module_name}' is not a module in the flow's folder "
            f"({folder}); a flow file may only name its own modules (put {top}.py "
            f"beside it); give an installed module with --plugin {module_name}"
        )


def _inside(module: ModuleType, folder: Path) -> bool:
    file = getattr(module, "__file__", None)
    return file is not None and Path(file).resolve().is_relative_to(folder.resolve())


def _import_class(name: str, ref: str) -> type[Operator]:
    module_name, _, attr = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise FlowError(
            f"operator type '{name}' is not available: cannot import {module_name} ({exc})"
        ) from exc
    cls = getattr(module, attr, None)
    if cls is None:
        raise FlowError(
            f"operator type '{name}' is not available: {module_name} has no '{attr}' (yet)"
        )
    if not (isinstance(cls, type) and issubclass(cls, Operator)):
        raise FlowError(f"operator type '{name}' names {ref}, which is not an Operator class")
    return cls


@contextlib.contextmanager
def _on_path(folders: Sequence[Path]) -> Iterator[None]:
    """Put ``folders`` first on ``sys.path`` while a plugin is imported."""
    added = [str(f) for f in folders if str(f) not in sys.path]
    sys.path[:0] = added
    try:
        yield
    finally:
        for entry in added:
            with contextlib.suppress(ValueError):
                sys.path.remove(entry)


__all__ = ["BUILTINS", "ENTRY_POINT_GROUP", "OperatorTypes"]
