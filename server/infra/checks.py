"""The health checks of each component, and the health service's cleanup_ctx."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path

import aiosmtplib
import asyncpg
import psutil
import redis.asyncio as aioredis
from aiohttp import web

from server import keys
from server.infra.clamd import Clamd
from server.infra.mail import SmtpTarget
from server.infra.migrations import migration_ids
from server.infra.pgnames import MIGRATION_TABLE
from server.infra.tasks import Tasks
from server.infra.tasks import workers as queue_workers
from server.services.health import Check, HealthService, Observation, threshold, timed
from server.settings import Settings


class LoopMonitor:
    """Samples event-loop lag: how late a short sleep wakes up."""

    def __init__(self, interval: float = 0.25, window: int = 20) -> None:
        self.interval = interval
        self.samples: deque[float] = deque(maxlen=window)
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(self.interval)
            self.samples.append(max(0.0, time.perf_counter() - started - self.interval))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="btec-loop-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def lag_ms(self) -> float:
        return round(max(self.samples, default=0.0) * 1000, 3)


def postgres_checks(pool: asyncpg.Pool, expected: list[str]) -> list[Check]:
    async def response_time() -> Observation:
        async def ping() -> None:
            async with pool.acquire() as conn:
                await conn.fetchval("SELECT 1")

        return Observation(await timed(ping), "ms")

    async def connections() -> Observation:
        in_use = pool.get_size() - pool.get_idle_size()
        saturated = in_use >= pool.get_max_size()
        return Observation(
            in_use,
            "connections",
            "warn" if saturated else "pass",
            f"all {pool.get_max_size()} connections in use" if saturated else None,
        )

    async def migrations() -> Observation:
        async with pool.acquire() as conn:
            try:
                rows = await conn.fetch(f"SELECT migration_id FROM {MIGRATION_TABLE}")
            except asyncpg.UndefinedTableError:
                rows = []
        applied = {r["migration_id"] for r in rows}
        pending = [m for m in expected if m not in applied]
        if pending:
            return Observation(
                len(pending), "pending", "fail", "pending migrations: " + ", ".join(pending[:5])
            )
        return Observation(0, "pending")

    return [
        Check("postgres:responseTime", "datastore", response_time),
        Check("postgres:connections", "datastore", connections, critical=False),
        Check("postgres:migrations", "datastore", migrations),
    ]


def redis_checks(client: aioredis.Redis) -> list[Check]:
    async def response_time() -> Observation:
        return Observation(await timed(client.ping), "ms")

    return [Check("redis:responseTime", "datastore", response_time)]


def smtp_check(target: SmtpTarget) -> Check:
    """The SMTP server greets and answers NOOP (through TLS when it is smtps://)."""

    async def response_time() -> Observation:
        async def greet() -> None:
            client = aiosmtplib.SMTP(
                hostname=target.host,
                port=target.port,
                use_tls=target.use_tls,
                start_tls=False,
                timeout=target.timeout,
                cert_bundle=target.cafile,
            )
            await client.connect()
            try:
                await client.noop()
            finally:
                with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                    await client.quit()

        return Observation(await timed(greet), "ms")

    return Check("smtp:responseTime", "component", response_time, critical=False)


def scanner_check(settings: Settings) -> Check:
    """clamd answers PING. With no scanner: a warning that uploads go unscanned, or a note
    when BTEC_SCAN_DISABLED says so on purpose."""
    if settings.clamd_url is None:
        chosen = settings.scan_disabled  # said on purpose: a note, not a warning
        note = (
            "scanning is off (BTEC_SCAN_DISABLED): uploads are unscanned"
            if chosen
            else "no virus scanner (BTEC_CLAMD_URL): uploads are unscanned"
        )

        async def unconfigured() -> Observation:
            return Observation(None, None, "pass" if chosen else "warn", note)

        return Check("clamd:responseTime", "component", unconfigured, critical=False)
    clamd = Clamd(settings.clamd_url, timeout=settings.health_check_timeout)

    async def response_time() -> Observation:
        return Observation(await timed(clamd.ping), "ms")

    return Check("clamd:responseTime", "component", response_time, critical=False)


def worker_check(catalogue: Tasks, window: float) -> Check:
    """Some worker reported a heartbeat within `window` seconds (saq's worker registry)."""

    async def heartbeat() -> Observation:
        seen = await queue_workers(catalogue.queue)
        if not seen:
            return Observation(
                0, "workers", "warn", f"no worker reported in the last {window:g} s; jobs wait"
            )
        return Observation(len(seen), "workers")

    return Check("worker:heartbeat", "component", heartbeat, critical=False)


def system_checks(settings: Settings, monitor: LoopMonitor) -> list[Check]:
    data_dir = settings.data_dir

    async def disk() -> Observation:
        target = data_dir if data_dir.exists() else Path.cwd()
        used = psutil.disk_usage(str(target)).percent
        return Observation(used, "percent", threshold(used, settings.disk_warn_percent))

    async def memory() -> Observation:
        used = psutil.virtual_memory().percent
        return Observation(used, "percent", threshold(used, settings.memory_warn_percent))

    async def loop_lag() -> Observation:
        lag = monitor.lag_ms
        return Observation(lag, "ms", threshold(lag, settings.eventloop_lag_warn_ms))

    return [
        Check("disk:utilization", "system", disk, critical=False),
        Check("memory:utilization", "system", memory, critical=False),
        Check("eventloop:lag", "system", loop_lag, critical=False),
    ]


async def health_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the health service over the app's resources, and the loop monitor."""
    settings = app[keys.SETTINGS]
    metrics = app[keys.METRICS]
    monitor = LoopMonitor()
    checks = [
        *postgres_checks(app[keys.DB_POOL], migration_ids(settings.migrations_dir)),
        *redis_checks(app[keys.REDIS]),
        *system_checks(settings, monitor),
    ]
    checks.append(smtp_check(app[keys.MAILER].target))
    checks.append(worker_check(app[keys.TASKS], settings.worker_heartbeat_seconds))
    checks.append(scanner_check(settings))
    app[keys.HEALTH] = HealthService(
        checks,
        timeout=settings.health_check_timeout,
        cache_seconds=settings.health_cache_seconds,
        on_result=lambda r: metrics.health_result(r.key, r.status),
    )
    monitor.start()
    try:
        yield
    finally:
        await monitor.stop()
