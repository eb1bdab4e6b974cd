"""Prometheus metrics of one gateway instance (own registry, so apps never collide)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class _StateGauge(Collector):
    """``ptx_jobs`` by state, read from a snapshot refreshed before each scrape."""

    def __init__(self) -> None:
        self.snapshot: dict[str, int] = {}

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily("ptx_jobs", "Jobs in the store by state", labels=["state"])
        for state, count in sorted(self.snapshot.items()):
            family.add_metric([state], count)
        yield family


class Metrics:
    """The counters and histograms the gateway and worker update."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.jobs = _StateGauge()
        self.registry.register(self.jobs)
        self.deliveries = Counter(
            "ptx_deliveries",
            "Chain-step deliveries stored and acknowledged (a repeated delivery counts again)",
            registry=self.registry,
        )
        self.rejected = Counter(
            "ptx_deliveries_rejected",
            "Deliveries refused, by status",
            ["status"],
            registry=self.registry,
        )
        self.resume_attempts = Counter(
            "ptx_resume_attempts", "Resume calls made to the PDC", registry=self.registry
        )
        self.resume_failures = Counter(
            "ptx_resume_failures",
            "Resume calls that failed, by kind (transient or final)",
            ["kind"],
            registry=self.registry,
        )
        self.ack_latency = Histogram(
            "ptx_ack_latency_seconds",
            "Time from request start to the ACK being ready",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )

    def render(self, counts: dict[str, int]) -> bytes:
        """The exposition text, with the job gauge set from ``counts``."""
        self.jobs.snapshot = counts
        return generate_latest(self.registry)
