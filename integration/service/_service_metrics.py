"""Prometheus metrics of one service replica (``GET /metrics``, text exposition format)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST as _CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Histogram, Info, generate_latest

CONTENT_TYPE = _CONTENT_TYPE

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServiceMetrics:
    """Requests (by route and status), texts encoded, model-call batch sizes, request latency, errors (by type).

    Each replica keeps its own registry; with several replicas ``/metrics`` answers for the replica the
    proxy routed that scrape to (the ``replica`` label says which).
    """

    def __init__(self, replica: str = "0") -> None:
        self.registry = CollectorRegistry()
        labels = {"replica": replica}
        self.requests = Counter(
            "echo_splade_requests",
            "HTTP requests by route and status code",
            ["route", "status"],
            registry=self.registry,
        )
        self.texts = Counter("echo_splade_texts", "Texts encoded", ["kind"], registry=self.registry)
        self.batch_size = Histogram(
            "echo_splade_batch_size",
            "Texts per model call (dynamic batching)",
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.latency = Histogram(
            "echo_splade_request_latency_seconds",
            "Time from request to response, by route",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "echo_splade_errors", "Refused or failed requests by error type", ["type"], registry=self.registry
        )
        Info("echo_splade_replica", "This replica", registry=self.registry).info(labels)

    def render(self) -> bytes:
        return generate_latest(self.registry)
