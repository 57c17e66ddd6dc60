"""The asyncpg pool: configured from settings, bounded acquires, metrics and its cleanup_ctx."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

import asyncpg
from aiohttp import web
from asyncpg.pool import PoolConnectionProxy

from server.config.settings import Settings
from server.domain.errors import DatabaseBusy, DatabaseUnavailable
from server.observability.metrics import Metrics
from server.observability.probes import Check, Observation, timed

DB_POOL: web.AppKey[asyncpg.Pool] = web.AppKey("db_pool")

# Connection-level failures that mean "PostgreSQL is not there", not "the query is wrong".
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.InterfaceError,
)


STARTUP_ERRORS: tuple[type[BaseException], ...] = (*CONNECTION_ERRORS, TimeoutError)


def server_settings(settings: Settings) -> dict[str, str]:
    return {
        "application_name": f"{settings.service_id}-{settings.env}",
        "statement_timeout": str(settings.db_statement_timeout_ms),
        "idle_in_transaction_session_timeout": str(settings.db_idle_in_transaction_timeout_ms),
    }


async def create_pool(settings: Settings) -> asyncpg.Pool:
    if settings.database_url is None:
        raise RuntimeError("resolve embedded servers before create_pool")
    pool = await asyncpg.create_pool(
        dsn=settings.database_url.get_secret_value(),
        min_size=settings.db_pool_min_size,
        max_size=settings.db_pool_max_size,
        max_queries=settings.db_max_queries,
        max_inactive_connection_lifetime=settings.db_max_inactive_lifetime,
        command_timeout=settings.db_command_timeout,
        statement_cache_size=settings.db_statement_cache_size,
        server_settings=server_settings(settings),
        timeout=settings.db_pool_acquire_timeout,
        reset=keep_session,
    )
    if pool is None:
        raise RuntimeError("asyncpg.create_pool returned no pool")
    return pool


async def keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset on release, instead of asyncpg's default query (`RESET ALL; UNLISTEN *;
    CLOSE ALL; SELECT pg_advisory_unlock_all()`), which costs a round trip on every release.
    asyncpg still rolls back a transaction left open first. Nothing else needs undoing: btec
    never changes a pooled connection's session (settings are fixed at connect time through
    server_settings, changes in a transaction use SET LOCAL, and there are no LISTENs, cursors
    outside transactions or session advisory locks). Code that needs any of those uses a
    connection of its own (connect_once), as migrations and backups do."""


@contextlib.asynccontextmanager
async def acquire(
    pool: asyncpg.Pool, metrics: Metrics, wait: float
) -> AsyncIterator[PoolConnectionProxy]:
    """A pooled connection within `wait` seconds, else DatabaseBusy (503 with Retry-After)."""
    started = time.perf_counter()
    try:
        conn_cm = pool.acquire(timeout=wait)
        conn = await conn_cm.__aenter__()
    except TimeoutError:
        metrics.db_acquire_timeouts.inc()
        raise DatabaseBusy(
            f"no database connection became free within {wait:g} s", retry_after=1
        ) from None
    except CONNECTION_ERRORS:
        raise DatabaseUnavailable("the database cannot be reached", retry_after=5) from None
    metrics.db_acquire.observe(time.perf_counter() - started)
    try:
        yield conn
    except CONNECTION_ERRORS:
        await conn_cm.__aexit__(None, None, None)
        raise DatabaseUnavailable("the database connection was lost", retry_after=5) from None
    except BaseException as exc:
        await conn_cm.__aexit__(type(exc), exc, exc.__traceback__)
        raise
    else:
        await conn_cm.__aexit__(None, None, None)


@contextlib.asynccontextmanager
async def connect_once(url: str, connect_timeout: float = 5) -> AsyncIterator[asyncpg.Connection]:
    """One plain connection for a CLI command: `db=lambda: connect_once(url)`."""
    conn = await asyncpg.connect(url, timeout=connect_timeout)
    try:
        yield conn
    finally:
        await conn.close()


def health_checks(pool: asyncpg.Pool) -> list[Check]:
    """How fast PostgreSQL answers, and how many pooled connections are in use."""

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

    return [
        Check("postgres:responseTime", "datastore", response_time),
        Check("postgres:connections", "datastore", connections, critical=False),
    ]
