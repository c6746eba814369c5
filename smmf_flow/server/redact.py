"""``Redactor``: what a tenant must never read in an error message.

Errors raised deep in the library are written for the operator: they name the
config file, a model's weights, an upstream's ``api_base``. Over HTTP the same
message reaches a caller who may hold nothing but a key, so every message a
client receives passes through the server's ``Redactor`` (``errors.classify``),
whoever wrote it:

- the secrets of the registry (``api_key`` values) become ``***``;
- any URL becomes ``<url>`` (an upstream's address is configuration), and the
  host of every configured ``api_base`` becomes ``<upstream>`` wherever it
  appears without a scheme;
- a path under one of the server's folders (the config's, the flows', the data
  root, the model files', the Python installation, the working and home
  directories, the temporary folder) becomes ``<path>``;
- an upstream's own words, which a backend quotes for the operator
  (``errors.upstream_said``: an error page, an account's quota, the key it was
  sent), are left out.

The full message still goes to the server log (``errors.classify``); the client
gets the kind of error, its status, and every word that is not configuration.
"""

from __future__ import annotations

import os
import re
import sys
import sysconfig
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from smmf_flow.errors import UPSTREAM_SAID

if TYPE_CHECKING:
    from smmf_flow.models.registry import ModelRegistry

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
#: characters that end a path inside a message
_PATH_END = r"""(?:/[^\s'"<>|,;)\]]*)?(?=$|[\s'"<>|,;)\]:])"""


class Redactor:
    """Replaces secrets, URLs and server paths in text (see the module docstring)."""

    def __init__(
        self,
        *,
        secrets: Iterable[str] = (),
        hosts: Iterable[str] = (),
        folders: Iterable[str | os.PathLike[str]] = (),
    ) -> None:
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)
        self.hosts = sorted({h for h in hosts if h}, key=len, reverse=True)
        roots: set[str] = set()
        for folder in folders:
            for form in (os.path.abspath(folder), os.path.realpath(folder)):
                form = form.rstrip("/")
                if form.count("/") >= 1 and len(form) > 1:
                    roots.add(form)
        ordered = sorted(roots, key=len, reverse=True)
        self._paths = (
            re.compile("(?:" + "|".join(re.escape(r) for r in ordered) + ")" + _PATH_END)
            if ordered
            else None
        )

    @classmethod
    def for_server(
        cls, registry: ModelRegistry, folders: Iterable[str | os.PathLike[str] | None] = ()
    ) -> Redactor:
        """The redactor of a server over ``registry`` that also uses ``folders``."""
        secrets, hosts = [], []
        paths: list[str | os.PathLike[str]] = [f for f in folders if f]
        for name in registry.names:
            config = registry.get(name)
            key, base, path = (
                getattr(config, attr, None) for attr in ("api_key", "api_base", "path")
            )
            if key:
                secrets.append(key)
            if base:
                hosts.append(urlsplit(base).netloc)
            if path and os.path.isabs(path):
                paths += [path, os.path.dirname(path)]
        if registry.source and not registry.source.startswith("<"):
            paths.append(Path(registry.source).resolve().parent)
        return cls(secrets=secrets, hosts=hosts, folders=[*paths, *system_folders()])

    def __call__(self, text: str) -> str:
        text = UPSTREAM_SAID.sub("", text)
        for secret in self.secrets:
            text = text.replace(secret, "***")
        text = _URL.sub("<url>", text)
        for host in self.hosts:
            text = text.replace(host, "<upstream>")
        if self._paths is not None:
            text = self._paths.sub("<path>", text)
        return text


def system_folders() -> list[str]:
    """Folders every Python server has that say something about the machine."""
    found = [
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        os.getcwd(),
        tempfile.gettempdir(),
        os.path.expanduser("~"),
    ]
    found += [p for p in sysconfig.get_paths().values() if p]
    return [f for f in found if f and f != "/"]


__all__ = ["Redactor", "system_folders"]
