"""The one exception tree of smmf-flow.

Every error the library raises on purpose is a ``SmmfError``; the class says what
kind of thing went wrong, the message says what and what to do about it::

    SmmfError
    ├── FlowError                 building or validating a flow (nothing has run)
    │   ├── CycleError            the graph has a cycle (message prints it)
    │   ├── DuplicateNodeError    two nodes share a name
    │   ├── ForeignNodeError      an edge reaches a node of another DAG
    │   ├── EdgeTypeError         an output type cannot feed an input type
    │   ├── TemplateError         a prompt template does not compile
    │   ├── UnknownParameter      a node is given a parameter its type does not take
    │   ├── FlowFileError         a YAML flow file is malformed (bad YAML, unknown field)
    │   ├── ModelNotFound         a flow names a model the registry does not have
    │   └── ModelKindMismatch     an embedding model used for generation, or the reverse
    ├── ConfigError               a TOML model config is malformed (file, entry, field)
    ├── RunError                  a flow failed while running
    │   ├── NodeFailed            a node raised; the cause is chained
    │   ├── NodeTimeout           a node ran past its timeout
    │   ├── InputError            a run's input was refused (a bad value or shape, a
    │   │                         missing input key or template variable, an expression
    │   │                         that fails on it, a path outside the folder the run
    │   │                         may read)
    │   ├── ResourceBusy          something the run needs (a vector store another run
    │   │                         is writing) stayed busy (``retry_after`` seconds)
    │   └── ToolFailed            an agent's tool call failed (fed back to the model)
    ├── ModelError                a model call failed
    │   ├── WorkerUnavailable     no instance can take the call
    │   │   ├── PoolBusy          the wait queue is full (``retry_after`` seconds)
    │   │   └── PoolStopped       the model's pool is stopped or closed
    │   └── BackendError          the backend itself failed
    │       ├── ModelLoadError    the weights could not be loaded
    │       ├── BackendTimeout    the backend did not answer in time
    │       ├── BackendConnectionError   the backend could not be reached
    │       │   └── WorkerLost    the process holding the instance died (a Ray actor
    │       │                     killed, its node lost): the instance is out at once
    │       ├── ContextWindowExceeded    the prompt does not fit the context window
    │       ├── RateLimited       the backend asked us to slow down
    │       ├── UpstreamError     the server behind the model answered with an error
    │       │                     status (``status``), reported an error mid-stream, or
    │       │                     sent something that is no answer
    │       ├── InvalidOutput     structured output did not match its schema
    │       │   └── OutputTruncated   it hit max_tokens before the JSON ended
    │       └── RequestRefused    the backend cannot serve the request as asked (the
    │                             request's fault: never counts against the instance)
    ├── ServeError                the HTTP server cannot start as asked (an unsafe bind)
    ├── MissingDependency         an optional package a feature needs is not installed
    └── UsageError                the API was called where it cannot work (a synchronous
                                  ``dag.run()`` or ``registry.close()`` inside a running
                                  event loop); the message names the call that works

A failed model call always raises; it never comes back as ordinary text.

Where a ``FlowError`` is, is data, not text: its fields ``file``, ``line``,
``column``, ``node`` and ``param`` (a dotted path inside the node's parameters,
``models.1`` or ``branches.0.when``), and ``str(error)`` is composed from them
(``FILE:LINE:COL: node 'N': message``). Code that knows part of the place wraps
the work in ``located(node=..., param=...)``, which fills the fields an error
raised inside does not have yet (as httpx attaches the request to an error), so
rewording a message never moves its ``file:line``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

#: the fields that say where a ``FlowError`` is
WHERE_FIELDS = ("file", "line", "column", "node", "param")
#: the most characters of an upstream's own words a message quotes
MAX_QUOTED_CHARS = 300
#: what ``upstream_said`` adds to a message, found again (a JSON string ends at the
#: first quote that is not escaped)
UPSTREAM_SAID = re.compile(r'; upstream said: "(?:[^"\\]|\\.)*"')


class SmmfError(Exception):
    """Base of every error smmf-flow raises on purpose."""


# --- building a flow -------------------------------------------------------------


class FlowError(SmmfError):
    """A flow is malformed; found before anything runs.

    ``message`` says what is wrong; the keyword fields say where, and
    ``str(error)`` puts them in front of it."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        node: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file, self.line, self.column = file, line, column
        self.node, self.param = node, param

    def __str__(self) -> str:
        where = ":".join(str(p) for p in (self.file, self.line, self.column) if p is not None)
        prefix = f"{where}: " if where else ""
        in_node = f"node '{self.node}': " if self.node else ""
        return f"{prefix}{in_node}{self.message}"

    def locate(self, **fields: Any) -> FlowError:
        """Fill the place fields this error does not have yet; return it."""
        _fill(self, WHERE_FIELDS, fields)
        return self

    def __reduce__(self) -> Any:
        # the subclasses' own constructors take other arguments: rebuild from state
        return _rebuild, (type(self), self.args, self.__dict__)


