"""Prometheus metrics: one CollectorRegistry per app, HTTP RED metrics and build info.

The HTTP metrics are counted by a collector of our own: plain integers updated on the event
loop and turned into Prometheus families at scrape time. prometheus_client's labelled Counter
and Histogram take a lock per increment, which costs more than the rest of the request
middleware together on a small response; exposition stays prometheus_client's.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from aiohttp import web
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
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

METRICS: web.AppKey[Metrics] = web.AppKey("metrics")

HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
ACQUIRE_BUCKETS = (0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0)
UNMATCHED_ROUTE = "<unmatched>"
HEALTH_RANK = {"pass": 0, "warn": 1, "fail": 2}  # nosec B105 # health statuses, not a password
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


@dataclass
class _Timing:
    buckets: list[int]
    total: float = 0.0


@dataclass(slots=True)
class Series:
    """One method and route's counts by status and its duration histogram; the request frame
    keeps a route's series, so counting a request looks nothing up."""

    counts: dict[int, int]
    timing: _Timing
    bounds: tuple[float, ...]

    def observe(self, status: int, seconds: float) -> None:
        counts = self.counts
        counts[status] = counts.get(status, 0) + 1
        timing = self.timing
        timing.buckets[bisect_left(self.bounds, seconds)] += 1
        timing.total += seconds


@dataclass(eq=False)  # registries key collectors by identity
class HttpCollector(Collector):
    """btec_http_requests_total, btec_http_request_duration_seconds and ..._in_progress."""

    bounds: tuple[float, ...] = HTTP_BUCKETS
    in_progress: int = 0
    counts: dict[tuple[str, str], dict[int, int]] = field(default_factory=dict)
    timings: dict[tuple[str, str], _Timing] = field(default_factory=dict)

    def series(self, method: str, route: str) -> Series:
        key = (method, route)
        timing = self.timings.get(key)
        if timing is None:
            timing = self.timings[key] = _Timing([0] * (len(self.bounds) + 1))
            self.counts[key] = {}
        return Series(self.counts[key], timing, self.bounds)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.series(method, route).observe(status, seconds)

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "btec_http_requests",
            "HTTP requests by method, route template and status.",
            labels=["method", "route", "status"],
        )
        for (method, route), by_status in list(self.counts.items()):
            for status, count in list(by_status.items()):
                requests.add_metric([method, route, str(status)], count)
        yield requests
        duration = HistogramMetricFamily(
            "btec_http_request_duration_seconds",
            "HTTP request duration by method and route template.",
            labels=["method", "route"],
        )
        for (method, route), timing in list(self.timings.items()):
            running, buckets = 0, []
            for bound, n in zip((*self.bounds, float("inf")), timing.buckets, strict=True):
                running += n
                buckets.append((_bound(bound), running))
            duration.add_metric([method, route], buckets, timing.total)
        yield duration
        yield GaugeMetricFamily(
            "btec_http_requests_in_progress", "HTTP requests being served.", value=self.in_progress
        )


@dataclass(eq=False)
class DecisionCollector(Collector):
    """btec_ratelimit_decisions_total: plain integers bumped on the event loop (one per
    limited request), turned into a family at scrape time, like the HTTP counts."""

    counts: dict[tuple[str, str], int] = field(default_factory=dict)

    def count(self, policy: str, result: str) -> None:
        key = (policy, result)
        self.counts[key] = self.counts.get(key, 0) + 1

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "btec_ratelimit_decisions",
            "Rate-limit decisions by policy and result (allowed, limited, fallback_allowed, "
            "fallback_limited, unavailable).",
            labels=["policy", "result"],
        )
        for labels, value in list(self.counts.items()):
            family.add_metric(list(labels), value)
        yield family


