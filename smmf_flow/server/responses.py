"""JSON in and out without detours: bytes straight from orjson, and the OpenAPI
text for bodies the handlers parse themselves.

Handlers return ``json_response(payload)`` rather than a dict, so FastAPI skips
its response-model encoding (``jsonable_encoder`` walks every value in Python;
orjson serialises the same payload several times faster). Request bodies are
parsed by ``schemas.parse`` straight from bytes, so FastAPI cannot see them;
``body_doc`` puts their schema back into ``/docs``.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel
from starlette.responses import Response


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


def body_doc(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` describing a request body of type ``model`` (its nested models
    inlined: pydantic's ``#/$defs/...`` references mean nothing inside an OpenAPI
    document, and clients and fuzzers that follow them find nothing)."""
    schema = model.model_json_schema()
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _inline(schema, schema.pop("$defs", {}))}},
        }
    }


def _inline(value: Any, defs: dict[str, Any]) -> Any:
    """``value`` with every ``{"$ref": "#/$defs/Name"}`` replaced by that definition
    (the request bodies are not recursive)."""
    if isinstance(value, dict):
        ref = value.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            rest = {k: v for k, v in value.items() if k != "$ref"}
            return {**_inline(defs[ref.removeprefix("#/$defs/")], defs), **rest}
        return {key: _inline(item, defs) for key, item in value.items()}
    if isinstance(value, list):
        return [_inline(item, defs) for item in value]
    return value


__all__ = ["body_doc", "json_response"]