def _fill(error: SmmfError, names: tuple[str, ...], fields: dict[str, Any]) -> None:
    """Set each of ``fields`` (one of ``names``) that ``error`` does not have yet."""
    for name, value in fields.items():
        if name not in names:
            raise TypeError(f"{type(error).__name__} has no place field '{name}'")
        if value is not None and getattr(error, name) is None:
            setattr(error, name, value)


def _rebuild(cls: type[SmmfError], args: tuple[Any, ...], state: dict[str, Any]) -> SmmfError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


@contextmanager
def located(**fields: Any) -> Iterator[None]:
    """Give every ``FlowError`` raised inside the place ``fields`` it lacks
    (``file``, ``line``, ``column``, ``node``, ``param``)."""
    try:
        yield
    except FlowError as error:
        error.locate(**fields)
        raise


class CycleError(FlowError):
    """The graph has a cycle."""


class DuplicateNodeError(FlowError):
    """Two nodes in one DAG share a name."""


class ForeignNodeError(FlowError):
    """An edge joins nodes of two different DAGs."""


class EdgeTypeError(FlowError):
    """An upstream output type cannot feed a downstream input type."""


class TemplateError(FlowError):
    """A prompt template does not compile (a variable missing at render time is an
    ``InputError``: the run's input lacks it)."""


class UnknownParameter(FlowError):
    """A node is given a parameter (or a field inside one) that its operator type
    does not take; a flow file points at the misspelt name itself."""


class FlowFileError(FlowError):
    """A YAML flow file is malformed: its text, its structure or a field of the
    format itself (what an operator refuses keeps the operator's error class)."""


class ModelNotFound(FlowError):
    """A flow or request names a model the registry does not know (``name``; the
    ``known`` names and the closest ``suggestions``); where, as any ``FlowError``:
    ``node=``, ``param=``, ... or ``located(...)``."""

    def __init__(self, name: str, known: list[str], **fields: Any) -> None:
        import difflib

        self.name, self.known = name, list(known)
        self.suggestions = difflib.get_close_matches(name, self.known, n=3, cutoff=0.4)
        hint = (
            f"; did you mean {', '.join(repr(s) for s in self.suggestions)}?"
            if self.suggestions
            else ""
        )
        known_txt = ", ".join(sorted(self.known)) or "(none)"
        super().__init__(f"unknown model '{name}'{hint} (known models: {known_txt})", **fields)


class ModelKindMismatch(FlowError):
    """A model is used for a kind of work it does not do (embedding vs generation)."""


# --- model configuration -------------------------------------------------------------


class ConfigError(SmmfError):
    """A model configuration (TOML) is malformed."""


# --- running a flow ------------------------------------------------------------------


class RunError(SmmfError):
    """A flow failed while running."""


class NodeFailed(RunError):
    """A node raised while running; ``__cause__`` is the original error."""

    def __init__(self, node: str, cause: BaseException) -> None:
        self.node = node
        super().__init__(f"node '{node}' failed: {type(cause).__name__}: {cause}")


class NodeTimeout(RunError):
    """A node ran past its ``timeout``."""

    def __init__(self, node: str, timeout: float) -> None:
        self.node, self.timeout = node, timeout
        super().__init__(f"node '{node}' timed out after {timeout:g}s")


class InputError(RunError):
    """A run's input was refused while the flow ran: a value of the wrong shape, an
    expression or template that fails on it, or a path outside the folder the run may
    read. The caller's fault (an HTTP 4xx), and the message never names the server's
    own folders.

    Where, as data: ``flow`` and ``node``, which the runner fills when a node refuses
    its input, and ``file``, ``line``, ``column``, where that node is written (a flow
    file fills them on the command line; a server leaves them out of its answer).
    ``str(error)`` puts them in front of the message:
    ``FILE:LINE:COL: flow 'F', node 'N': message``."""

    def __init__(
        self,
        message: str,
        *,
        flow: str | None = None,
        node: str | None = None,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.flow, self.node = flow, node
        self.file, self.line, self.column = file, line, column

    def __str__(self) -> str:
        where = ":".join(str(p) for p in (self.file, self.line, self.column) if p is not None)
        named = (("flow", self.flow), ("node", self.node))
        who = ", ".join(f"{kind} '{name}'" for kind, name in named if name)
        return "".join(f"{part}: " for part in (where, who) if part) + self.message

    def locate(self, **fields: Any) -> InputError:
        """Fill the place fields (``flow``, ``node``, ``file``, ``line``, ``column``)
        this error does not have yet; return it."""
        _fill(self, ("flow", "node", "file", "line", "column"), fields)
        return self

    def __reduce__(self) -> Any:
        return _rebuild, (type(self), self.args, self.__dict__)


class ResourceBusy(RunError):
    """A resource the run needs, such as a vector store another indexing run is
    writing, stayed busy longer than the run would wait; try again later."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class ToolFailed(RunError):
    """A tool call that failed; the agent feeds its message back to the model and
    never lets it out of the loop."""


# --- model calls ---------------------------------------------------------------------


class ModelError(SmmfError):
    """A model call failed."""

    def __init__(
        self, message: str, *, model: str | None = None, instance: str | None = None
    ) -> None:
        self.model, self.instance = model, instance
        super().__init__(message)


class WorkerUnavailable(ModelError):
    """No instance of the model can take the call (all unhealthy, cooling down, or busy)."""


class PoolBusy(WorkerUnavailable):
    """The pool's wait queue is full; try again after ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: float, model: str | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message, model=model)


class PoolStopped(WorkerUnavailable):
    """The model's pool is stopped or closed."""


class BackendError(ModelError):
    """The backend failed to serve the call."""


class ModelLoadError(BackendError):
    """The model's weights could not be loaded."""


class BackendTimeout(BackendError):
    """The backend did not answer in time."""


class BackendConnectionError(BackendError):
    """The backend could not be reached (connection refused, DNS, reset)."""


class WorkerLost(BackendConnectionError):
    """The process holding the instance is gone (a Ray actor killed, its node lost):
    the instance is marked unhealthy at once, without waiting for more failures."""


class ContextWindowExceeded(BackendError):
    """The prompt plus the requested tokens do not fit the model's context window."""


class RateLimited(BackendError):
    """The backend asked the caller to slow down."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        model: str | None = None,
        instance: str | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, model=model, instance=instance)


class UpstreamError(BackendError):
    """The server behind the model (an OpenAI-compatible API) answered with an error
    status (``status``), reported an error mid-stream (``status`` None), or sent
    something that is no answer. The server is at fault, not the request.

    The message quotes the upstream's own words for the operator (``upstream_said``);
    an HTTP server leaves them out of what its clients read, since they may name the
    upstream's paths, its account or the key it was sent."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        model: str | None = None,
        instance: str | None = None,
    ) -> None:
        self.status = status
        super().__init__(message, model=model, instance=instance)