@dataclass(eq=False)
class QueueCollector(Collector):
    """Queue depth and live workers, as last read by the app's queue monitor."""

    counts: dict[str, int] = field(default_factory=dict)
    workers: int | None = None

    def collect(self) -> Iterator[Metric]:
        if self.workers is None:
            return
        for state, value in self.counts.items():
            name = "btec_jobs_failed_kept" if state == "failed" else f"btec_jobs_{state}"
            yield GaugeMetricFamily(name, f"Jobs {state} now.", value=value)
        yield GaugeMetricFamily(
            "btec_workers", "Workers that reported a heartbeat recently.", value=self.workers
        )


@dataclass(frozen=True)
class BackupSnapshot:
    """What the backup directory says: the newest complete backup and the newest passed drill."""

    kept: int
    last_success: float | None = None  # unix seconds the newest backup finished
    last_size_bytes: int | None = None
    last_drill_success: float | None = None  # unix seconds of the newest drill that passed


@dataclass(eq=False)
class BackupCollector(Collector):
    """btec_backup_* gauges, read from the backup directory at scrape time (at most once per
    `ttl` seconds: a scrape stays cheap whatever the directory holds). Only what this process
    can see: backups written to another machine's disk are not known here."""

    read: Callable[[], BackupSnapshot | None]
    ttl: float = 60.0
    _cached: tuple[float, BackupSnapshot | None] | None = None

    def collect(self) -> Iterator[Metric]:
        now = time.monotonic()
        if self._cached is None or now - self._cached[0] >= self.ttl:
            self._cached = (now, self.read())
        snap = self._cached[1]
        if snap is None:
            return
        yield GaugeMetricFamily("btec_backups_kept", "Complete backups on disk.", value=snap.kept)
        if snap.last_success is not None:
            yield GaugeMetricFamily(
                "btec_backup_last_success_timestamp_seconds",
                "When the newest complete backup finished (unix time).",
                value=snap.last_success,
            )
        if snap.last_size_bytes is not None:
            yield GaugeMetricFamily(
                "btec_backup_last_size_bytes",
                "Size of the newest complete backup.",
                value=snap.last_size_bytes,
            )
        if snap.last_drill_success is not None:
            yield GaugeMetricFamily(
                "btec_backup_last_verified_timestamp_seconds",
                "When a restore drill (btecctl db verify) last passed, on any kept backup "
                "(unix time).",
                value=snap.last_drill_success,
            )


def _bound(value: float) -> str:
    return "+Inf" if value == float("inf") else repr(value)


