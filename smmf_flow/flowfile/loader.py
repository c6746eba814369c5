"""Reading a flow file: YAML text in, plain data plus the line and column of
every value out.

Only YAML's safe subset is read (``yaml.SafeLoader``: no Python tags, nothing
is imported or called), with YAML 1.2 booleans: only ``true``/``false`` are
booleans, so ``on:`` (the fallback operator's parameter), ``yes`` and ``no``
stay strings instead of turning into ``True``/``False`` as YAML 1.1 has it. The
document is composed into nodes first, so every mapping key and value keeps its
start mark; later stages ask ``where(path)``, or ``locate(error)`` with the
node and parameter the error names, to point it at the exact spot. Duplicate
keys, which ``safe_load`` silently collapses, are refused here.

A flow file is bounded before it can grow: at most ``MAX_FILE_BYTES`` (1 MiB)
are read, and while it is composed at most ``MAX_ALIASES`` alias uses
(``*name``), ``MAX_VALUES`` values counting every value an alias or merge key
repeats, and ``MAX_DEPTH`` levels of nesting — so a "billion laughs" file
(anchors nesting lists of aliases nine deep) is refused at its line in
milliseconds instead of expanding into gigabytes, and so is an alias that
contains itself.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from smmf_flow.errors import FlowError, FlowFileError, UnknownParameter

#: the most bytes of a flow file that are read
MAX_FILE_BYTES = 1 << 20
#: the most alias uses (``*name``) in a flow file
MAX_ALIASES = 1_000
#: the most values a flow file may hold, every repeat by an alias counted
MAX_VALUES = 100_000
#: the deepest nesting of mappings and lists
MAX_DEPTH = 64

Path_ = tuple[str | int | float | None, ...]  # a YAML key may be any plain value
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

    def error(
        self, message: str, path: Path_ = (), *, key: bool = False, node: str | None = None
    ) -> FlowFileError:
        """A ``FlowFileError`` (the file itself is malformed) located at ``path``."""
        line, column = self.where(path, key=key)
        return FlowFileError(message, file=self.file, line=line, column=column, node=node)

    def locate(
        self, error: FlowError, path: Path_ | None = None, *, key: bool = False
    ) -> FlowError:
        """Give ``error`` this file and the line and column of ``path``; without a
        path, of the node and parameter the error names (``error.node``,
        ``error.param``). An error that already has a line keeps it."""
        if error.line is None:
            if path is None:
                path, key = self.path_of(error)
            line, column = self.where(path, key=key)
            error.locate(file=self.file, line=line, column=column)
        error.locate(file=self.file)
        return error

    def path_of(self, error: FlowError) -> tuple[Path_, bool]:
        """Where in the file ``error`` is, from its fields, and whether to point at
        the key: the parameter's value (a misspelt name: its key), else the node's
        name, else the top of the file."""
        nodes = self.data.get("nodes") if isinstance(self.data, dict) else None
        if not error.node or not isinstance(nodes, dict) or error.node not in nodes:
            return (), False
        node: Path_ = ("nodes", error.node)
        parts = tuple(int(p) if p.isdigit() else p for p in (error.param or "").split(".") if p)
        while parts and (*node, *parts) not in self.marks:
            parts = parts[:-1]
        if not parts:
            return node, True
        return (*node, *parts), isinstance(error, UnknownParameter)

    @contextmanager
    def locating(
        self, path: Path_ | None = None, *, key: bool = False, **fields: Any
    ) -> Iterator[None]:
        """Locate every ``FlowError`` raised inside in this file (``located``'s
        fields first, then ``locate``)."""
        try:
            yield
        except FlowError as error:
            self.locate(error.locate(**fields), path, key=key)
            raise


class LimitExceeded(yaml.MarkedYAMLError):
    """A flow file is larger, deeper or more repetitive than the limits allow."""


class FlowLoader(yaml.SafeLoader):
    """``SafeLoader`` with YAML 1.2 booleans (``true``/``false`` only) that
    counts, while composing, what each node expands to."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.aliases = 0
        self.depth = 0
        #: id(node) -> (values, depth) of the node with every alias expanded
        self.expanded: dict[int, tuple[int, int]] = {}

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        start = self.peek_event().start_mark  # type: ignore[no-untyped-call]  # untyped in stubs
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise LimitExceeded(
                    problem=f"more than {MAX_ALIASES} alias uses (*name); "
                    "a flow file may repeat itself only that often",
                    problem_mark=start,
                )
            node = super().compose_node(parent, index)
            if id(node) not in self.expanded:
                raise LimitExceeded(
                    problem="this alias refers to a value that contains it; "
                    "a flow file cannot be recursive",
                    problem_mark=start,
                )
            return node
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise LimitExceeded(
                problem=f"nested more than {MAX_DEPTH} levels deep", problem_mark=start
            )
        try:
            node = super().compose_node(parent, index)
        finally:
            self.depth -= 1
        if node is not None:
            self._measure(node)
        return node

    def _measure(self, node: yaml.Node) -> None:
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        values, depth = 1, 1
        for child in children:
            child_values, child_depth = self.expanded[id(child)]
            values, depth = values + child_values, max(depth, child_depth + 1)
        mark = node.start_mark
        if values > MAX_VALUES:
            raise LimitExceeded(
                problem=f"the flow file holds more than {MAX_VALUES:,} values "
                "here (counting each value a YAML alias or merge key "
                "repeats); a flow file this large is refused",
                problem_mark=mark,
            )
        if depth > MAX_DEPTH:
            raise LimitExceeded(
                problem=f"nested more than {MAX_DEPTH} levels deep (counting "
                "what YAML aliases repeat)",
                problem_mark=mark,
            )
        self.expanded[id(node)] = (values, depth)


FlowLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
FlowLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
# PyYAML's own safe constructors, pinned: SafeLoader's table is shared and some
# libraries patch it in place (lm-format-enforcer, a vLLM dependency, makes timestamps
# plain strings), which must not change what a flow file means
FlowLoader.yaml_constructors = {
    **yaml.SafeLoader.yaml_constructors,
    **{
        f"tag:yaml.org,2002:{kind}": getattr(
            yaml.constructor.SafeConstructor, f"construct_yaml_{kind}"
        )
        for kind in (
            "null",
            "bool",
            "int",
            "float",
            "binary",
            "timestamp",
            "omap",
            "pairs",
            "set",
            "str",
            "seq",
            "map",
        )
    },
}


def read_flow_text(text: str, file: str = "<flow>") -> Document:
    """Parse YAML ``text``; ``file`` names it in error messages."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise FlowFileError(
            f"the flow file is larger than {MAX_FILE_BYTES:,} bytes; a flow "
            "file this large is refused",
            file=file,
        )
    loader: FlowLoader | None = None
    try:
        loader = FlowLoader(text)  # checks the characters first
        root = loader.get_single_node()
        if root is None:
            raise FlowFileError(
                "the flow file is empty; it needs at least `nodes:`", file=file, line=1, column=1
            )
        doc = Document(file, None)
        doc.data = _build(loader, root, (), doc)
        return doc
    except LimitExceeded as exc:
        mark = exc.problem_mark  # always given where a limit is raised
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        raise FlowFileError(str(exc.problem), file=file, line=line, column=column) from None
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, file) from None
    except yaml.reader.ReaderError as exc:
        line, column = _position(text, exc.position)
        raise FlowFileError(
            f"invalid YAML: unacceptable character #x{exc.character:04x}: {exc.reason}",
            file=file,
            line=line,
            column=column,
        ) from None
    except yaml.YAMLError as exc:
        raise FlowFileError(f"invalid YAML: {exc}", file=file, line=1, column=1) from None
    finally:
        if loader is not None:
            loader.dispose()


def read_flow_file(path: str | os.PathLike[str]) -> Document:
    """Read and parse the flow file at ``path``."""
    file = Path(path)
    try:
        with file.open("rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise FlowFileError(
                f"the flow file is larger than {MAX_FILE_BYTES:,} bytes; a "
                "flow file this large is refused",
                file=str(file),
            )
        text = data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    except FileNotFoundError:
        raise FlowFileError("flow file not found", file=str(file)) from None
    except IsADirectoryError:
        raise FlowFileError("is a directory, not a flow file", file=str(file)) from None
    except UnicodeDecodeError as exc:
        line, column = _position(data, exc.start)
        raise FlowFileError(
            f"not UTF-8 text ({exc.reason} at byte {exc.start})",
            file=str(file),
            line=line,
            column=column,
        ) from None
    except OSError as exc:
        raise FlowFileError(f"cannot read the flow file: {exc.strerror}", file=str(file)) from None
    return read_flow_text(text, str(file))


def _build(loader: FlowLoader, node: yaml.Node, path: Path_, doc: Document) -> Any:
    doc.marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and node.tag not in _PLAIN_TAGS:
        raise _at(
            doc,
            node,
            f"the YAML tag '{node.tag}' is not allowed in a flow file; "
            "write plain mappings, lists and values",
        )
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolves `<<: *anchor` merge keys
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(loader, key_node, doc)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise _at(doc, key_node, _not_a_plain_key(key, key_node))
            if key in out:
                first = doc.marks[(*path, key, KEY)][0]
                raise _at(doc, key_node, f"duplicate key '{key}' (first given on line {first})")
            doc.marks[(*path, key, KEY)] = (
                key_node.start_mark.line + 1,
                key_node.start_mark.column + 1,
            )
            out[key] = _build(loader, value_node, (*path, key), doc)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, (*path, i), doc) for i, item in enumerate(node.value)]
    return _scalar(loader, node, doc)


def _not_a_plain_key(key: Any, key_node: yaml.Node) -> str:
    text = f"a mapping key must be a plain value, not {type(key).__name__}"
    if isinstance(key_node, yaml.MappingNode) and key_node.flow_style:
        # `template: {{ question }}`: YAML reads the braces as a mapping in a mapping
        text += (
            "; an unquoted {{ ... }} is read as a YAML mapping: quote a Jinja "
            'template, e.g. template: "{{ question }}"'
        )
    return text


def _scalar(loader: FlowLoader, node: yaml.Node, doc: Document) -> Any:
    """The value of a scalar (or a key); a value that its tag cannot read
    (``!!int abc``, an integer of more than 4,300 digits) is a located error."""
    try:
        return loader.construct_object(node, deep=True)
    except yaml.YAMLError:
        raise
    except (ValueError, TypeError, AttributeError, KeyError, OverflowError) as exc:
        tag = node.tag.rsplit(":", 1)[-1]
        detail = (
            str(exc).split(";")[0]
            if isinstance(exc, ValueError) and str(exc)
            else f"not a valid {tag}"
        )
        raise _at(doc, node, f"cannot read the value {_preview(node)} as {tag}: {detail}") from None


def _preview(node: yaml.Node) -> str:
    text = repr(node.value) if isinstance(node, yaml.ScalarNode) else "here"
    return text if len(text) <= 40 else text[:37] + "..."


def _position(text: str | bytes, index: int) -> tuple[int, int]:
    """1-based line and column of character (or byte) ``index`` of ``text``."""
    index = max(0, min(index, len(text)))
    if isinstance(text, bytes):
        breaks, last = text.count(b"\n", 0, index), text.rfind(b"\n", 0, index)
    else:
        breaks, last = text.count("\n", 0, index), text.rfind("\n", 0, index)
    return breaks + 1, index - last


def _at(doc: Document, node: yaml.Node, message: str) -> FlowFileError:
    return FlowFileError(
        message, file=doc.file, line=node.start_mark.line + 1, column=node.start_mark.column + 1
    )


def _syntax_error(exc: yaml.MarkedYAMLError, file: str) -> FlowFileError:
    mark = exc.problem_mark or exc.context_mark
    parts = [p for p in (exc.context, exc.problem) if p]
    what = "; ".join(parts) or "syntax error"
    if exc.problem_mark is not None and exc.context_mark is not None:
        what += f" (the construct started on line {exc.context_mark.line + 1})"
    return FlowFileError(
        f"invalid YAML: {what}",
        file=file,
        line=mark.line + 1 if mark else None,
        column=mark.column + 1 if mark else None,
    )


__all__ = [
    "KEY",
    "MAX_ALIASES",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_VALUES",
    "Document",
    "FlowLoader",
    "read_flow_file",
    "read_flow_text",
]
