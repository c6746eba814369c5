"""Prometheus metrics of one server: its traffic, and its pools read at scrape time.

Counted as requests happen (a dictionary lookup and an increment each):

- ``smmf_http_requests_total{route,method,status}``, ``smmf_http_request_duration_seconds{route}``,
  ``smmf_http_requests_in_flight``;
- ``smmf_tokens_total{model,type}`` (prompt / completion, by the model that served);
- ``smmf_fallbacks_total{group,model,kind}`` (a member of a fallback group failed and
  the next was tried), ``smmf_route_decisions_total{group,model}``;
- ``smmf_streams_total{outcome}`` (done / error / disconnected).

Read from the pools when Prometheus scrapes, so the hot path pays nothing:
queue depth, calls in flight, per-instance health (1 healthy, 0 not),
requests done and failed, latency and tokens/s averages.

Each server has its own ``CollectorRegistry``: two servers in one process (the
tests run a server that proxies to another) never share or clash on a metric.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from smmf_flow.models.types import Usage
from smmf_flow.scheduler.workers import Note

if TYPE_CHECKING:
    from smmf_flow.models.registry import ModelRegistry

LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
)


class ServerMetrics:
    """The metrics of one server, and the ``note`` hooks that feed them."""

    def __init__(self, models: ModelRegistry) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        self.requests = Counter(
            "smmf_http_requests",
            "HTTP requests answered.",
            ["route", "method", "status"],
            registry=reg,
        )
        self.latency = Histogram(
            "smmf_http_request_duration_seconds",
            "Time from request to the end of the response.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.in_flight = Gauge(
            "smmf_http_requests_in_flight", "HTTP requests being answered now.", registry=reg
        )
        self.tokens = Counter(
            "smmf_tokens",
            "Tokens processed, by the model that served.",
            ["model", "type"],
            registry=reg,
        )
        self.fallbacks = Counter(
            "smmf_fallbacks",
            "A member of a fallback group failed and the next was tried.",
            ["group", "model", "kind"],
            registry=reg,
        )
        self.routes = Counter(
            "smmf_route_decisions",
            "Models chosen by route groups.",
            ["group", "model"],
            registry=reg,
        )
        self.streams = Counter(
            "smmf_streams", "Streamed responses, by how they ended.", ["outcome"], registry=reg
        )
        reg.register(_PoolCollector(models))
        self._notes: dict[str, Note] = {}
        self._observers: dict[tuple[str, str, int], Any] = {}
        self._children: dict[tuple[object, ...], Any] = {}

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request (children are cached: labels() is not free)."""
        key = (route, method, status)
        pair = self._observers.get(key)
        if pair is None:
            pair = self._observers[key] = (
                self.requests.labels(route, method, str(status)),
                self.latency.labels(route),
            )
        pair[0].inc()
        pair[1].observe(seconds)

    def count_usage(self, model: str, usage: Usage | None) -> None:
        if usage is None:
            return
        if usage.prompt_tokens:
            self._child(self.tokens, model, "prompt").inc(usage.prompt_tokens)
        if usage.completion_tokens:
            self._child(self.tokens, model, "completion").inc(usage.completion_tokens)

    def note_for(self, name: str) -> Note:
        """The ``note`` a worker for ``name`` reports its fallback and routing decisions to."""
        note = self._notes.get(name)
        if note is None:

            def note(event: str, **details: Any) -> None:
                if event == "fallback":
                    self.fallbacks.labels(
                        name, details.get("model", ""), details.get("kind") or "error"
                    ).inc()
                elif event == "route":
                    self.routes.labels(name, details.get("model", "")).inc()

            self._notes[name] = note
        return note

    def stream_ended(self, outcome: str) -> None:
        self._child(self.streams, outcome).inc()

    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, cached: per request, labels() cost more than the
        rest of the metrics together."""
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child


class _PoolCollector:
    """Reads every started pool's stats when scraped."""

    def __init__(self, models: ModelRegistry) -> None:
        self.models = models

    def describe(self) -> list[Metric]:
        return []  # families vary with the config; describing nothing keeps register() lazy

    def collect(self) -> Iterator[Metric]:
        waiting = GaugeMetricFamily(
            "smmf_pool_queue_depth", "Callers waiting for a slot.", labels=["model"]
        )
        ready = GaugeMetricFamily(
            "smmf_pool_ready",
            "1 if every instance of the pool is healthy.",
            labels=["model", "status"],
        )
        up = GaugeMetricFamily(
            "smmf_instance_healthy",
            "1 if the instance takes calls.",
            labels=["model", "instance", "state"],
        )
        busy = GaugeMetricFamily(
            "smmf_instance_in_flight",
            "Calls running on the instance.",
            labels=["model", "instance"],
        )
        where = GaugeMetricFamily(
            "smmf_instance_info",
            "Where the instance runs: placement (local, ray) and Ray node (id@ip).",
            labels=["model", "instance", "node", "placement"],
        )
        done = CounterMetricFamily(
            "smmf_instance_calls",
            "Calls the instance finished.",
            labels=["model", "instance", "outcome"],
        )
        latency = GaugeMetricFamily(
            "smmf_instance_latency_seconds",
            "Moving average of a call's duration.",
            labels=["model", "instance"],
        )
        speed = GaugeMetricFamily(
            "smmf_instance_tokens_per_second",
            "Moving average of generation speed.",
            labels=["model", "instance"],
        )
        for row in self.models.list():
            if row.kind == "group" or row.status == "not loaded":
                continue
            stats = self.models.pool(row.name).stats()
            waiting.add_metric([row.name], stats.waiting)
            ready.add_metric([row.name, stats.status], 1.0 if stats.status == "ready" else 0.0)
            for inst in stats.instances:
                labels = [row.name, inst.id]
                up.add_metric([*labels, inst.state], 1.0 if inst.state == "healthy" else 0.0)
                busy.add_metric(labels, inst.in_flight)
                where.add_metric([*labels, inst.node or "", inst.placement], 1.0)
                done.add_metric([*labels, "done"], inst.done)
                done.add_metric([*labels, "failed"], inst.failed)
                if inst.latency_ewma_s is not None:
                    latency.add_metric(labels, inst.latency_ewma_s)
                if inst.tokens_per_s is not None:
                    speed.add_metric(labels, inst.tokens_per_s)
        yield from (waiting, ready, up, busy, where, done, latency, speed)


__all__ = ["LATENCY_BUCKETS", "ServerMetrics"]
