"""Errors as HTTP answers, in OpenAI's error shape.

Every failure a client sees has the body OpenAI clients already parse::

    {"error": {"message": "...", "type": "invalid_request_error",
               "param": "messages.0.role", "code": "invalid_value"}}

The status comes from the exception's class in ``smmf_flow.errors`` (the same
tree the library raises everywhere), so the policy is one table
(``STATUS_OF``), not decisions spread over the handlers: an unknown model is
404 and lists the known names, a full pool queue is 429 with ``Retry-After``, a
prompt too long for the window is 400 ``context_length_exceeded``, a request
the model cannot serve as asked (a schema its grammar cannot express) 400
``unsupported_by_model``, a JSON answer cut off by the request's ``max_tokens``
400 ``output_truncated``, a run input the flow refused (``InputError``) 422, an
unreachable upstream or an error status from it (``UpstreamError``) 502, a
timeout 504. An unexpected exception is a 500 whose message says nothing of the
internals (the traceback goes to the log).

A task group's ``ExceptionGroup`` is unwrapped (``classify``): one error is
answered as itself; of several, the one a client can act on wins (a bad
request before a full queue, a full queue before a server failure). Every
message passes through the server's redactor on its way out (``redact.py``),
so no path, URL or secret of the configuration, nor an upstream's own words,
reaches a client; a message the redactor shortened goes to the server log
whole, for the operator.

``ApiError`` is the server's own refusal of a request (a malformed body, a
missing key); it never leaves the server as an exception: the app's handlers
turn it into a response.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from typing import Any

import orjson
from pydantic import ValidationError
from pydantic_core import ErrorDetails
from starlette.responses import Response

from smmf_flow.errors import (
    BackendConnectionError,
    BackendTimeout,
    ContextWindowExceeded,
    FlowError,
    InputError,
    InvalidOutput,
    ModelError,
    ModelKindMismatch,
    ModelLoadError,
    ModelNotFound,
    NodeFailed,
    NodeTimeout,
    OutputTruncated,
    PoolBusy,
    RateLimited,
    RequestRefused,
    ResourceBusy,
    RunError,
    SmmfError,
    UpstreamError,
    WorkerUnavailable,
    describe,
)

logger = logging.getLogger("smmf_flow.server")

#: exception class → (HTTP status, OpenAI error type, code); the first match in MRO order wins
STATUS_OF: dict[type[BaseException], tuple[int, str, str]] = {
    ModelNotFound: (404, "invalid_request_error", "model_not_found"),
    ModelKindMismatch: (400, "invalid_request_error", "model_kind_mismatch"),
    FlowError: (400, "invalid_request_error", "invalid_flow_request"),
    InputError: (422, "invalid_request_error", "invalid_input"),
    PoolBusy: (429, "rate_limit_error", "rate_limit_exceeded"),
    RateLimited: (429, "rate_limit_error", "upstream_rate_limited"),
    ContextWindowExceeded: (400, "invalid_request_error", "context_length_exceeded"),
    RequestRefused: (400, "invalid_request_error", "unsupported_by_model"),
    OutputTruncated: (400, "invalid_request_error", "output_truncated"),
    BackendTimeout: (504, "server_error", "upstream_timeout"),
    NodeTimeout: (504, "server_error", "flow_timeout"),
    BackendConnectionError: (502, "server_error", "upstream_unreachable"),
    UpstreamError: (502, "upstream_error", "upstream_error"),
    InvalidOutput: (502, "server_error", "invalid_model_output"),
    ModelLoadError: (503, "server_error", "model_not_loaded"),
    WorkerUnavailable: (503, "server_error", "model_unavailable"),
    ResourceBusy: (503, "server_error", "resource_busy"),
    ModelError: (500, "server_error", "model_error"),
    RunError: (500, "server_error", "flow_failed"),
    SmmfError: (500, "server_error", "smmf_error"),
}


class ApiError(Exception):
    """The server refuses a request; the app answers it as OpenAI-shaped JSON."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type = status, message, type
        self.code, self.param, self.headers = code, param, headers or {}


def body_error(exc: ValidationError, *, prefix: str = "") -> ApiError:
    """A malformed request body: 400 when it is not JSON at all, 422 when a field is
    wrong (the first problem, located as ``param``)."""
    errors = exc.errors(include_url=False, include_context=False)
    first = errors[0]
    if first["type"] in ("json_invalid", "json_type"):
        return ApiError(
            400, f"the request body is not valid JSON: {first['msg']}", code="invalid_json"
        )
    loc, message, more = _first_problem(errors)
    param = ".".join(str(p) for p in (prefix, *loc) if p != "")
    also = f" (and {more} more)" if more else ""
    where = f"'{param}'" if param else "the request body"
    message = message.removeprefix("Value error, ")  # our own validators' words
    return ApiError(422, f"{where}: {message}{also}", code="invalid_value", param=param or None)


#: pydantic's names of scalar union members, and what each takes, in words
_SCALARS = {"str": "a string", "int": "an integer", "float": "a number", "bool": "a boolean"}
_PLURALS = {"str": "strings", "int": "integers", "float": "numbers", "bool": "booleans"}


