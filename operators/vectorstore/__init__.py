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
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from smmf_flow.operators.params import SHORTHAND, OperatorParams, custom, params_error
from smmf_flow.operators.vectorstore.base import Hit, VectorStore, Where

#: store type → "module:Class" (or the class itself, once registered or imported)
STORE_TYPES: dict[str, str | type[VectorStore]] = {
    "chroma": "smmf_flow.operators.vectorstore.chroma:ChromaStore",
}


class StoreSpec(OperatorParams):
    """Where a store lives: its type, its folder and its collection (a path alone
    is the folder)."""

    model_config = ConfigDict(json_schema_extra={SHORTHAND: {"type": "string", "minLength": 1}})

    type: str = "chroma"
    path: str = Field(min_length=1)
    collection: str = "smmf"

    @model_validator(mode="before")
    @classmethod
    def _path_shorthand(cls, value: Any) -> Any:
        return {"path": str(value)} if isinstance(value, (str, Path)) else value

    @field_validator("type")
    @classmethod
    def _known(cls, kind: str) -> str:
        if kind not in STORE_TYPES:
            raise custom(
                "store_type",
                f"unknown store type '{kind}' (known: {', '.join(sorted(STORE_TYPES))})",
            )
        return kind


def register_store(name: str, cls: type[VectorStore]) -> None:
    """Make ``cls`` available as store type ``name``."""
    STORE_TYPES[name] = cls


def check_spec(spec: Any) -> StoreSpec:
    """``spec`` (a mapping, a path, or a ``StoreSpec``) validated; a ``FlowError``
    naming the field otherwise."""
    if isinstance(spec, StoreSpec):
        return spec
    try:
        return StoreSpec.model_validate(spec)
    except ValidationError as exc:
        raise params_error(exc, StoreSpec, "store", None) from None


def open_store(spec: StoreSpec) -> VectorStore:
    """The store ``spec`` describes (its class imported on first use)."""
    ref = STORE_TYPES[spec.type]
    if isinstance(ref, str):
        module, _, attr = ref.partition(":")
        ref = STORE_TYPES[spec.type] = getattr(importlib.import_module(module), attr)
    return ref(spec.path, spec.collection)


__all__ = [
    "STORE_TYPES",
    "Hit",
    "StoreSpec",
    "VectorStore",
    "Where",
    "check_spec",
    "open_store",
    "register_store",
]