class InvalidOutput(BackendError):
    """Structured output did not parse or did not match its schema."""


class OutputTruncated(InvalidOutput):
    """A JSON answer was cut off by the request's ``max_tokens``: the request left too
    little room (an HTTP 400), not a model that broke its schema."""


class RequestRefused(BackendError):
    """The backend cannot serve this request as asked: a ``response_format`` schema its
    grammar cannot express, JSON output from a backend that cannot constrain it. The
    request is at fault (an HTTP 400), not the instance."""


# --- serving over HTTP -----------------------------------------------------------------


class ServeError(SmmfError):
    """The HTTP server cannot start as asked (an unsafe bind, a port in use)."""


# --- the installation ------------------------------------------------------------------


class MissingDependency(SmmfError):
    """An optional package that a feature needs (Pillow for PNG, chromadb for the
    vector store) is not installed; the message says what to install."""


class UsageError(SmmfError):
    """The API was called in a way it cannot work, such as a synchronous entry point
    (which runs an event loop of its own) inside a running event loop; the message
    says which call works there."""


def refuse_inside_event_loop(what: str, instead: str) -> None:
    """Raise ``UsageError`` (``"{what} while asyncio runs in this thread; {instead}"``)
    if an async library runs in this thread, where a call that starts an event loop
    of its own cannot work."""
    import sniffio

    try:
        running = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        return
    raise UsageError(f"{what} while {running} runs in this thread; {instead}")


def did_you_mean(name: str, choices: Iterable[str], *, n: int = 1, cutoff: float = 0.6) -> str:
    """``"; did you mean 'x'?"`` for the choices closest to ``name``, or ``""``."""
    import difflib

    close = difflib.get_close_matches(name, list(choices), n=n, cutoff=cutoff)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def bounded_line(text: str) -> str:
    """A third party's ``text`` fit for an error message: on one line and at most
    ``MAX_QUOTED_CHARS`` long (an HTML error page is many lines)."""
    line = " ".join(text.split())
    return line if len(line) <= MAX_QUOTED_CHARS else line[: MAX_QUOTED_CHARS - 3] + "..."


def upstream_said(text: str) -> str:
    """``'; upstream said: "..."'``: an upstream's own words for an error message,
    ``bounded_line``, quoted as a JSON string so that ``UPSTREAM_SAID`` finds them again."""
    return f"; upstream said: {json.dumps(bounded_line(text), ensure_ascii=False)}"


def describe(exc: BaseException) -> str:
    """One line for a user: the message of an smmf error, type and message otherwise;
    a module's syntax error says where (``SyntaxError at my_ops.py:3: ...``), as a
    flow file's error does."""
    if isinstance(exc, SmmfError):
        return str(exc)
    if isinstance(exc, SyntaxError) and exc.filename:
        where = ":".join(str(p) for p in (_nearby(exc.filename), exc.lineno) if p)
        return f"{type(exc).__name__} at {where}: {exc.msg}"
    return f"{type(exc).__name__}: {exc}"


def _nearby(path: str) -> str:
    """``path`` relative to the working directory when it is inside it."""
    import os

    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


__all__ = [
    name for name, obj in globals().items() if isinstance(obj, type) and issubclass(obj, SmmfError)
] + [
    "MAX_QUOTED_CHARS",
    "UPSTREAM_SAID",
    "describe",
    "did_you_mean",
    "located",
    "bounded_line",
    "refuse_inside_event_loop",
    "upstream_said",
]
