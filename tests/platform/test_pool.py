"""The database pool: a bounded acquire answers 503 with Retry-After instead of hanging."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from server.app import create_app
from server.config.settings import Settings
from server.http import deps
from server.http.guard import public
from server.observability.metrics import METRICS
from server.platform.postgres import DB_POOL
from tests.support.problems import PROBLEM


@public
async def one_row(request: web.Request) -> web.Response:
    """A handler that needs a connection, the way every data endpoint gets one."""
    async with deps.db(request)() as conn:
        return web.json_response({"one": await conn.fetchval("SELECT 1")})


def app_with_query_route(settings: Settings) -> web.Application:
    app = create_app(settings)
    app.router.add_get("/_test/one", one_row)
    return app


async def test_acquire_timeout_is_503_with_retry_after(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(db_pool_min_size=1, db_pool_max_size=1, db_pool_acquire_timeout=0.3)
    app = app_with_query_route(settings)
    client = await aiohttp_client(app)
    assert (await client.get("/_test/one")).status == 200

    async with app[DB_POOL].acquire():  # hold the only connection
        started = time.monotonic()
        resp = await client.get("/_test/one")
        took = time.monotonic() - started
    assert resp.status == 503
    assert took < 2.0
    assert resp.headers["Retry-After"] == "1"
    body = await resp.json(content_type=PROBLEM)
    assert body["code"] == "db_pool_timeout"
    assert app[METRICS].db_acquire_timeouts._value.get() == 1
    assert (await client.get("/_test/one")).status == 200  # the pool recovers


async def test_concurrent_requests_beyond_pool_size_queue_then_succeed(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(db_pool_min_size=1, db_pool_max_size=2, db_pool_acquire_timeout=5)
    client = await aiohttp_client(app_with_query_route(settings))
    results = await asyncio.gather(*(client.get("/_test/one") for _ in range(30)))
    assert {r.status for r in results} == {200}


async def test_released_connections_come_back_clean(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    """The pool's light reset still rolls back what a caller left open."""
    app = create_app(make_settings(db_pool_min_size=1, db_pool_max_size=1))
    await aiohttp_client(app)
    pool = app[DB_POOL]
    async with pool.acquire() as conn:
        await conn.execute("BEGIN")
        await conn.execute("CREATE TEMP TABLE left_open (x int)")
    async with pool.acquire() as conn:  # the same, only connection
        assert not conn.is_in_transaction()
        assert await conn.fetchval("SELECT to_regclass('pg_temp.left_open')") is None
        assert await conn.fetchval("SHOW application_name") == "btec-test"


async def test_pool_settings_reach_the_server(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(db_statement_timeout_ms=1234, db_idle_in_transaction_timeout_ms=4321)
    app = create_app(settings)
    await aiohttp_client(app)
    async with app[DB_POOL].acquire() as conn:
        assert await conn.fetchval("SHOW statement_timeout") == "1234ms"
        assert await conn.fetchval("SHOW idle_in_transaction_session_timeout") == "4321ms"
        assert await conn.fetchval("SHOW application_name") == "btec-test"


async def test_statement_timeout_cancels_slow_queries(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    app = create_app(make_settings(db_statement_timeout_ms=100))
    await aiohttp_client(app)
    async with app[DB_POOL].acquire() as conn:
        with pytest.raises(asyncpg.QueryCanceledError):
            await conn.execute("SELECT pg_sleep(2)")


async def test_database_down_is_503_not_500(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings], tmp_path: Any
) -> None:
    from pydantic import SecretStr

    missing = f"postgresql://postgres@/btec?host={tmp_path}&port=5432"
    client = await aiohttp_client(
        app_with_query_route(make_settings(database_url=SecretStr(missing)))
    )
    resp = await client.get("/_test/one")
    assert resp.status == 503
    assert (await resp.json(content_type=PROBLEM))["code"] == "db_unavailable"
    assert resp.headers["Retry-After"] == "5"
