"""The OpenAI-compatible HTTP API and flow endpoints (FastAPI + uvicorn).

``smmf-flow serve`` runs it; ``create_app(registry)`` gives the ASGI app to
embed or test. Modules, one concept each:

==================  ===================================================================
``app``             assembling the app: routers, middlewares, handlers, warm-up
``serve``           running it under uvicorn; the loopback / API-key rule
``openai_api``      ``/v1/models``, ``/v1/chat/completions``, ``/v1/completions``,
                    ``/v1/embeddings``
``flows_api``       ``/v1/flows``, ``/v1/flows/{name}/run``
``catalog``         the flows a server offers, loaded and checked at start-up
``ops``             ``/healthz``, ``/readyz``, ``/metrics``
``schemas``         request bodies, validated once at the edge
``errors``          exceptions → HTTP status and OpenAI's error JSON
``sse``             server-sent events that cancel on disconnect and never hang
``limits``          ``ServerLimits``: what one request may ask, and the checks
``body_guard``      the body read under its size limit; a vanished client cancels
``browser``         ``Host``, ``Origin`` and ``Content-Type`` checks against web pages
``auth``            API keys, required everywhere but the health probes
``redact``          no path, URL, secret or upstream body in a client's error
``access_log``      structured access log lines and request metrics
``metrics``         the Prometheus metrics
``responses``       JSON out without detours
``state``           what the handlers of one server share
==================  ===================================================================
"""

from smmf_flow.server.app import create_app
from smmf_flow.server.catalog import FlowCatalog
from smmf_flow.server.limits import ServerLimits
from smmf_flow.server.serve import check_bind, serve

__all__ = ["FlowCatalog", "ServerLimits", "check_bind", "create_app", "serve"]
