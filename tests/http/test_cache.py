"""The read cache: counted hits and misses, ETags, invalidation that is never stale, one
computation per stampede (in one process and across two), and Redis failures that only make
reads uncached."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
import redis.asyncio as aioredis
from pydantic import SecretStr

from server import __version__
from server.app import create_app
from server.cache import core as cache_module
from server.cache.core import CACHE, Cache, cached
from server.config.settings import Settings
from server.observability.metrics import Metrics
from server.platform.embedded import EmbeddedRedis
from tests.support.env import cli_env, closed_port
from tests.support.metrics import metric, operator_headers, scrape
from tests.support.units import CATALOGUE, HEADER, seed, write
from tests.support.wait import eventually, eventually_sync

# Also run against the embedded servers in CI's second pass (pyproject.toml's markers).
pytestmark = pytest.mark.embedded


PAGE = "/api/v1/units?level=3"


async def test_hits_and_misses_are_counted(
    client: Any, acli: Callable[..., Any], settings: Settings, tmp_path: Path
) -> None:
    await seed(acli, settings, tmp_path, CATALOGUE)
    bodies = [await (await client.get(PAGE)).json() for _ in range(3)]
    assert bodies[0] == bodies[1] == bodies[2]
    await client.get("/api/v1/units?level=2")
    await client.get("/api/v1/units?level=3&q=PROG")
    await client.get("/api/v1/units?level=3&q=prog")  # the same entry: search is any case
    text = await scrape(client)
    assert metric(text, "btec_cache_misses_total", cache="units.page") == 3
    assert metric(text, "btec_cache_hits_total", cache="units.page") == 3
    assert metric(text, "btec_cache_errors_total") == 0


async def test_etag_and_if_none_match(
    client: Any, acli: Callable[..., Any], settings: Settings, tmp_path: Path
) -> None:
    await seed(acli, settings, tmp_path, CATALOGUE)
    first = await client.get(PAGE)
    etag = first.headers["ETag"]
    assert etag.startswith('"')
    assert first.headers["Cache-Control"] == "no-cache"
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = await client.get(PAGE, headers={"If-None-Match": header})
        assert again.status == 304, header
        assert await again.read() == b""
        assert again.headers["ETag"] == etag
    assert (await client.get(PAGE, headers={"If-None-Match": '"other"'})).status == 200
    await seed(acli, settings, tmp_path, HEADER + "K/615/1544,Programming II,3,60\n")
    changed = await client.get(PAGE, headers={"If-None-Match": etag})
    assert changed.status == 200
    assert changed.headers["ETag"] != etag
    assert "Programming II" in [u["title"] for u in (await changed.json())["items"]]


async def test_a_read_after_a_write_is_never_stale(
    client: Any, acli: Callable[..., Any], settings: Settings, tmp_path: Path
) -> None:
    await seed(acli, settings, tmp_path, CATALOGUE)
    unit_id = (await (await client.get("/api/v1/units?q=programming")).json())["items"][0]["id"]
    for round_ in range(4):
        for _ in range(2):  # warm both entries
            await client.get(f"/api/v1/units/{unit_id}")
            await client.get(PAGE)
        title = f"Programming v{round_}"
        await seed(acli, settings, tmp_path, HEADER + f"K/615/1544,{title},3,60\n")
        assert (await (await client.get(f"/api/v1/units/{unit_id}")).json())["title"] == title
        titles = [u["title"] for u in (await (await client.get(PAGE)).json())["items"]]
        assert title in titles


@pytest.fixture
async def plain_cache(settings: Settings, redis_url: str) -> Any:
    client = aioredis.Redis.from_url(redis_url)
    yield Cache(client, settings, Metrics(version=__version__, release="test"))
    await client.aclose()
    for name in [n for n in cache_module.REGISTRY if n.startswith("test.")]:
        del cache_module.REGISTRY[name]


async def test_a_late_store_from_before_the_write_is_never_served(plain_cache: Cache) -> None:
    """A read that fetched before a write committed stores its result after the
    invalidation; the next read must not get it."""
    database = {"title": "old"}
    fetched, gate = asyncio.Event(), asyncio.Event()

    @cached("test.race", ttl=60, key="{unit_id}", tags=("race",))
    async def read(*, cache: Cache | None, unit_id: int) -> str:
        seen = database["title"]
        fetched.set()
        await gate.wait()
        return seen

    slow = asyncio.ensure_future(read(cache=plain_cache, unit_id=1))
    await asyncio.wait_for(fetched.wait(), 10)  # the read has fetched, before the write
    database["title"] = "new"  # the write commits...
    assert await plain_cache.invalidate("race")  # ...then invalidates
    gate.set()
    assert await slow == "old"  # the read that started before the write
    assert await read(cache=plain_cache, unit_id=1) == "new"
    assert await read(cache=plain_cache, unit_id=1) == "new"


async def test_ttl_has_jitter_and_keys_cannot_collide(
    plain_cache: Cache, settings: Settings
) -> None:
    calls: list[tuple[str, str]] = []

    @cached("test.keys", ttl=100, key="{a}:{b}")
    async def pair(*, cache: Cache | None, a: str, b: str) -> list[str]:
        calls.append((a, b))
        return [a, b]

    assert await pair(cache=plain_cache, a="x:y", b="z") == ["x:y", "z"]
    assert await pair(cache=plain_cache, a="x", b="y:z") == ["x", "y:z"]
    assert await pair(cache=plain_cache, a="x", b="y:z") == ["x", "y:z"]
    assert calls == [("x:y", "z"), ("x", "y:z")]
    ttls = [await plain_cache.client.pttl(k) async for k in plain_cache.client.scan_iter(
        match=cache_module.VALUE_PREFIX + "test.keys:*")]  # fmt: skip
    assert len(ttls) == 2
    jitter = settings.cache_ttl_jitter
    assert all((1 - jitter) * 100_000 - 50 <= t <= (1 + jitter) * 100_000 for t in ttls), ttls


async def test_a_failed_computation_releases_its_lock(plain_cache: Cache) -> None:
    """Other processes waiting on the key read PostgreSQL themselves at once."""
    calls = []

    @cached("test.fails", ttl=60, key="{n}")
    async def fails(*, cache: Cache | None, n: int) -> int:
        calls.append(n)
        raise LookupError("no such thing")

    for _ in range(2):
        with pytest.raises(LookupError):
            await fails(cache=plain_cache, n=1)
    assert calls == [1, 1]  # errors are not cached
    locks = [k async for k in plain_cache.client.scan_iter(match=cache_module.LOCK_PREFIX + "*")]
    assert locks == []


async def test_a_waiter_elsewhere_reads_itself_when_the_holder_fails(
    plain_cache: Cache, settings: Settings, redis_url: str
) -> None:
    """Two processes' caches: the one computing fails, the one waiting on its lock then reads
    PostgreSQL itself at once instead of waiting out BTEC_CACHE_LOCK_SECONDS."""
    client = aioredis.Redis.from_url(redis_url)
    other = Cache(client, settings, Metrics(version=__version__, release="test"))
    started = asyncio.Event()

    @cached("test.holder", ttl=60, key="{n}")
    async def read(*, cache: Cache | None, n: int, fail: bool) -> str:
        if fail:
            started.set()
            await asyncio.sleep(0.3)  # a slow read that then fails: what the other waits out
            raise LookupError("the database went away")
        return "fresh"

    holder = asyncio.ensure_future(read(cache=plain_cache, n=1, fail=True))
    await started.wait()
    began = time.monotonic()
    assert await read(cache=other, n=1, fail=False) == "fresh"
    waited = time.monotonic() - began
    with pytest.raises(LookupError):
        await holder
    await client.aclose()
    assert 0.2 < waited < settings.cache_lock_seconds / 2


def test_declarations_are_checked() -> None:
    with pytest.raises(ValueError, match="ttl"):
        cached("test.nottl", ttl=0)
    with pytest.raises(TypeError, match="cache"):

        @cached("test.nocache", ttl=5)
        async def no_cache(x: int) -> int:
            return x

    with pytest.raises(TypeError, match="unknown arguments"):

        @cached("test.badkey", ttl=5, key="{missing}")
        async def bad_key(*, cache: Cache | None, x: int) -> int:
            return x

    for name in [n for n in cache_module.REGISTRY if n.startswith("test.")]:
        del cache_module.REGISTRY[name]


def hold_units_lock(database_url: str, started: threading.Event, release: threading.Event) -> None:
    """Keep the units table locked until `release` so every read of it waits: misses pile up
    together."""
    with psycopg.connect(database_url) as conn:
        conn.execute("LOCK TABLE units IN ACCESS EXCLUSIVE MODE")
        started.set()
        release.wait(60)


async def test_a_stampede_of_50_misses_computes_once(
    client: Any, acli: Callable[..., Any], settings: Settings, tmp_path: Path, database_url: str
) -> None:
    await seed(acli, settings, tmp_path, CATALOGUE)
    started, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=hold_units_lock, args=(database_url, started, release))
    holder.start()
    try:
        await asyncio.to_thread(started.wait, 5)
        reads = asyncio.gather(*(client.get(PAGE) for _ in range(50)))
        # The first read waits on the table; the lock goes once all 49 others wait on it.
        await eventually(
            lambda: scrape(client),
            lambda text: metric(text, "btec_cache_coalesced_total", cache="units.page") >= 49,
            message="49 reads wait for the first",
        )  # fmt: skip
    finally:
        release.set()
    answers = await reads
    await asyncio.to_thread(holder.join)
    bodies = [await a.json() for a in answers]
    assert all(a.status == 200 for a in answers)
    assert all(b == bodies[0] for b in bodies)
    assert len(bodies[0]["items"]) == 3
    text = await scrape(client)
    assert metric(text, "btec_cache_misses_total", cache="units.page") == 1
    assert metric(text, "btec_cache_coalesced_total", cache="units.page") == 49


def serve(settings: Settings, port: int, **extra: str) -> subprocess.Popen[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BTEC_")}
    quiet = {"BTEC_RATELIMIT_ENABLED": "false", "BTEC_MAIL_CATCHER_PORT": "0"}
    environ.update(cli_env(settings, BTEC_ENV_FILE="", BTEC_DRAIN_SECONDS="0", **quiet, **extra))
    proc = subprocess.Popen(
        [sys.executable, "-m", "btecctl", "serve", "--port", str(port), "--no-worker", "--json"],
        env=environ, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        if '"event": "ready"' in line:
            return proc
    raise AssertionError("btecctl serve exited before it was ready")


def fetch(url: str, headers: dict[str, str] | None = None) -> bytes:
    asked = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - loopback
    with urllib.request.urlopen(asked, timeout=10) as resp:  # noqa: S310 - loopback
        return bytes(resp.read())


def test_two_processes_share_one_computation(
    cli: Callable[..., Any], settings: Settings, tmp_path: Path, database_url: str
) -> None:
    """Two `btecctl serve` processes on one Redis: 50 concurrent misses split between them
    read PostgreSQL once."""
    from concurrent.futures import ThreadPoolExecutor

    assert cli("units", "import", write(tmp_path, CATALOGUE), env=cli_env(settings)).exit_code == 0
    ports = [closed_port(), closed_port()]
    token = operator_headers(settings)
    procs = [serve(settings, p) for p in ports]
    try:
        started, release = threading.Event(), threading.Event()
        holder = threading.Thread(target=hold_units_lock, args=(database_url, started, release))
        holder.start()
        started.wait(5)
        urls = [f"http://127.0.0.1:{ports[i % 2]}{PAGE}" for i in range(50)]
        with ThreadPoolExecutor(max_workers=50) as pool:
            try:
                reading = pool.map(fetch, urls)
                # The lock goes once, in each process, every read but the first waits on the
                # first (the first of the second process waits on the other's lock in Redis).
                eventually_sync(
                    lambda: sum(
                        metric(fetch(f"http://127.0.0.1:{p}/metrics", token).decode(),
                               "btec_cache_coalesced_total", cache="units.page")
                        for p in ports
                    ),
                    lambda waiting: waiting >= 48, message="48 reads wait for their first",
                )  # fmt: skip
            finally:
                release.set()
            bodies = list(reading)
        holder.join()
        texts = [fetch(f"http://127.0.0.1:{p}/metrics", token).decode() for p in ports]
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(30)
    assert len(set(bodies)) == 1
    assert len(json.loads(bodies[0])["items"]) == 3
    assert sum(metric(t, "btec_cache_misses_total", cache="units.page") for t in texts) == 1
    served = sum(
        metric(t, name, cache="units.page")
        for t in texts
        for name in ("btec_cache_coalesced_total", "btec_cache_hits_total")
    )
    assert served == 49


async def test_redis_down_means_uncached_but_correct(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    acli: Callable[..., Any],
    own_redis: EmbeddedRedis,
    tmp_path: Path,
) -> None:
    settings = make_settings(redis_url=SecretStr(own_redis.url()))
    client = await aiohttp_client(create_app(settings))
    await seed(acli, settings, tmp_path, CATALOGUE)
    assert (await client.get(PAGE)).status == 200
    await asyncio.to_thread(own_redis.stop)

    down = await client.get(PAGE)
    assert down.status == 200
    assert len((await down.json())["items"]) == 3
    change = write(tmp_path, HEADER + "K/615/1544,Programming II,3,60\n", "down.csv")
    written = await acli("units", "import", change, "--json", env=cli_env(settings))
    assert written.exit_code == 1
    report = json.loads(written.stdout)
    assert report["updated"] == 1  # the write itself committed
    assert "btecctl cache flush --tag units" in report["error"]
    titles = [u["title"] for u in (await (await client.get(PAGE)).json())["items"]]
    assert "Programming II" in titles  # read uncached from PostgreSQL
    text = await scrape(client)
    assert metric(text, "btec_cache_errors_total", cache="units.page", op="get") >= 1
    assert metric(text, "btec_cache_bypassed_total", cache="units.page") >= 2

    await asyncio.to_thread(own_redis.start)
    cache = client.app[CACHE]  # after an error it skips Redis for BACKOFF_SECONDS
    await eventually(lambda: time.monotonic() >= cache._backoff_until, timeout=10,
                     message="the cache is back from its backoff")  # fmt: skip
    before = metric(await scrape(client), "btec_cache_hits_total", cache="units.page")
    for _ in range(3):
        titles = [u["title"] for u in (await (await client.get(PAGE)).json())["items"]]
        assert "Programming II" in titles
    after = metric(await scrape(client), "btec_cache_hits_total", cache="units.page")
    assert after - before == 2  # cached again: one miss, then hits


async def test_a_hung_redis_does_not_stall_reads_or_limits(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    acli: Callable[..., Any],
    own_redis: EmbeddedRedis,
    tmp_path: Path,
) -> None:
    settings = make_settings(redis_url=SecretStr(own_redis.url()))  # limits on, fail-open
    client = await aiohttp_client(create_app(settings))
    await seed(acli, settings, tmp_path, CATALOGUE)
    pid = own_redis.server_pid()
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        answer = await client.get(PAGE)
        waited = time.monotonic() - started
    finally:
        os.kill(pid, signal.SIGCONT)
    assert answer.status == 200
    assert len((await answer.json())["items"]) == 3
    # The limiter and the cache each gave up after BTEC_CACHE_TIMEOUT; PostgreSQL answered.
    assert waited < 2 * settings.cache_timeout + 2
    text = await scrape(client)
    assert metric(text, "btec_cache_errors_total", cache="units.page") >= 1
    assert metric(text, "btec_ratelimit_decisions_total", result="fallback_allowed") >= 1


async def test_disabled_cache_reads_postgres_every_time(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    acli: Callable[..., Any],
    redis_url: str,
    tmp_path: Path,
) -> None:
    settings = make_settings(cache_enabled=False)
    client = await aiohttp_client(create_app(settings))
    await seed(acli, settings, tmp_path, CATALOGUE)
    for _ in range(3):
        assert (await client.get(PAGE)).status == 200
    text = await scrape(client)
    assert metric(text, "btec_cache_bypassed_total", cache="units.page", reason="disabled") == 3
    assert metric(text, "btec_cache_hits_total") == 0
    plain = redis.Redis.from_url(redis_url)
    assert list(plain.scan_iter(match=cache_module.VALUE_PREFIX + "*")) == []
    plain.close()
