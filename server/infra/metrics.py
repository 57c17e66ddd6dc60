"""Prometheus metrics: one CollectorRegistry per app, HTTP RED metrics and build info."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
ACQUIRE_BUCKETS = (0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0)
UNMATCHED_ROUTE = "<unmatched>"
METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST


@dataclass(frozen=True)
class PoolSnapshot:
    size: int
    idle: int
    max: int


class PoolCollector(Collector):
    """Reads the pool's size, idle and max at scrape time."""

    def __init__(self, snapshot: Callable[[], PoolSnapshot | None]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snap = self._snapshot()
        if snap is None:
            return
        yield GaugeMetricFamily("btec_db_pool_size", "Open connections.", value=snap.size)
        yield GaugeMetricFamily("btec_db_pool_idle", "Idle connections.", value=snap.idle)
        yield GaugeMetricFamily("btec_db_pool_max", "Most connections allowed.", value=snap.max)


class Metrics:
    """Every metric of one app, registered in its own registry so tests can build many apps."""

    def __init__(self, *, version: str, release: str) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created series double the output and nobody reads them
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        ProcessCollector(registry=reg)
        GCCollector(registry=reg)
        PlatformCollector(registry=reg)
        build = Gauge("btec_build_info", "Build information.", ["version", "release"], registry=reg)
        build.labels(version=version, release=release).set(1)
        self.http_requests = Counter(
            "btec_http_requests",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=reg,
        )
        self.http_duration = Histogram(
            "btec_http_request_duration_seconds",
            "HTTP request duration by method and route template.",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
            registry=reg,
        )
        self.http_in_progress = Gauge(
            "btec_http_requests_in_progress", "HTTP requests being served.", registry=reg
        )
        self.db_acquire = Histogram(
            "btec_db_pool_acquire_seconds",
            "Time to acquire a pooled connection.",
            buckets=ACQUIRE_BUCKETS,
            registry=reg,
        )
        self.db_acquire_timeouts = Counter(
            "btec_db_pool_acquire_timeouts", "Pool acquires that timed out.", registry=reg
        )
        self.health_checks = Counter(
            "btec_health_check_runs",
            "Health check runs by check and status.",
            ["check", "status"],
            registry=reg,
        )

    def watch_pool(self, snapshot: Callable[[], PoolSnapshot | None]) -> None:
        self.registry.register(PoolCollector(snapshot))

    def render(self) -> bytes:
        return generate_latest(self.registry)