def _first_problem(errors: list[ErrorDetails]) -> tuple[list[str | int], str, int]:
    """The location (union members' names left out), the message and the count of
    other problems, for the first of pydantic's ``errors``.

    A value that fits no member of a union (``str | list[str]``) fails once per
    member, each error located under the member's name (``prompt.str``,
    ``prompt.list[str].0``): those are alternatives, not more problems, and the
    names mean nothing to a client. If one member got further into the value (a
    list whose item is wrong), its error is the one to read; otherwise the client
    is told what the field takes ("give a string or a list of strings")."""
    first = errors[0]
    cut = next((i for i, part in enumerate(first["loc"]) if _is_member(part)), None)
    if cut is None:
        return list(first["loc"]), first["msg"], len(errors) - 1
    union = first["loc"][:cut]
    members = [
        e
        for e in errors
        if len(e["loc"]) > cut and e["loc"][:cut] == union and _is_member(e["loc"][cut])
    ]
    deepest = max(members, key=lambda e: len(e["loc"]))
    if len(deepest["loc"]) > cut + 1:  # a member got further into the value: read its error
        alternatives = [e for e in members if e["loc"][cut] != deepest["loc"][cut]]
        loc, message = deepest["loc"], deepest["msg"]
    else:
        alternatives = members[1:]
        takes = [t for t in (_takes(str(e["loc"][cut])) for e in members) if t]
        loc = union
        message = f"give {' or '.join(takes)}" if len(takes) == len(members) else first["msg"]
    return [p for p in loc if not _is_member(p)], message, len(errors) - 1 - len(alternatives)


def _is_member(part: object) -> bool:
    """Whether a part of an error's location names a union's member (``str``,
    ``list[str]``, ``function-after[...]``, a model's class name) rather than a field
    (lower case, as every field of the request bodies) or an index."""
    return isinstance(part, str) and (
        part in _SCALARS or not part.isidentifier() or part[:1].isupper()
    )


def _takes(member: str) -> str | None:
    """What a union member takes, in words ("a list of strings"); None if unsure."""
    if member in _SCALARS:
        return _SCALARS[member]
    item = re.fullmatch(r"list\[(\w+)\]", member)
    if item is None:
        return None
    name = item.group(1)
    # a model's class name in words: ContentPart -> content parts
    return f"a list of {_PLURALS.get(name) or re.sub(r'(?<!^)(?=[A-Z])', ' ', name).lower() + 's'}"


def unwrap(exc: BaseException) -> BaseException:
    """The error that says what went wrong: a flow node's failure is its cause."""
    while isinstance(exc, NodeFailed) and exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def classify(exc: BaseException, redact: Callable[[str], str] | None = None) -> ApiError:
    """The HTTP answer for any exception raised while serving a request, its message
    passed through ``redact`` (the server's ``Redactor``)."""
    error = _classify(exc)
    if redact is None:
        return error
    message = redact(error.message)
    if message != error.message:  # the operator gets what the client does not
        level = logging.WARNING if error.status >= 500 else logging.INFO
        logger.log(level, "a %d answer left out details; in full: %s", error.status, error.message)
    return ApiError(
        error.status,
        message,
        type=error.type,
        code=error.code,
        param=error.param,
        headers=error.headers,
    )


def _classify(exc: BaseException) -> ApiError:
    exc = unwrap(exc)
    if isinstance(exc, BaseExceptionGroup):
        answers = [_classify(e) for e in _leaves(exc)]
        if answers:
            return min(answers, key=_relevance)
        exc = exc.exceptions[0]
    if isinstance(exc, ApiError):
        return exc
    for cls in type(exc).__mro__:
        entry = STATUS_OF.get(cls)
        if entry is not None:
            status, kind, code = entry
            headers = {}
            retry_after = getattr(exc, "retry_after", None)
            if status in (429, 503) and retry_after is not None:
                headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
            return ApiError(status, describe(exc), type=kind, code=code, headers=headers)
    logger.error("unexpected error while serving a request", exc_info=exc)
    return ApiError(
        500,
        f"internal server error ({type(exc).__name__}); see the server log",
        type="server_error",
        code="internal_error",
    )


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    """The errors of a (nested) group, each unwrapped, cancellations left out."""
    found: list[BaseException] = []
    for exc in group.exceptions:
        exc = unwrap(exc)
        if isinstance(exc, BaseExceptionGroup):
            found += _leaves(exc)
        elif isinstance(exc, Exception):
            found.append(exc)
    return found


def _relevance(error: ApiError) -> tuple[int, int]:
    """Sort key: a client error first (it fails again if retried), then a full queue
    (retry later), then a server-side failure."""
    if error.status == 429:
        return 1, error.status
    return (0 if error.status < 500 else 2), error.status


def error_payload(error: ApiError) -> dict[str, Any]:
    return {
        "error": {
            "message": error.message,
            "type": error.type,
            "param": error.param,
            "code": error.code,
        }
    }


def error_response(exc: BaseException, redact: Callable[[str], str] | None = None) -> Response:
    """A JSON response for ``exc``, with its status and headers."""
    error = classify(exc, redact)
    return Response(
        orjson.dumps(error_payload(error)),
        status_code=error.status,
        headers=error.headers,
        media_type="application/json",
    )


__all__ = [
    "STATUS_OF",
    "ApiError",
    "body_error",
    "classify",
    "error_payload",
    "error_response",
    "unwrap",
]
