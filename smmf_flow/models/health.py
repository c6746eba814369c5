"""Which failures mean an instance is broken, and what the pool does about them.

The exception type decides the policy: a refused connection, a timeout, a failed
load or a rate limit say the *instance* cannot serve, so they count towards its
circuit breaker; a prompt too long for the context window or output that misses
its schema say the *request* was bad, and the next request may well succeed, so
they do not. Any other exception escaping a backend is a bug in it: it counts,
and reaches the caller wrapped in a ``BackendError``.

The breaker: ``failure_threshold`` breaking failures in a row mark the instance
unhealthy for ``cooldown_s``; after that the next caller re-probes it (a health
check, or a new load if it never loaded) — half-open — and a passing probe makes
it healthy again.
"""

from __future__ import annotations

from typing import NoReturn

from smmf_flow.errors import (
    BackendConnectionError,
    BackendError,
    BackendTimeout,
    ModelError,
    ModelLoadError,
    RateLimited,
    SmmfError,
)

BREAKING: tuple[type[BackendError], ...] = (
    BackendConnectionError, BackendTimeout, ModelLoadError, RateLimited)


def breaks_instance(exc: BaseException) -> bool:
    """True when ``exc`` says the instance, not the request, is at fault."""
    if isinstance(exc, BREAKING):
        return True
    return isinstance(exc, Exception) and not isinstance(exc, SmmfError)


def as_model_error(exc: Exception, model: str, instance: str) -> SmmfError:
    """The error a caller sees: smmf errors as they are (tagged with the model and
    instance), anything else wrapped in a ``BackendError`` that names them."""
    if isinstance(exc, ModelError):
        if exc.model is None:
            exc.model = model
        if exc.instance is None:
            exc.instance = instance
        return exc
    if isinstance(exc, SmmfError):
        return exc
    return BackendError(f"model '{model}' instance '{instance}' failed: "
                        f"{type(exc).__name__}: {exc}", model=model, instance=instance)


def reraise(exc: Exception, model: str, instance: str) -> NoReturn:
    """Raise what ``as_model_error`` makes of ``exc``, chained to it when wrapped."""
    error = as_model_error(exc, model, instance)
    if error is exc:
        raise exc
    raise error from exc