class Metrics:
    """Every metric of one app, registered in its own registry so tests can build many apps."""

    def __init__(self, *, version: str, release: str, enabled: bool = True) -> None:
        self.enabled = enabled  # False: HTTP requests are not counted and /metrics is a 404
        disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created series double the output and nobody reads them
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        ProcessCollector(registry=reg)
        GCCollector(registry=reg)
        PlatformCollector(registry=reg)
        build = Gauge("btec_build_info", "Build information.", ["version", "release"], registry=reg)
        build.labels(version=version, release=release).set(1)
        self.http = HttpCollector()
        reg.register(self.http)
        self.db_acquire = Histogram(
            "btec_db_pool_acquire_seconds",
            "Time to acquire a pooled connection.",
            buckets=ACQUIRE_BUCKETS,
            registry=reg,
        )
        self.db_acquire_timeouts = Counter(
            "btec_db_pool_acquire_timeouts", "Pool acquires that timed out.", registry=reg
        )
        self.embedded_restarts = Counter(
            "btec_embedded_restarts",
            "Embedded servers (postgres, redis) `serve` found dead and started again.",
            ["server"],
            registry=reg,
        )
        self.jobs_enqueued = Counter(
            "btec_jobs_enqueued", "Jobs put on the queue, by task.", ["task"], registry=reg
        )
        self.jobs_finished = Counter(
            "btec_jobs_finished",
            "Job runs that ended, by task and status (complete, failed, queued for retry, ...).",
            ["task", "status"],
            registry=reg,
        )
        self.jobs_running = Gauge(
            "btec_jobs_running", "Jobs this process is running now, by task.", ["task"],
            registry=reg,
        )  # fmt: skip
        self.jobs_failed = Counter(
            "btec_jobs_failed", "Jobs that failed for good, by task.", ["task"], registry=reg
        )
        self.job_duration = Histogram(
            "btec_job_duration_seconds",
            "Time a job run took, by task.",
            ["task"],
            buckets=(0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0),
            registry=reg,
        )
        self.ratelimit = DecisionCollector()
        reg.register(self.ratelimit)
        self.ratelimit_errors = Counter(
            "btec_ratelimit_errors",
            "Redis errors met by the rate limiter.",
            ["policy"],
            registry=reg,
        )
        self.cache_hits = Counter(
            "btec_cache_hits", "Cached reads served from Redis.", ["cache"], registry=reg
        )
        self.cache_misses = Counter(
            "btec_cache_misses",
            "Cached reads computed (from PostgreSQL) and stored.",
            ["cache"],
            registry=reg,
        )
        self.cache_coalesced = Counter(
            "btec_cache_coalesced",
            "Concurrent misses served by another caller's computation (stampede protection).",
            ["cache"],
            registry=reg,
        )
        self.cache_errors = Counter(
            "btec_cache_errors",
            "Redis errors and timeouts met by the cache, by operation (get, set, lock, "
            "invalidate); the read went through uncached.",
            ["cache", "op"],
            registry=reg,
        )
        self.cache_bypassed = Counter(
            "btec_cache_bypassed",
            "Reads that skipped the cache, by reason (disabled, error, backoff).",
            ["cache", "reason"],
            registry=reg,
        )
        self.uploads = Counter(
            "btec_uploads",
            "Upload attempts by result (stored, file_too_large, quota_exceeded, "
            "unsupported_type, unsafe_archive, malformed_upload, storage_unavailable).",
            ["result"],
            registry=reg,
        )
        self.upload_bytes = Counter(
            "btec_upload_bytes", "Bytes of uploaded files stored.", registry=reg
        )
        self.scans = Counter(
            "btec_scans",
            "Virus scan verdicts by status (clean, infected, error; error only after the "
            "last retry).",
            ["status"],
            registry=reg,
        )
        self.submissions = Counter(
            "btec_submissions",
            "Submissions taken, by kind (first, resubmission) and whether they were late.",
            ["kind", "late"],
            registry=reg,
        )
        self.grades = Counter(
            "btec_grades", "Grades given or changed, by overall grade (D, M, P, U).", ["overall"],
            registry=reg,
        )  # fmt: skip
        self.similarity_checks = Counter(
            "btec_similarity_checks",
            "Similarity checks of a submission, by result (flagged: at least one pair over "
            "BTEC_SIMILARITY_THRESHOLD; clear; skipped: too short to compare).",
            ["result"],
            registry=reg,
        )
        self.queue = QueueCollector()
        reg.register(self.queue)
        self.health_checks = Counter(
            "btec_health_check_runs",
            "Health check runs by check and status.",
            ["check", "status"],
            registry=reg,
        )
        self.health_status = Gauge(
            "btec_health_check_status",
            "Last result of each health check: 0 pass, 1 warn, 2 fail (checks run when "
            "/api/v1/health or /ready is requested).",
            ["check"],
            registry=reg,
        )

    def health_result(self, check: str, status: str) -> None:
        self.health_checks.labels(check, status).inc()
        self.health_status.labels(check).set(HEALTH_RANK.get(status, 2))

    def watch_pool(self, snapshot: Callable[[], PoolSnapshot | None]) -> None:
        self.registry.register(PoolCollector(snapshot))

    def watch_backups(self, read: Callable[[], BackupSnapshot | None]) -> None:
        self.registry.register(BackupCollector(read))

    def render(self) -> bytes:
        return generate_latest(self.registry)
