"""Saying where in a model config something is wrong, in the user's own terms.

A pydantic location such as ``('models', 'llms', 0, 'provider')`` becomes
``configs/x.toml:9: models.llms[0] (name 'smollm2'), field 'provider'``: the file,
the line when the TOML text is at hand, the entry by index and by name, and the
field. ``api_key`` values never appear in a message.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Sequence
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ValidationError

from smmf_flow.errors import ConfigError
from smmf_flow.models.config import ModelsFile

Loc = tuple[str | int, ...]
SECRET_FIELDS = frozenset({"api_key"})
TOP_TABLES = ("models", "ray")  # the tables a config file has at its top level


class ConfigSource:
    """The file (or ``<dict>``) a config came from, its text and its raw data."""

    def __init__(self, name: str, raw: Any, text: str | None = None) -> None:
        self.name, self.raw, self.text = name, raw, text

    def error(self, loc: Loc, message: str) -> ConfigError:
        """A ``ConfigError`` about the value at ``loc``."""
        return ConfigError(f"{self.where(loc)}: {message}")

    def where(self, loc: Loc) -> str:
        """``file:line: entry, field 'x'`` for ``loc``."""
        line = _line_of(self.text, loc) if self.text is not None else None
        head = f"{self.name}:{line}" if line else self.name
        entry, field = _split(loc)
        parts = (describe_entry(self.raw, entry), f"field '{field}'" if field else "")
        location = ", ".join(p for p in parts if p)
        return f"{head}: {location}" if location else head

    def from_validation(self, exc: ValidationError) -> ConfigError:
        """One ``ConfigError`` listing every problem pydantic found."""
        problems = [self._problem(err) for err in exc.errors()]
        if len(problems) == 1:
            return ConfigError(problems[0])
        listed = "\n  ".join(problems)
        return ConfigError(f"{self.name}: {len(problems)} problems:\n  {listed}")

    def _problem(self, err: Any) -> str:
        loc: Loc = tuple(err["loc"])
        kind, ctx = err["type"], err.get("ctx") or {}
        field = next((p for p in reversed(loc) if isinstance(p, str)), "")
        got = "<hidden>" if field in SECRET_FIELDS else _show(err.get("input"))
        if kind == "missing" and loc == ("models",):
            return (
                f"{self.name}: missing the [models] table; a model config starts with "
                "[models] and lists its models as [[models.llms]] and "
                "[[models.embeddings]] entries"
            )
        if kind == "missing":
            return f"{self.where(loc)}: is required but missing"
        if kind == "extra_forbidden":
            valid = _fields_at(loc[:-1])
            hint = _did_you_mean(str(loc[-1]), valid)
            return f"{self.where(loc)}: unknown field{hint}; valid fields here: {', '.join(valid)}"
        choices = ctx.get("choices") or _literal_choices(loc)
        if choices:
            return f"{self.where(loc)}: {expected_one_of(err.get('input'), choices, got)}"
        if kind in {"list_type", "model_type", "dict_type"} and _is_table(loc):
            return f"{self.where(loc)}: expected {_table_form(loc)}; got {got}"
        expected = str(err["msg"]).replace("Input should be ", "expected ")
        return f"{self.where(loc)}: {expected[:1].lower()}{expected[1:]}; got {got}"


def expected_one_of(value: Any, choices: Sequence[Any], shown: str | None = None) -> str:
    """``expected one of 'a', 'b'; got 'c' (did you mean 'a'?)``; ``shown`` is how
    to print ``value`` when it must not be printed as it is."""
    hint = _did_you_mean(str(value), [str(c) for c in choices])
    listed = ", ".join(repr(c) if isinstance(c, str) else str(c) for c in choices)
    return f"expected one of {listed}; got {_show(value) if shown is None else shown}{hint}"


def describe_entry(raw: Any, entry: Loc) -> str:
    """``models.llms[0] (name 'smollm2')`` for an entry; ``[models]`` for the table."""
    if not entry:
        return ""
    if len(entry) == 1 and entry[0] in TOP_TABLES:
        return f"[{entry[0]}]"
    text, node = str(entry[0]), _child(raw, entry[0])
    for part in entry[1:]:
        node = _child(node, part)
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    if isinstance(node, dict) and isinstance(node.get("name"), str):
        text += f" (name '{node['name']}')"
    return text


def _split(loc: Loc) -> tuple[Loc, str]:
    """The entry (``models.llms[0]``, ``[models]``, or none at the top) and the field."""
    if len(loc) >= 3 and loc[0] == "models" and isinstance(loc[2], int):
        entry, rest = loc[:3], loc[3:]
    elif len(loc) >= 2 and loc[0] in TOP_TABLES:
        entry, rest = loc[:1], loc[1:]
    else:
        entry, rest = (), loc
    field = ""
    for part in rest:
        field += f"[{part}]" if isinstance(part, int) else (f".{part}" if field else str(part))
    return entry, field


def _child(node: Any, part: str | int) -> Any:
    if isinstance(part, int):
        return node[part] if isinstance(node, list) and -len(node) <= part < len(node) else None
    return node.get(part) if isinstance(node, dict) else None


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _is_table(loc: Loc) -> bool:
    return len(loc) >= 1 and loc[0] == "models" and len(loc) <= 3


def _table_form(loc: Loc) -> str:
    if loc == ("models",):
        return "a [models] table"
    if len(loc) == 2:
        return f"an array of tables, written [[models.{loc[1]}]]"
    return f"a table, written [[models.{loc[1]}]] followed by key = value lines"


def _annotation_at(loc: Loc) -> Any:
    """The type annotation the schema has at ``loc`` (``None`` when it cannot tell)."""
    annotation: Any = ModelsFile
    for part in loc:
        annotation = _strip_optional(annotation)
        if isinstance(part, int):
            if get_origin(annotation) is not list:
                return None
            annotation = get_args(annotation)[0]
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(part)
            if field is None:
                return None
            annotation = field.annotation
        else:
            return None
    return _strip_optional(annotation)


def _strip_optional(annotation: Any) -> Any:
    if get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _literal_choices(loc: Loc) -> list[Any]:
    annotation = _annotation_at(loc)
    return list(get_args(annotation)) if get_origin(annotation) is Literal else []


def _fields_at(loc: Loc) -> list[str]:
    annotation = _annotation_at(loc)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return list(annotation.model_fields)
    return []


# --- finding the line in the TOML text ------------------------------------------------

_HEADER = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\s\"-]+?)\s*\]\]?\s*(#.*)?$")


def _line_of(text: str, loc: Loc) -> int | None:
    """Best-effort line of ``loc`` in the TOML text: the key's line, else its table's."""
    entry, _ = _split(loc)
    if not entry:
        return None
    lines = text.splitlines()
    table = ".".join(str(p) for p in entry if isinstance(p, str))
    index = entry[-1] if isinstance(entry[-1], int) else None
    start, seen = None, -1
    for number, line in enumerate(lines):
        match = _HEADER.match(line)
        if match and re.sub(r"\s", "", match.group(1)) == table:
            seen += 1
            if index is None or seen == index:
                start = number
                break
    if start is None:
        return None
    key = next((p for p in loc[len(entry) :] if isinstance(p, str)), None)
    if key is None:
        return start + 1
    key_re = re.compile(rf"^\s*\"?{re.escape(key)}\"?\s*=")
    for number in range(start + 1, len(lines)):
        match = _HEADER.match(lines[number])
        if match and re.sub(r"\s", "", match.group(1)) == f"{table}.{key}":
            return number + 1  # a sub-table written where a value was expected
        if match:
            break
        if key_re.match(lines[number]):
            return number + 1
    return start + 1
