"""Reading a flow file: YAML text in, plain data plus the line and column of
every value out.

Only YAML's safe subset is read (``yaml.SafeLoader``: no Python tags, nothing
is imported or called), with YAML 1.2 booleans: only ``true``/``false`` are
booleans, so ``on:`` (the fallback operator's parameter), ``yes`` and ``no``
stay strings instead of turning into ``True``/``False`` as YAML 1.1 has it. The document is composed into nodes first, so every
mapping key and value keeps its start mark; later stages ask ``where(path)`` to
point an error at the exact spot. Duplicate keys, which ``safe_load`` silently
collapses, are refused here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from smmf_flow.errors import FlowFileError

Path_ = tuple[str | int, ...]
#: the path suffix under which a mapping key's own position is kept
KEY = "<key>"
_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


@dataclass(slots=True)
class Document:
    """A parsed flow file: its data and the (line, column) of each value, 1-based."""

    file: str
    data: Any
    marks: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def where(self, path: Path_ = (), *, key: bool = False) -> tuple[int | None, int | None]:
        """Line and column of the value at ``path`` (of its key with ``key=True``),
        else of the nearest enclosing value that has one."""
        if key and (*path, KEY) in self.marks:
            return self.marks[(*path, KEY)]
        probe = tuple(path)
        while probe:
            if probe in self.marks:
                return self.marks[probe]
            probe = probe[:-1]
        return self.marks.get((), (None, None))

    def error(self, message: str, path: Path_ = (), *, key: bool = False,
              node: str | None = None) -> FlowFileError:
        """A ``FlowFileError`` located at ``path`` (a message that already starts
        with ``<word> '<node>': `` loses that prefix, since the error names the node)."""
        line, column = self.where(path, key=key)
        if node is not None:
            prefix = re.compile(rf"^\w+ '{re.escape(node)}': ")
            while prefix.match(message):
                message = prefix.sub("", message, count=1)
        return FlowFileError(message, file=self.file, line=line, column=column, node=node)


class FlowLoader(yaml.SafeLoader):
    """``SafeLoader`` with YAML 1.2 booleans (``true``/``false`` only)."""


FlowLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
FlowLoader.add_implicit_resolver("tag:yaml.org,2002:bool",
                                 re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                 list("tTfF"))


def read_flow_text(text: str, file: str = "<flow>") -> Document:
    """Parse YAML ``text``; ``file`` names it in error messages."""
    loader = FlowLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise FlowFileError("the flow file is empty; it needs at least `nodes:`", file=file,
                                line=1, column=1)
        doc = Document(file, None)
        doc.data = _build(loader, root, (), doc)
        return doc
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, file) from None
    except yaml.YAMLError as exc:
        raise FlowFileError(f"invalid YAML: {exc}", file=file) from None
    finally:
        loader.dispose()


def read_flow_file(path: str | Path) -> Document:
    """Read and parse the flow file at ``path``."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FlowFileError("flow file not found", file=str(file)) from None
    except IsADirectoryError:
        raise FlowFileError("is a directory, not a flow file", file=str(file)) from None
    except UnicodeDecodeError as exc:
        raise FlowFileError(f"not UTF-8 text ({exc.reason} at byte {exc.start})",
                            file=str(file)) from None
    except OSError as exc:
        raise FlowFileError(f"cannot read the flow file: {exc.strerror}", file=str(file)) from None
    return read_flow_text(text, str(file))


def _build(loader: FlowLoader, node: yaml.Node, path: Path_, doc: Document) -> Any:
    doc.marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and node.tag not in _PLAIN_TAGS:
        raise _at(doc, node, f"the YAML tag '{node.tag}' is not allowed in a flow file; "
                             "write plain mappings, lists and values")
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolves `<<: *anchor` merge keys
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise _at(doc, key_node, f"a mapping key must be a plain value, "
                                         f"not {type(key).__name__}")
            if key in out:
                first = doc.marks[(*path, key, KEY)][0]
                raise _at(doc, key_node, f"duplicate key '{key}' (first given on line {first})")
            doc.marks[(*path, key, KEY)] = (key_node.start_mark.line + 1,
                                            key_node.start_mark.column + 1)
            out[key] = _build(loader, value_node, (*path, key), doc)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, (*path, i), doc) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def _at(doc: Document, node: yaml.Node, message: str) -> FlowFileError:
    return FlowFileError(message, file=doc.file, line=node.start_mark.line + 1,
                         column=node.start_mark.column + 1)


def _syntax_error(exc: yaml.MarkedYAMLError, file: str) -> FlowFileError:
    mark = exc.problem_mark or exc.context_mark
    parts = [p for p in (exc.context, exc.problem) if p]
    what = "; ".join(parts) or "syntax error"
    if exc.problem_mark is not None and exc.context_mark is not None:
        what += f" (the construct started on line {exc.context_mark.line + 1})"
    return FlowFileError(f"invalid YAML: {what}", file=file,
                         line=mark.line + 1 if mark else None,
                         column=mark.column + 1 if mark else None)


__all__ = ["KEY", "Document", "FlowLoader", "read_flow_file", "read_flow_text"]
