"""`btecctl health` against a served app: exit codes 0 pass, 0 warn (2 with --strict), 1 fail,
3 unreachable; `--watch` repeats until interrupted, redrawing one table on a terminal."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import signal
import sys
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import SecretStr

from server.app import create_app
from server.config.settings import Settings
from server.platform.embedded import EmbeddedPostgres, EmbeddedRedis
from tests.support.env import cli_env, closed_port
from tests.support.wait import eventually


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """Everything up, and no virus scanner on purpose: otherwise the scanner check warns that
    uploads go unscanned (as tests/http/test_health.py's settings)."""
    return make_settings(scan_disabled=True)


async def _served(aiohttp_server: Callable[..., Any], settings: Settings) -> str:
    server = await aiohttp_server(create_app(settings, worker=True))
    return f"http://127.0.0.1:{server.port}"


async def test_cli_health_pass(
    aiohttp_server: Callable[..., Any], make_settings: Callable[..., Settings],
    acli: Callable[..., Any], own_redis: EmbeddedRedis,
) -> None:  # fmt: skip
    """A Redis that keeps its data (the embedded one): a machine's may not, and the health
    then warns, rightly (tests/http/test_health.py). The in-process worker's heartbeat may
    come a moment after the app answers on a busy machine: the check is read until then."""
    settings = make_settings(scan_disabled=True, redis_url=SecretStr(own_redis.url()),
                             health_cache_seconds=0)  # fmt: skip

    async def health() -> Any:
        return await acli("health", "--url", url, "--json", env=cli_env(settings))

    url = await _served(aiohttp_server, settings)
    result = await eventually(health, lambda r: r.exit_code == 0 and
                              json.loads(r.stdout)["status"] == "pass", timeout=30,
                              interval=0.5, message="health passes")  # fmt: skip
    assert json.loads(result.stdout)["status"] == "pass"
    table = await acli("health", "--url", url, env=cli_env(settings))
    assert table.exit_code == 0
    assert "postgres:responseTime" in table.stdout


async def test_cli_health_warn_and_strict(
    aiohttp_server: Callable[..., Any],
    make_settings: Callable[..., Settings],
    acli: Callable[..., Any],
) -> None:
    settings = make_settings(smtp_url=f"smtp://127.0.0.1:{closed_port()}")
    url = await _served(aiohttp_server, settings)
    plain = await acli("health", "--url", url, "--json", env=cli_env(settings))
    assert plain.exit_code == 0
    strict = await acli("health", "--url", url, "--strict", "--json", env=cli_env(settings))
    assert strict.exit_code == 2


async def test_cli_health_fail(
    aiohttp_server: Callable[..., Any],
    make_settings: Callable[..., Settings],
    acli: Callable[..., Any],
    own_postgres: EmbeddedPostgres,
) -> None:
    settings = make_settings(database_url=SecretStr(own_postgres.url()))
    url = await _served(aiohttp_server, settings)  # never migrated: readiness fails
    result = await acli("health", "--url", url, "--json", env=cli_env(settings))
    assert result.exit_code == 1
    await asyncio.to_thread(own_postgres.stop)
    result = await acli("health", "--url", url, "--fresh", env=cli_env(settings))
    assert result.exit_code == 1
    assert "fail" in result.stdout


def test_cli_health_unreachable(cli: Callable[..., Any], settings: Settings) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    result = cli("health", "--url", url, "--json", env=cli_env(settings))
    assert result.exit_code == 3
    assert json.loads(result.stdout)["status"] == "unreachable"
    for bad in ("ftp://x", "not-a-url", "http://127.0.0.1:99999"):
        assert cli("health", "--url", bad, env=cli_env(settings)).exit_code == 2, bad


async def test_cli_health_watch_repeats_until_interrupted(
    aiohttp_server: Callable[..., Any], settings: Settings
) -> None:
    url = await _served(aiohttp_server, settings)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "btecctl",
        "health",
        "--url",
        url,
        "--watch",
        "0.5",
        "--json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, **cli_env(settings)},
    )
    assert proc.stdout is not None
    seen = b""
    async with asyncio.timeout(30):  # until three readings are out
        while seen.count(b'"releaseId"') < 3:
            chunk = await proc.stdout.read(65536)
            assert chunk, "the watch stopped by itself"
            seen += chunk
    proc.send_signal(signal.SIGINT)
    rest, _ = await asyncio.wait_for(proc.communicate(), timeout=10)
    out = seen + rest
    assert proc.returncode == 0
    readings = out.decode().count('"releaseId"')
    assert readings >= 3, out.decode()


async def test_cli_health_watch_redraws_one_table_on_a_terminal(
    aiohttp_server: Callable[..., Any], settings: Settings
) -> None:
    url = await _served(aiohttp_server, settings)
    leader, follower = pty.openpty()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "btecctl", "health", "--url", url, "--watch", "0.5",
        stdin=follower, stdout=follower, stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, **cli_env(settings), "TERM": "xterm", "COLUMNS": "120"},
    )  # fmt: skip
    os.close(follower)
    seen = b""
    try:
        async with asyncio.timeout(30):
            while seen.count(b"btec health at") < 3:
                seen += await asyncio.to_thread(os.read, leader, 65536)
    finally:
        proc.send_signal(signal.SIGINT)
        await proc.wait()
        os.close(leader)
    assert proc.returncode == 0
    # Each new reading moves the cursor back up over the table and draws it again there.
    assert b"\x1b[1A\x1b[2K" in seen
