"""Prometheus metrics of one app instance (own registry, so several apps can live in one process)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class ApiMetrics:
    """``registry``: what this process counts (requests, the data plane, loaded versions); ``shared``: what
    any process of the workspace would read the same (SLO gauges, feature freshness). ``yarnit serve
    --workers`` exports the first once per worker and the second once (api/worker_metrics.py)."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    shared: CollectorRegistry = field(default_factory=CollectorRegistry)
    #: run on the event loop before each scrape: request paths that count in plain numbers add them here
    before_scrape: list[Callable[[], None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.requests = Counter(
            "yarnit_http_requests_total", "HTTP requests by route template and status code",
            ["method", "route", "status"], registry=self.registry,
        )
        self.latency = Histogram(
            "yarnit_http_request_duration_seconds", "HTTP request latency by route template",
            ["method", "route"], registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )
        self.predictions = Counter(
            "yarnit_predictions_total", "Instances scored, by model, version and answering path",
            ["model", "version", "served_by"], registry=self.registry,
        )
        self.model_version = Gauge(
            "yarnit_model_version_serving", "Version currently served per model and alias",
            ["model", "alias"], registry=self.registry,
        )

    def flush(self) -> None:
        """Run the ``before_scrape`` hooks (on the event loop: the counts they add are kept there)."""
        for hook in self.before_scrape:
            hook()


__all__ = ["ApiMetrics"]
