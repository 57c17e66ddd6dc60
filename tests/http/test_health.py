"""Health over HTTP: the document, its status codes, who sees details, caching, and outages."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import SecretStr

from server.app import create_app
from server.config.settings import Settings
from server.observability.logging import configure_logging
from server.observability.metrics import METRICS
from server.platform.embedded import EmbeddedPostgres, EmbeddedRedis
from server.platform.lifecycle import LIFECYCLE
from server.schema import migrations
from tests.support.env import closed_port
from tests.support.mail import smtp_server
from tests.support.metrics import as_operator
from tests.support.problems import PROBLEM

HEALTH_JSON = "application/health+json"
EXPECTED_CHECKS = {
    "clamd:responseTime",
    "postgres:responseTime",
    "postgres:connections",
    "postgres:migrations",
    "redis:responseTime",
    "redis:persistence",
    "disk:utilization",
    "memory:utilization",
    "eventloop:lag",
    "smtp:responseTime",
    "worker:heartbeat",
}


@pytest.fixture
def aiohttp_client(aiohttp_client: Callable[..., Any]) -> Callable[..., Any]:
    """Clients send the ops token, as an operator's tools do; `headers={}` makes one
    anonymous."""
    return as_operator(aiohttp_client)


@pytest.fixture
def settings(make_settings: Callable[..., Settings], own_redis: EmbeddedRedis) -> Settings:
    """Everything up, and no virus scanner on purpose (tests/platform/test_scan.py covers
    clamd's check): otherwise the scanner check warns that uploads go unscanned. Redis is an
    embedded one, which keeps an append-only file: a machine's Redis may keep nothing, and
    `redis:persistence` then warns, rightly."""
    return make_settings(scan_disabled=True, redis_url=SecretStr(own_redis.url()))


async def test_live_answers_pass(client: Any) -> None:
    resp = await client.get("/api/v1/health/live")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == HEALTH_JSON
    assert await resp.json(content_type=HEALTH_JSON) == {"status": "pass"}


async def test_full_document_passes_with_everything_up(client: Any) -> None:
    resp = await client.get("/api/v1/health")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == HEALTH_JSON
    doc = await resp.json(content_type=HEALTH_JSON)
    assert doc["status"] == "pass", doc
    assert set(doc["checks"]) == EXPECTED_CHECKS
    assert {"version", "releaseId", "serviceId", "uptime"} <= set(doc)
    for key, entries in doc["checks"].items():
        entry = entries[0]
        assert entry["status"] == "pass", (key, entry)
        assert {"componentType", "observedValue", "observedUnit", "status", "time"} <= set(entry)
    assert doc["checks"]["postgres:migrations"][0]["observedValue"] == 0


async def test_ready_passes_with_everything_up(client: Any) -> None:
    resp = await client.get("/api/v1/health/ready")
    assert resp.status == 200
    assert await resp.json(content_type=HEALTH_JSON) == {"status": "pass"}


async def test_anonymous_callers_see_status_only(
    aiohttp_client: Callable[..., Any], settings: Settings
) -> None:
    settings = settings.model_copy(update={"health_token": SecretStr("t" * 40)})
    client = await aiohttp_client(create_app(settings, worker=True), headers={})
    anonymous = await client.get("/api/v1/health")
    assert anonymous.status == 200
    assert await anonymous.json(content_type=HEALTH_JSON) == {"status": "pass"}
    wrong = await client.get("/api/v1/health", headers={"Authorization": "Bearer nope"})
    assert await wrong.json(content_type=HEALTH_JSON) == {"status": "pass"}
    holder = await client.get("/api/v1/health", headers={"Authorization": "Bearer " + "t" * 40})
    assert set((await holder.json(content_type=HEALTH_JSON))["checks"]) == EXPECTED_CHECKS


async def test_loopback_callers_without_a_token_are_anonymous(
    aiohttp_client: Callable[..., Any], settings: Settings
) -> None:
    """Where a caller appears to be decides nothing: a proxy on the same host makes every
    caller look local."""
    client = await aiohttp_client(create_app(settings), headers={})
    for headers in ({}, {"X-Forwarded-For": "203.0.113.9"}):
        resp = await client.get("/api/v1/health", headers=headers)
        assert set(await resp.json(content_type=HEALTH_JSON)) == {"status"}


async def test_optional_component_down_warns_but_stays_ready(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(smtp_url=f"smtp://127.0.0.1:{closed_port()}")
    client = await aiohttp_client(create_app(settings))
    resp = await client.get("/api/v1/health")
    assert resp.status == 200
    doc = await resp.json(content_type=HEALTH_JSON)
    assert doc["status"] == "warn"
    smtp = doc["checks"]["smtp:responseTime"][0]
    assert smtp["status"] == "warn"
    assert smtp["output"]
    ready = await client.get("/api/v1/health/ready")
    assert ready.status == 200


async def test_invalid_query_is_a_problem(client: Any) -> None:
    resp = await client.get("/api/v1/health?fresh=maybe")
    assert resp.status == 422
    body = await resp.json(content_type=PROBLEM)
    assert body["code"] == "validation_failed"
    assert "fresh" in str(body["errors"])


async def test_checks_are_cached_and_single_flight(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    app = create_app(make_settings(health_cache_seconds=30))
    client = await aiohttp_client(app)
    results = await asyncio.gather(*(client.get("/api/v1/health") for _ in range(40)))
    assert {r.status for r in results} == {200}
    await client.get("/api/v1/health/ready")
    runs = app[METRICS].health_checks.labels("postgres:responseTime", "pass")
    assert runs._value.get() == 1
    await client.get("/api/v1/health?fresh=true")
    assert runs._value.get() == 2


async def test_postgres_down_fails_with_503(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    own_postgres: EmbeddedPostgres,
) -> None:
    settings = make_settings(database_url=SecretStr(own_postgres.url()))
    await asyncio.to_thread(migrations.migrate, settings)
    client = await aiohttp_client(create_app(settings))
    assert (await client.get("/api/v1/health")).status == 200

    await asyncio.to_thread(own_postgres.stop)

    resp = await client.get("/api/v1/health")
    assert resp.status == 503
    doc = await resp.json(content_type=HEALTH_JSON)
    assert doc["status"] == "fail"
    pg = doc["checks"]["postgres:responseTime"][0]
    assert pg["status"] == "fail"
    assert pg["output"]
    assert doc["checks"]["redis:responseTime"][0]["status"] == "pass"
    ready = await client.get("/api/v1/health/ready")
    assert ready.status == 503
    assert await ready.json(content_type=HEALTH_JSON) == {"status": "fail"}
    assert (await client.get("/api/v1/health/live")).status == 200


async def test_pending_migrations_fail_readiness(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    own_postgres: EmbeddedPostgres,
) -> None:
    client = await aiohttp_client(
        create_app(make_settings(database_url=SecretStr(own_postgres.url())))
    )
    resp = await client.get("/api/v1/health/ready")
    assert resp.status == 503
    doc = await (await client.get("/api/v1/health")).json(content_type=HEALTH_JSON)
    assert doc["checks"]["postgres:migrations"][0]["status"] == "fail"
    assert "0001" in doc["checks"]["postgres:migrations"][0]["output"]


async def test_readiness_fails_while_draining(client: Any) -> None:
    client.app[LIFECYCLE].draining = True
    resp = await client.get("/api/v1/health/ready")
    assert resp.status == 503
    assert (await client.get("/api/v1/health/live")).status == 200


async def test_no_worker_warns(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    """`btecctl serve --no-worker` with no `btecctl worker` running: jobs would wait."""
    client = await aiohttp_client(create_app(make_settings(), worker=False))
    resp = await client.get("/api/v1/health")
    assert resp.status == 200
    doc = await resp.json(content_type=HEALTH_JSON)
    assert doc["status"] == "warn"
    beat = doc["checks"]["worker:heartbeat"][0]
    assert beat["status"] == "warn"
    assert beat["observedValue"] == 0
    assert "no worker" in beat["output"]
    assert (await client.get("/api/v1/health/ready")).status == 200


async def test_a_probe_of_smtp_logs_nothing_at_info(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    """aiosmtpd logs each connection in 8 INFO lines; a probe every few seconds would bury
    the log in them. At INFO a probe of the mail server (the catcher is aiosmtpd too) adds
    no line of aiosmtpd's."""
    async with smtp_server() as smtp:
        settings = make_settings(smtp_url=SecretStr(smtp.url), scan_disabled=True)
        client = await aiohttp_client(create_app(settings))
        buf = io.StringIO()
        configure_logging("INFO", "json", stream=buf)
        try:
            resp = await client.get("/api/v1/health?fresh=true")
            doc = await resp.json(content_type=HEALTH_JSON)
        finally:
            configure_logging("INFO", "json")
    assert doc["checks"]["smtp:responseTime"][0]["status"] == "pass"
    lines = [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]
    assert [line for line in lines if line["logger"].startswith("mail.")] == []
    assert [line for line in lines if line["event"] != "request"] == []


async def test_a_redis_without_persistence_warns_and_stays_ready(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings],
    own_redis: EmbeddedRedis,
) -> None:  # fmt: skip
    """The embedded Redis keeps an append-only file; one switched to no persistence at all
    (neither AOF nor RDB) makes `redis:persistence` warn, and readiness does not change."""
    import redis.asyncio as aioredis

    settings = make_settings(redis_url=SecretStr(own_redis.url()), health_cache_seconds=0)
    client = await aiohttp_client(create_app(settings))
    doc = await (await client.get("/api/v1/health")).json(content_type=HEALTH_JSON)
    assert doc["checks"]["redis:persistence"][0]["observedValue"] == "aof"
    assert doc["checks"]["redis:persistence"][0]["status"] == "pass"

    direct = aioredis.Redis.from_url(own_redis.url())
    await direct.config_set("appendonly", "no")
    await direct.aclose()
    resp = await client.get("/api/v1/health")
    doc = await resp.json(content_type=HEALTH_JSON)
    persistence = doc["checks"]["redis:persistence"][0]
    assert persistence["observedValue"] == "none"
    assert persistence["status"] == "warn"
    assert "queued jobs" in persistence["output"]
    assert doc["status"] == "warn"
    assert (await client.get("/api/v1/health/ready")).status == 200
