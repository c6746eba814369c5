"""Backends by provider name: the built-ins, plus third-party ones from entry points.

A third-party package adds a backend by declaring an entry point in the group
``smmf_flow.backends`` whose name is the provider and whose value is a ``Backend``
subclass. Nothing is imported until a provider is asked for, so configuring a
model for vLLM costs nothing to a flow that never uses it.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from smmf_flow.errors import ConfigError
from smmf_flow.models.backends.base import Backend, Capabilities

# provider name -> "module:Class", imported on first use
BUILTIN: dict[str, str] = {
    "llama.cpp": "smmf_flow.models.backends.llama_cpp:LlamaCppBackend",
    "hf": "smmf_flow.models.backends.hf:HFBackend",
    "vllm": "smmf_flow.models.backends.vllm:VLLMBackend",
    "mlx": "smmf_flow.models.backends.mlx:MLXBackend",
    "sentence-transformers": (
        "smmf_flow.models.backends.sentence_transformers:SentenceTransformersBackend"
    ),
    "proxy/openai": "smmf_flow.models.backends.openai_proxy:OpenAIProxyBackend",
}

_registered: dict[str, type[Backend]] = {}


def register_backend(provider: str, cls: type[Backend]) -> None:
    """Make ``cls`` serve ``provider`` (tests and embedding applications use this)."""
    _registered[provider] = cls


def known_providers() -> list[str]:
    """Every provider name that can be asked for."""
    plugins = [ep.name for ep in entry_points(group="smmf_flow.backends")]
    return sorted(set(BUILTIN) | set(_registered) | set(plugins))


def backend_class(provider: str) -> type[Backend]:
    """The ``Backend`` subclass serving ``provider``; imports it on first use."""
    if provider in _registered:
        return _registered[provider]
    target = BUILTIN.get(provider)
    if target is None:
        for ep in entry_points(group="smmf_flow.backends", name=provider):
            found = ep.load()
            if not (isinstance(found, type) and issubclass(found, Backend)):
                raise ConfigError(
                    f"provider '{provider}': the entry point {ep.value!r} (group "
                    f"smmf_flow.backends) is not a Backend subclass"
                )
            _registered[provider] = found
            return found
        raise ConfigError(f"unknown provider '{provider}' (known: {', '.join(known_providers())})")
    module_name, _, attr = target.partition(":")
    cls: type[Backend] = getattr(importlib.import_module(module_name), attr)
    _registered[provider] = cls
    return cls


__all__ = ["Backend", "Capabilities", "backend_class", "known_providers", "register_backend"]
