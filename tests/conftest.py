"""Test fixtures: real PostgreSQL and Redis (external by URL, else embedded), a scratch database.

BTEC_TEST_DATABASE_URL and BTEC_TEST_REDIS_URL point the suite at running servers; without
them it starts the embedded ones under a temporary data dir, exactly as `btecctl serve` does.
Besides them: servers a test may stop (own_postgres, own_redis), S3 and SMTP on loopback, and
the app as the account flows drive it (with its worker, mailing to `inbox`). Fixtures of one
folder are in its own conftest.py; shared code that is not a fixture is in tests/support.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis
from aiohttp import web
from aiohttp.test_utils import TestClient
from pydantic import SecretStr
from typer.testing import CliRunner

from btecctl.main import app as cli_app
from server.app import create_app
from server.config.settings import Settings
from server.observability.logging import configure_logging
from server.platform.embedded import EmbeddedPostgres, EmbeddedRedis
from server.platform.pgnames import with_database
from server.schema import migrations
from server.schema.migrate_test import scratch_database
from tests.support.accounts import CHEAP
from tests.support.mail import Inbox, smtp_server
from tests.support.processes import embedded_processes

# Settings tests build from scratch: nothing from the developer's environment or .env leaks in.
for _name in [n for n in os.environ if n.startswith("BTEC_") and not n.startswith("BTEC_TEST_")]:
    del os.environ[_name]


@contextlib.contextmanager
def _server_dir(name: str) -> Iterator[Path]:
    """A data dir for a session's embedded server, outside pytest's own temp root: a second
    pytest started meanwhile chmods that root to 0700, which the embedded PostgreSQL (run as
    its own user) cannot survive."""
    path = Path(tempfile.mkdtemp(prefix=f"btec-test-{name}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A URL (database `postgres`) of the server the suite uses."""
    external = os.environ.get("BTEC_TEST_DATABASE_URL")
    if external:
        yield with_database(external, "postgres")
        return
    with _server_dir("pg") as path:
        pg = EmbeddedPostgres(path)
        pg.start()
        try:
            yield pg.url("postgres")
        finally:
            pg.stop()


def _worker_database(url: str) -> str:
    """This pytest-xdist worker's Redis database: the URL's own for the first worker, the
    ones below it for the others, since each test empties its database first."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker.removeprefix("gw") or 0)
    parts = urlsplit(url)
    number = int(parts.path.strip("/") or 0) - index
    assert number >= 0, f"{url}: too few Redis databases below it for worker {worker}"
    return urlunsplit(parts._replace(path=f"/{number}"))


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    external = os.environ.get("BTEC_TEST_REDIS_URL")
    if external:
        yield _worker_database(external)
        return
    with _server_dir("redis") as path:
        rd = EmbeddedRedis(path)
        rd.start()
        try:
            yield rd.url()
        finally:
            rd.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A Redis of this test's own, which it may stop and start (outages)."""
    server = EmbeddedRedis(tmp_path / "r")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL of this test's own, which it may stop."""
    pg = EmbeddedPostgres(tmp_path / "own")
    pg.start()
    try:
        yield pg
    finally:
        pg.stop()


@pytest.fixture(scope="session")
def s3_url() -> Iterator[str]:
    """moto_server on loopback, for the S3 storage backend (tests/support/s3.py)."""
    from tests.support.s3 import moto_server

    with moto_server() as url:
        yield url


@pytest.fixture(scope="session")
def database_url(pg_server_url: str) -> Iterator[str]:
    """The session's database, migrated by the same function as `btecctl db migrate`."""
    with scratch_database(pg_server_url, prefix="btec_test") as url:
        migrations.migrate(_settings(url, "redis://unused"))
        yield url


def _settings(db_url: str, cache_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "env": "test",
        "database_url": SecretStr(db_url),
        "redis_url": SecretStr(cache_url),
        "health_cache_seconds": 0.0,
        "drain_seconds": 0.0,
        "db_pool_min_size": 1,
        "db_pool_max_size": 5,
        "mail_catcher_port": 0,
        "worker_drain_seconds": 1.0,
        "worker_heartbeat_seconds": 3.0,
        # Rate-limit decisions and cache reads wait this long for Redis before the policy's
        # fallback applies: the suite runs on every core at once, where a round trip can take
        # longer than the 0.25 s default. Tests of the fallback itself stop Redis outright.
        "cache_timeout": 1.0,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(scope="session", autouse=True)
def _logging() -> None:
    configure_logging("INFO", "json")


@pytest.fixture
def make_settings(database_url: str, redis_url: str, tmp_path: Path) -> Callable[..., Settings]:
    """Settings for the suite's servers; keyword arguments override fields. Redis starts
    empty for each test (queues, caches)."""
    flush = redis.Redis.from_url(redis_url)
    flush.flushdb()
    flush.close()

    def make(**overrides: Any) -> Settings:
        overrides.setdefault("data_dir", tmp_path / "var")
        return _settings(database_url, redis_url, **overrides)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture(autouse=True)
def _clean_tables(request: pytest.FixtureRequest) -> None:
    """Each test that uses the database starts from empty tables."""
    if "database_url" not in request.fixturenames:
        return
    url = request.getfixturevalue("database_url")
    with psycopg.connect(url, autocommit=True) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename NOT LIKE '%yoyo%'"
            )
        ]
        if tables:
            conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE")


ClientFactory = Callable[..., Any]


@pytest.fixture
async def client(
    aiohttp_client: Callable[..., Any], settings: Settings
) -> TestClient[web.Request, web.Application]:
    """The app as `btecctl serve` runs it: with a job worker in the process."""
    return await aiohttp_client(create_app(settings, worker=True))


@pytest.fixture
def cli() -> Callable[..., Any]:
    """Run btecctl in-process; returns typer's Result (exit_code, stdout, stderr)."""
    runner = CliRunner()

    def invoke(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> Any:
        return runner.invoke(cli_app, list(args), env=env, input=input, catch_exceptions=False)

    return invoke


@pytest.fixture
def acli(cli: Callable[..., Any]) -> Callable[..., Any]:
    """btecctl from async tests: run in a thread so the test's own server keeps answering."""

    async def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
        return await asyncio.to_thread(cli, *args, env=env)

    return invoke


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """Everything logged during the test, as the JSON lines the server writes."""
    buf = io.StringIO()
    configure_logging("DEBUG", "json", stream=buf)
    try:
        yield buf
    finally:
        configure_logging("INFO", "json")


@pytest.fixture
async def inbox() -> AsyncIterator[Inbox]:
    """aiosmtpd on loopback, in the test's event loop: what the app mails arrives here."""
    async with smtp_server() as box:
        yield box


@pytest.fixture
def mail_settings(make_settings: Callable[..., Settings], inbox: Inbox) -> Settings:
    """Cheap password hashing, and mail to `inbox`."""
    return make_settings(**CHEAP, smtp_url=SecretStr(inbox.url))


@pytest.fixture
async def mail_http(
    aiohttp_client: Callable[..., Any], mail_settings: Settings
) -> TestClient[web.Request, web.Application]:
    """The app with its worker, mailing to `inbox`: the account flows that send links."""
    return await aiohttp_client(create_app(mail_settings, worker=True))


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """A data dir for a `btecctl serve` of the test's own (tests/support/processes.py)."""
    path = tmp_path / "var"
    yield path
    # Never leave servers behind, even when a test fails half-way.
    for proc in embedded_processes(path):
        proc.kill()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests marked `slow` first: pytest-xdist hands tests out in this order, and a long
    test that starts last keeps one process busy after the others have finished."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
