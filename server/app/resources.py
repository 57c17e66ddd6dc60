"""Every resource of the app, each opened by one cleanup_ctx entry around a single `yield`:
the PostgreSQL pool, Redis and what runs on it (rate limits, cache, logouts, sign-in backoff),
password hashing and token keys, mail, file storage, the job queue (and a worker), health.

Each entry sets the AppKeys of its resource (keys are declared beside the resource they name),
and closes what it opened when the app stops; create_app lists them in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from aiohttp import web

from server.cache.core import CACHE, Cache
from server.config.settings import SETTINGS, Settings
from server.jobs import admin as job_admin
from server.jobs import outbox
from server.jobs import queue as jobs
from server.jobs import worker as job_worker
from server.jobs.queue import JOBS
from server.observability import system
from server.observability.metrics import METRICS, PoolSnapshot
from server.observability.system import LoopMonitor
from server.platform import clamd, mail, postgres, redis
from server.platform.mail import MAILER, Mailer, SmtpTarget, mail_catcher, maildir_path, smtp_url
from server.platform.passwords import PASSWORDS, Passwords
from server.platform.postgres import DB_POOL
from server.platform.redis import REDIS
from server.platform.redisbatch import ScriptBatcher
from server.platform.storage import STORAGE, open_storage
from server.platform.tokens import TOKEN_KEYS, TokenKeys
from server.ratelimit.limiter import RATE_LIMITER, RateLimiter
from server.ratelimit.loginguard import LOGIN_GUARD, LoginGuard
from server.schema import migrations
from server.services.health import HEALTH, HealthService
from server.worker import handlers


def pool_snapshot(app: web.Application) -> PoolSnapshot | None:
    pool = app.get(DB_POOL)
    if pool is None:
        return None
    return PoolSnapshot(size=pool.get_size(), idle=pool.get_idle_size(), max=pool.get_max_size())


async def pool_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: open the pool at startup (PostgreSQL may be down: it retries lazily)."""
    settings = app[SETTINGS]
    try:
        app[DB_POOL] = await postgres.create_pool(settings)
    except postgres.STARTUP_ERRORS:
        # Start anyway with an empty pool: readiness reports the outage until it recovers.
        app[DB_POOL] = await _lazy_pool(settings)
    app[METRICS].watch_pool(lambda: pool_snapshot(app))
    try:
        yield
    finally:
        with contextlib.suppress(TimeoutError):
            await app[DB_POOL].close()


async def _lazy_pool(settings: Settings) -> asyncpg.Pool:
    return await postgres.create_pool(settings.model_copy(update={"db_pool_min_size": 0}))


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the client connects lazily, so startup does not need Redis to be up."""
    client = redis.create_client(app[SETTINGS])
    app[REDIS] = client
    # Rate-limit decisions, logout checks and cache reads go in batches, one at a time, each
    # batch with one deadline.
    batcher = ScriptBatcher(client, timeout=app[SETTINGS].cache_timeout)
    app[RATE_LIMITER] = RateLimiter(batcher)
    app[CACHE] = Cache(client, app[SETTINGS], app[METRICS], batcher)
    app[LOGIN_GUARD] = LoginGuard(batcher, app[SETTINGS], app[METRICS])
    try:
        yield
    finally:
        await client.aclose()


async def auth_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the hashing pool lives as long as the app."""
    settings = app[SETTINGS]
    passwords = Passwords(settings)
    app[PASSWORDS] = passwords
    app[TOKEN_KEYS] = TokenKeys(settings)
    try:
        yield
    finally:
        passwords.close()


async def storage_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the file storage (BTEC_STORAGE_BACKEND), open while the app runs."""
    async with open_storage(app[SETTINGS]) as storage:
        app[STORAGE] = storage
        yield


async def mail_ctx(app: web.Application) -> AsyncIterator[None]:
    """The mailer; with no BTEC_SMTP_URL, the embedded catcher in this process (if its port is
    free: serve and a worker on one machine share one)."""
    settings = app[SETTINGS]
    if settings.smtp_url is not None:
        app[MAILER] = Mailer(SmtpTarget.from_url(smtp_url(settings), settings.smtp_timeout))
        yield
        return
    async with mail_catcher(maildir_path(settings), settings.mail_catcher_port) as port:
        bound = port or settings.mail_catcher_port
        url = f"smtp://127.0.0.1:{bound}?starttls=off"
        app[MAILER] = Mailer(SmtpTarget.from_url(url, settings.smtp_timeout))
        yield


@contextlib.asynccontextmanager
async def looping(
    loop: Callable[[asyncio.Event], Coroutine[Any, Any, None]],
) -> AsyncIterator[None]:
    """`loop(stop)` in a task for the block; then `stop` is set and the loop gets 10 s to end
    (an event, not cancellation: redis-py can turn a cancellation into a ConnectionError)."""
    stop = asyncio.Event()
    task = asyncio.create_task(loop(stop))
    try:
        yield
    finally:
        stop.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(task, 10)


def relaying(
    pool: asyncpg.Pool | None, catalogue: jobs.Jobs, every: float
) -> contextlib.AbstractAsyncContextManager[None]:
    """The job outbox's relay (server.jobs.outbox), beside a worker that has the database."""
    if pool is None:
        return contextlib.nullcontext()
    return looping(functools.partial(outbox.relay_loop, pool.acquire, catalogue, every=every))


def jobs_ctx(*, run_worker: bool) -> Callable[[web.Application], AsyncIterator[None]]:
    """The queue (and, when asked, a worker in this process) on the app's Redis."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        if settings.redis_url is None:
            raise RuntimeError("resolve embedded servers before jobs_ctx")
        saq_queue = jobs.create_queue(settings.redis_url.get_secret_value())
        catalogue = jobs.Jobs(saq_queue, handlers.specs(settings), app[METRICS])
        app[JOBS] = catalogue
        try:
            async with looping(functools.partial(job_admin.monitor_queue, catalogue)):
                if not run_worker:
                    yield
                    return
                worker = job_worker.build_worker(
                    catalogue,
                    settings=settings,
                    mailer=app[MAILER],
                    pool=app.get(DB_POOL),
                    concurrency=settings.worker_concurrency,
                    drain_seconds=settings.worker_drain_seconds,
                    heartbeat_seconds=settings.worker_heartbeat_seconds,
                    sweep_seconds=settings.job_sweep_seconds,
                )
                worker.context["storage"] = app.get(STORAGE)  # uploads, for scans
                worker.context["metrics"] = app[METRICS]
                worker.context["jobs"] = catalogue
                async with (
                    job_worker.running_worker(worker),
                    relaying(app.get(DB_POOL), catalogue, settings.outbox_relay_seconds),
                ):
                    yield
        finally:
            # saq unsubscribes from Redis on the way out, which fails when Redis is down.
            with contextlib.suppress(aioredis.RedisError, OSError):
                await saq_queue.disconnect()

    return ctx


async def health_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the health service over the app's resources, and the loop monitor."""
    settings = app[SETTINGS]
    metrics = app[METRICS]
    monitor = LoopMonitor()
    checks = [
        *postgres.health_checks(app[DB_POOL]),
        migrations.health_check(app[DB_POOL], migrations.migration_ids(settings.migrations_dir)),
        redis.health_check(app[REDIS]),
        redis.persistence_check(app[REDIS]),
        *system.health_checks(settings, monitor),
        mail.health_check(app[MAILER].target),
        job_admin.health_check(app[JOBS], settings.worker_heartbeat_seconds),
        clamd.health_check(settings),
    ]
    app[HEALTH] = HealthService(
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
