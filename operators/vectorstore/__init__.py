"""Vector stores behind one small interface (``VectorStore``), opened from a spec.

A flow names its store as data, so the same spec works in Python and YAML::

    store: {type: chroma, path: .smmf/rag, collection: docs}

``open_store`` turns that into a store; a store type is a ``"module:Class"``
string in ``STORE_TYPES``, imported only when used (Chroma's import is slow and
its package optional). Another store is added by subclassing ``VectorStore``
and registering it with ``register_store``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from smmf_flow.errors import FlowError
from smmf_flow.operators.params import invalid
from smmf_flow.operators.vectorstore.base import Hit, VectorStore, Where

#: store type → "module:Class" (or the class itself, once registered or imported)
STORE_TYPES: dict[str, str | type[VectorStore]] = {
    "chroma": "smmf_flow.operators.vectorstore.chroma:ChromaStore",
}


class StoreSpec(BaseModel):
    """Where a store lives: its type, its folder and its collection."""

    model_config = ConfigDict(extra="forbid")
    type: str = "chroma"
    path: str = Field(min_length=1)
    collection: str = "smmf"


def register_store(name: str, cls: type[VectorStore]) -> None:
    """Make ``cls`` available as store type ``name``."""
    STORE_TYPES[name] = cls


def check_spec(spec: Any, owner: str) -> StoreSpec:
    """``spec`` (a mapping, a path string, or a ``StoreSpec``) validated; a
    ``FlowError`` naming the node and the field otherwise."""
    if isinstance(spec, StoreSpec):
        return spec
    if isinstance(spec, (str, Path)):
        spec = {"path": str(spec)}
    if not isinstance(spec, Mapping):
        raise FlowError(f"{owner}: `store` must be a mapping such as {{path: .smmf/rag, "
                        f"collection: docs}}, got {type(spec).__name__}")
    try:
        checked = StoreSpec.model_validate(dict(spec))
    except ValidationError as exc:
        raise invalid(exc, owner, "store field", StoreSpec.model_fields,
                      listed="fields") from None
    if checked.type not in STORE_TYPES:
        raise FlowError(f"{owner}: unknown store type '{checked.type}' (known: "
                        f"{', '.join(sorted(STORE_TYPES))})")
    return checked


def open_store(spec: StoreSpec) -> VectorStore:
    """The store ``spec`` describes (its class imported on first use)."""
    ref = STORE_TYPES[spec.type]
    if isinstance(ref, str):
        module, _, attr = ref.partition(":")
        ref = STORE_TYPES[spec.type] = getattr(importlib.import_module(module), attr)
    return ref(spec.path, spec.collection)  # type: ignore[call-arg]


__all__ = ["Hit", "STORE_TYPES", "StoreSpec", "VectorStore", "Where", "check_spec",
           "open_store", "register_store"]
