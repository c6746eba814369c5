"""``serve``: load the models (and flows) and run the server under uvicorn.

Safe by default: the server binds the loopback address, and refuses any other
address unless it has at least one API key, or the caller says in so many words
that an open server is wanted (``insecure_no_auth=True``, the CLI's
``--insecure-no-auth``). A model server on a network without a key is a free
GPU (or CPU) for whoever finds it.

The ``Host`` names the server answers for are the bound address's, IP
addresses, ``localhost``, and the ``allowed_hosts`` (``browser.py``). Flows come
from one folder; a broken flow is logged and left out, or with
``strict_flows`` stops the start-up (``catalog.py``).

uvicorn's own access log is off: ``access_log.py`` writes one structured line
per request instead (without secrets), on the ``smmf_flow.server.access``
logger.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
import sys
from collections.abc import Sequence

from smmf_flow.errors import ServeError
from smmf_flow.models.registry import ModelRegistry
from smmf_flow.server.app import create_app
from smmf_flow.server.catalog import FlowCatalog
from smmf_flow.server.limits import ServerLimits

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
#: API keys may come from the environment (comma-separated) rather than the command line
KEYS_ENV = "SMMF_API_KEYS"
#: and so may the admin keys (``admin_api.py``)
ADMIN_KEYS_ENV = "SMMF_ADMIN_KEYS"


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable only from this machine."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_bind(host: str, api_keys: Sequence[str], insecure_no_auth: bool) -> None:
    """Refuse to open a server to the network without a key, unless told to."""
    if is_loopback(host) or any(api_keys) or insecure_no_auth:
        return
    raise ServeError(
        f"refusing to serve on {host} without an API key: anyone who can reach "
        f"this address could use the models. Give --api-key KEY (or set "
        f"{KEYS_ENV}), bind {DEFAULT_HOST}, or pass --insecure-no-auth if an "
        "open server is really wanted"
    )


#: what to do about a bind that failed, by errno
BIND_ADVICE = {
    errno.EADDRINUSE: "address already in use; stop what listens there or choose another --port",
    errno.EACCES: "permission denied (a port below 1024 needs privileges); choose another --port",
    errno.EADDRNOTAVAIL: "this machine has no such address; bind one of its own, or 127.0.0.1",
}


def bind_socket(host: str, port: int) -> socket.socket:
    """The server's socket, bound before any model loads: a port in use or a host
    that does not resolve is one clear ``ServeError``, not a log line from uvicorn
    after the models have loaded."""
    address = host.strip("[]")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((address, port))
    except socket.gaierror as exc:
        sock.close()
        raise ServeError(
            f"cannot listen on {host}: the host name does not resolve ({exc.strerror})"
        ) from None
    except OSError as exc:
        sock.close()
        advice = BIND_ADVICE.get(exc.errno or 0, exc.strerror or str(exc))
        raise ServeError(f"cannot listen on {host}:{port}: {advice}") from None
    sock.set_inheritable(True)
    return sock


def keys_from_env(name: str = KEYS_ENV) -> list[str]:
    return [k.strip() for k in os.environ.get(name, "").split(",") if k.strip()]


def configure_logging(level: str) -> None:
    """Log lines to stderr: the access log's JSON as it is, the rest with a prefix."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access = logging.getLogger("smmf_flow.server.access")
    access.handlers[:] = [handler]
    access.propagate = False
    access.setLevel(level.upper())
    general = logging.StreamHandler(sys.stderr)
    general.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("smmf_flow")
    if not root.handlers:
        root.addHandler(general)
    root.setLevel(level.upper())


def serve(
    *,
    models: str | os.PathLike[str] | None = None,
    registry: ModelRegistry | None = None,
    flows: str | os.PathLike[str] | None = None,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    api_keys: Sequence[str] = (),
    insecure_no_auth: bool = False,
    log_level: str = "info",
    limits: ServerLimits | None = None,
    data_root: str | os.PathLike[str] | None = None,
    strict_flows: bool = False,
    allowed_hosts: Sequence[str] = (),
    cors_origins: Sequence[str] = (),
    admin_keys: Sequence[str] = (),
    sock: socket.socket | None = None,
) -> None:
    """Run the server until interrupted (what ``smmf-flow serve`` calls).

    The models are ``registry``, else the TOML at ``models``, else the default
    config (``$SMMF_MODELS``, or the packaged ``default.toml``). The server owns the
    registry either way and closes it when it stops. ``admin_keys`` (and
    ``$SMMF_ADMIN_KEYS``) open the admin API. ``sock`` is ``bind_socket(host, port)``
    done beforehand (the CLI binds before it loads the config); without it, this binds."""
    import uvicorn

    keys = [*api_keys, *keys_from_env()]
    admins = [*admin_keys, *keys_from_env(ADMIN_KEYS_ENV)]
    check_bind(host, keys, insecure_no_auth)
    sock = sock or bind_socket(host, port)
    port = sock.getsockname()[1]  # the one the system chose for port 0
    configure_logging(log_level)  # before the flows load: a broken one is a warning line
    if registry is None:
        registry = ModelRegistry.from_toml(models) if models else ModelRegistry.default()
    catalog = (
        FlowCatalog.from_dir(flows, registry, strict=strict_flows, data_root=data_root)
        if flows
        else None
    )
    app = create_app(
        registry,
        flows=catalog,
        api_keys=keys,
        limits=limits,
        allowed_hosts=[host, *allowed_hosts],
        cors_origins=cors_origins,
        admin_keys=admins,
    )
    logging.getLogger("smmf_flow.server").info(
        "serving %s on http://%s:%d/v1 (%s; admin API %s; %d flows)",
        registry.source,
        host,
        port,
        "API key required" if keys else "no API key",
        "on" if admins else "off",
        len(catalog.flows) if catalog else 0,
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # as uvicorn.run: an interrupt is how a server stops
        pass
    finally:
        sock.close()
    if not server.started:
        raise ServeError(f"the server on {host}:{port} did not start; the log above says why")


__all__ = [
    "ADMIN_KEYS_ENV",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "KEYS_ENV",
    "bind_socket",
    "check_bind",
    "is_loopback",
    "keys_from_env",
    "serve",
]
