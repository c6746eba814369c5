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
    """``openapi_extra`` describing a request body of type ``model``."""
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": model.model_json_schema()}}}}


__all__ = ["body_doc", "json_response"]
