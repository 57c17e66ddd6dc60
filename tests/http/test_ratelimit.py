"""Rate limits: exact, with IETF headers, shared across processes, and safe when Redis fails."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis
from pydantic import SecretStr

from server.app import create_app
from server.config.settings import Settings
from server.platform.embedded import EmbeddedRedis
from server.platform.tokens import TokenKeys
from tests.support.env import cli_env, closed_port
from tests.support.metrics import operator_headers, scrape
from tests.support.problems import PROBLEM
from tests.support.wait import eventually

# Also run against the embedded servers in CI's second pass (pyproject.toml's markers).
pytestmark = pytest.mark.embedded


ROUTE = "/api/v1/no-such-thing"  # under the default policy: 404 until limited


async def limited_client(aiohttp_client: Callable[..., Any], settings: Settings) -> Any:
    return await aiohttp_client(create_app(settings))


async def test_limit_is_exact_with_headers(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    client = await limited_client(aiohttp_client, make_settings(ratelimit_default="3/60"))
    seen = []
    for _ in range(3):
        resp = await client.get(ROUTE)
        assert resp.status == 404
        assert resp.headers["RateLimit-Policy"] == '"default";q=3;w=60'
        seen.append(resp.headers["RateLimit"])
    assert [s.split(";")[1] for s in seen] == ["r=2", "r=1", "r=0"]
    assert all(s.startswith('"default";') for s in seen)
    limited = await client.get(ROUTE)
    assert limited.status == 429
    body = await limited.json(content_type=PROBLEM)
    assert body["code"] == "rate_limited"
    retry_after = int(limited.headers["Retry-After"])
    assert 1 <= retry_after <= 20
    assert limited.headers["RateLimit-Policy"] == '"default";q=3;w=60'
    assert limited.headers["RateLimit"].startswith('"default";r=0;t=')
    metrics = await scrape(client)
    assert 'btec_ratelimit_decisions_total{policy="default",result="limited"} 1.0' in metrics
    assert 'btec_ratelimit_decisions_total{policy="default",result="allowed"} 3.0' in metrics


async def test_retry_after_is_honoured(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    client = await limited_client(aiohttp_client, make_settings(ratelimit_default="2/2"))
    assert [(await client.get(ROUTE)).status for _ in range(2)] == [404, 404]
    limited = await client.get(ROUTE)
    assert limited.status == 429
    # A refused request spends nothing (GCRA): ask again until one passes, which must be
    # within the Retry-After given (and a moment for a slow machine).
    retry_after = int(limited.headers["Retry-After"])
    passed = await eventually(
        lambda: client.get(ROUTE), lambda a: a.status != 429, timeout=retry_after + 2,
        interval=0.1, message=f"a request passes within Retry-After ({retry_after} s)",
    )  # fmt: skip
    assert passed.status == 404


async def test_probes_and_metrics_are_exempt(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(ratelimit_default="1/60")
    client = await limited_client(aiohttp_client, settings)
    token = operator_headers(settings)
    for path in ["/api/v1/health/live"] * 5 + ["/api/v1/health/ready"] * 3 + ["/metrics"] * 3:
        resp = await client.get(path, headers=token)
        assert resp.status == 200, path
        assert "RateLimit" not in resp.headers


async def test_route_declares_its_own_policy(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(ratelimit_policies="ops_mail=2/60:closed")
    client = await limited_client(aiohttp_client, settings)
    ops = operator_headers(settings, "ops_token")
    mail = {"to": "a@example.org"}
    statuses = [
        (await client.post("/api/v1/ops/mail/test", json=mail, headers=ops)).status
        for _ in range(3)
    ]
    assert statuses == [202, 202, 429]
    assert (await client.get(ROUTE)).status == 404  # the default policy is separate


async def test_scripts_load_again_after_redis_forgets_them(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings], redis_url: str
) -> None:
    client = await limited_client(aiohttp_client, make_settings(ratelimit_default="3/60"))
    assert (await client.get(ROUTE)).status == 404
    flusher = redis.Redis.from_url(redis_url)
    flusher.script_flush()  # as after a Redis restart, minus the data
    flusher.close()
    statuses = await asyncio.gather(*(client.get(ROUTE) for _ in range(3)))
    assert sorted(r.status for r in statuses) == [404, 404, 429]  # the count carried on


def counter(metrics: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith(name))  # fmt: skip


async def test_reads_run_alongside_their_decision_and_stay_exact(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    """A catalogue read by a client with budget to spare runs while its decision is on the
    way (so its cache read shares the decision's Redis round trip); the limit stays exact."""
    client = await limited_client(aiohttp_client, make_settings(ratelimit_default="10/60"))
    first = await client.get("/api/v1/units")
    assert first.status == 200
    assert first.headers["RateLimit"].startswith('"default";r=9;')
    answers = await asyncio.gather(*(client.get("/api/v1/units") for _ in range(14)))
    assert sorted(a.status for a in answers) == [200] * 9 + [429] * 5
    for answer in answers:
        assert answer.headers["RateLimit-Policy"] == '"default";q=10;w=60'
        if answer.status == 429:
            assert (await answer.json(content_type=PROBLEM))["code"] == "rate_limited"
            assert int(answer.headers["Retry-After"]) >= 1
    metrics = await scrape(client)
    assert 'btec_ratelimit_decisions_total{policy="default",result="limited"} 5.0' in metrics
    # Every one of the 15 ran its handler (the refused ones too, as they had budget when
    # they started): that is the price of running alongside, and why only reads may.
    lookups = sum(counter(metrics, f'btec_cache_{kind}_total{{cache="units.page"}}')
                  for kind in ("hits", "misses", "coalesced"))  # fmt: skip
    assert lookups == 15
    again = [(await client.get("/api/v1/units")).status for _ in range(3)]
    assert again == [429] * 3  # no budget left: each waits for its decision first
    metrics = await scrape(client)
    assert sum(counter(metrics, f'btec_cache_{kind}_total{{cache="units.page"}}')
               for kind in ("hits", "misses", "coalesced")) == 15  # fmt: skip


async def test_signed_in_requests_count_per_user(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    """Users behind one address (a college's NAT) each get their own budget; a token that
    does not verify counts against the address."""
    settings = make_settings(ratelimit_default="2/60")
    client = await limited_client(aiohttp_client, settings)
    tokens = TokenKeys(settings)
    ada, sam = (tokens.issue(user_id, 0, uuid.uuid4())[0] for user_id in (1, 2))

    async def status(token: str) -> int:
        return (await client.get(ROUTE, headers={"Authorization": f"Bearer {token}"})).status

    assert [await status(ada) for _ in range(3)] == [404, 404, 429]
    assert [await status(sam) for _ in range(3)] == [404, 404, 429]
    forged = ada[:-4] + ("AAAA" if not ada.endswith("AAAA") else "BBBB")
    assert [await status(forged) for _ in range(2)] == [404, 404]  # the address's own budget
    assert (await client.get(ROUTE)).status == 429  # the same address, no token


@pytest.mark.parametrize(("trusted", "separate"), [("127.0.0.1/32", True), ("", False)])
async def test_forwarded_for_only_from_trusted_proxies(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    trusted: str,
    separate: bool,
) -> None:
    settings = make_settings(ratelimit_default="1/60", trusted_proxies=trusted)
    client = await limited_client(aiohttp_client, settings)
    first = await client.get(ROUTE, headers={"X-Forwarded-For": "203.0.113.1"})
    # The client forges an earlier hop; a trusted proxy appended the real one last.
    second = await client.get(ROUTE, headers={"X-Forwarded-For": "203.0.113.1, 198.51.100.2"})
    assert first.status == 404
    assert second.status == (404 if separate else 429)
    again = await client.get(ROUTE, headers={"X-Forwarded-For": "10.9.9.9, 198.51.100.2"})
    assert again.status == 429  # spoofing the left-most hop does not buy a new bucket


async def test_redis_down_open_falls_back_closed_refuses_then_both_recover(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    own_redis: EmbeddedRedis,
) -> None:
    settings = make_settings(
        redis_url=SecretStr(own_redis.url()),
        ratelimit_default="3/60:open",
        ratelimit_policies="ops_mail=5/60:closed",
    )
    client = await limited_client(aiohttp_client, settings)
    assert (await client.get(ROUTE)).status == 404
    await asyncio.to_thread(own_redis.stop)

    local = [(await client.get(ROUTE)).status for _ in range(4)]
    assert local == [404, 404, 404, 429]  # the local limiter enforces the same policy
    ops = operator_headers(settings, "ops_token")
    closed = await client.post("/api/v1/ops/mail/test", json={"to": "a@example.org"}, headers=ops)
    assert closed.status == 503
    assert closed.headers["Retry-After"] == "5"
    assert (await closed.json(content_type=PROBLEM))["code"] == "ratelimit_unavailable"
    metrics = await scrape(client)
    assert 'btec_ratelimit_errors_total{policy="default"}' in metrics

    await asyncio.to_thread(own_redis.start)
    await eventually(lambda: client.get(ROUTE), lambda a: a.status == 404, timeout=10,
                     interval=0.2, message="Redis decides again")  # fmt: skip
    back = await client.get(ROUTE)
    assert back.status == 404  # Redis answers again: its (fresh) bucket decides
    recovered = await client.post(
        "/api/v1/ops/mail/test", json={"to": "a@example.org"}, headers=ops
    )
    assert recovered.status == 202


def test_bad_policy_settings_name_the_variable(cli: Callable[..., Any]) -> None:
    for name, value in [
        ("BTEC_RATELIMIT_DEFAULT", "lots"),
        ("BTEC_RATELIMIT_DEFAULT", "0/60"),
        ("BTEC_RATELIMIT_POLICIES", "ops_mail=5/60:sometimes"),
        ("BTEC_RATELIMIT_POLICIES", "=5/60"),
        ("BTEC_TRUSTED_PROXIES", "10.0.0.0/8, not-a-net"),
    ]:
        result = cli("db", "status", env={"BTEC_ENV_FILE": "", name: value})
        assert result.exit_code == 4, (name, value)
        assert name in result.output


def test_two_processes_share_one_limit(settings: Settings, redis_url: str) -> None:
    """Two `btecctl serve` processes on one Redis: one limit between them."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BTEC_")}
    environ.update(cli_env(settings, BTEC_ENV_FILE="", BTEC_RATELIMIT_DEFAULT="7/600",
                           BTEC_MAIL_CATCHER_PORT="0", BTEC_DRAIN_SECONDS="0"))  # fmt: skip
    ports = [closed_port(), closed_port()]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "btecctl", "serve", "--port", str(p), "--no-worker", "--json"],
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for p in ports
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            for line in proc.stdout:
                if '"event": "ready"' in line:
                    break
        statuses = [_status(f"http://127.0.0.1:{ports[i % 2]}{ROUTE}") for i in range(12)]
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(30)
    assert statuses.count(404) == 7, statuses
    assert statuses.count(429) == 5, statuses


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
