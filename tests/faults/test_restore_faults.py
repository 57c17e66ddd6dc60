"""`btecctl db restore` and `db backup` killed or stopped midway: pg_restore and pg_dump never
outlive btecctl, a restore's new database is either dropped (SIGTERM: exit 1 and a message) or
listed as a leftover and dropped by `db prune` (SIGKILL), a backup leaves at most a partial
directory that `db prune` removes, and the configured database is untouched throughout.

Only btecctl's own process is signalled, as a service manager or an operator's `kill` would:
its children must follow by themselves.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest

from server.platform.pgnames import with_database
from server.schema.migrate_test import scratch_database
from tests.support.backups import ok, seeded, wait_for_copy
from tests.support.shared import exclusive
from tests.support.wait import eventually_sync


@pytest.fixture(autouse=True)
def _one_at_a_time(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """`db prune` drops every leftover restore database of the server, and these tests make
    and prune leftovers on the one the suite uses: one runs at a time, in whichever process."""
    with exclusive(tmp_path_factory, "restore_faults"):
        yield


TOOLS = ("pg_restore", "pg_dump")
RUN = secrets.token_hex(3)  # the databases of this run: never another run's
KILL, TERM, BUSY = (f"btec_fault_{what}_{RUN}" for what in ("kill", "term", "busy"))


@pytest.fixture
def source(pg_server_url: str) -> Iterator[str]:
    """A migrated database big enough that a restore is still copying when it is signalled."""
    with scratch_database(pg_server_url, prefix="btec_fault") as url:
        seeded(url, 300_000)
        yield url


@pytest.fixture
def env(source: str, tmp_path: Path) -> dict[str, str]:
    return {"BTEC_DATABASE_URL": source, "BTEC_BACKUP_DIR": str(tmp_path / "backups"),
            "BTEC_DATA_DIR": str(tmp_path / "var"), "BTEC_ENV_FILE": ""}  # fmt: skip


def _strays(tmp_path: Path) -> list[psutil.Process]:
    """pg_dump or pg_restore processes working on this test's backups."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline", "status"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if proc.info["name"] in TOOLS and str(tmp_path) in cmd:
            found.append(proc)
    return found


def _no_strays(tmp_path: Path) -> None:
    eventually_sync(lambda: _strays(tmp_path), lambda left: left == [], timeout=15,
                    message="no pg_dump or pg_restore outlives btecctl")  # fmt: skip


def _databases(url: str, like: str) -> list[str]:
    with psycopg.connect(with_database(url, "postgres")) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (like,))
        return sorted(r[0] for r in rows)


def _start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "btecctl", "db", *args, "--json"], env={**os.environ, **env},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _backup(cli: Callable[..., Any], env: dict[str, str]) -> str:
    return str(ok(cli, "db", "backup", env=env)["name"])


def _audit_rows(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM audit_log").fetchone()
        return int(row[0]) if row else -1


def _restoring(
    cli: Callable[..., Any], env: dict[str, str], source: str, into: str
) -> tuple[str, int, subprocess.Popen[str]]:
    """A fresh backup of `source`, its audit rows, and its restore into `into`, copying rows."""
    name = _backup(cli, env)
    before = _audit_rows(source)
    proc = _start(env, "restore", name, "--into", into, "--yes")
    wait_for_copy(source, database=into)
    return name, before, proc


def test_sigkill_mid_restore_leaves_no_process_and_a_listed_database_prune_drops(
    cli: Callable[..., Any], env: dict[str, str], source: str, tmp_path: Path
) -> None:
    name, before, proc = _restoring(cli, env, source, KILL)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    _no_strays(tmp_path)
    assert _databases(source, KILL) == [KILL]  # half restored

    listed = eventually_sync(lambda: ok(cli, "db", "backups", env=env),
                             lambda doc: doc["leftover_databases"], timeout=15,
                             message="the backend of the killed pg_restore ends")  # fmt: skip
    assert [d["database"] for d in listed["leftover_databases"]] == [KILL]
    assert "restore in progress" in listed["leftover_databases"][0]["mark"]
    assert name in listed["leftover_databases"][0]["mark"]
    dry = ok(cli, "db", "prune", "--dry-run", env=env)
    assert dry["databases_dropped"] == [KILL]
    assert _databases(source, KILL) == [KILL]
    assert ok(cli, "db", "prune", env=env)["databases_dropped"] == [KILL]
    assert _databases(source, KILL) == []
    assert ok(cli, "db", "backups", env=env)["leftover_databases"] == []
    assert _audit_rows(source) == before


def test_sigterm_mid_restore_exits_1_saying_so_and_drops_its_database(
    cli: Callable[..., Any], env: dict[str, str], source: str, tmp_path: Path
) -> None:
    _, before, proc = _restoring(cli, env, source, TERM)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1, stdout + stderr
    error = json.loads(stdout.strip().splitlines()[-1])["error"]
    assert "stopped by SIGTERM before the restore finished" in error
    assert f"database {TERM} was dropped" in error
    assert "Traceback" not in stderr
    _no_strays(tmp_path)
    assert _databases(source, TERM) == []
    assert ok(cli, "db", "backups", env=env)["leftover_databases"] == []
    assert _audit_rows(source) == before


def test_a_restore_in_progress_is_not_a_leftover(
    cli: Callable[..., Any], env: dict[str, str], source: str, tmp_path: Path
) -> None:
    """`db prune` while another btecctl restores leaves that restore alone."""
    _, _, proc = _restoring(cli, env, source, BUSY)
    try:
        assert ok(cli, "db", "prune", env=env)["databases_dropped"] == []
    finally:
        stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stdout + stderr
    assert _databases(source, BUSY) == [BUSY]
    assert ok(cli, "db", "backups", env=env)["leftover_databases"] == []  # finished: not one


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_backup_stopped_midway_leaves_no_process_and_only_a_partial_dir(
    cli: Callable[..., Any], env: dict[str, str], source: str, tmp_path: Path,
    sig: signal.Signals,
) -> None:  # fmt: skip
    proc = _start(env, "backup")
    wait_for_copy(source)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    _no_strays(tmp_path)
    listing = ok(cli, "db", "backups", env=env)
    assert listing["backups"] == []
    if sig == signal.SIGTERM:
        assert proc.returncode == 1, stdout + stderr
        assert "stopped by SIGTERM" in json.loads(stdout.strip().splitlines()[-1])["error"]
        assert listing["incomplete"] == []  # removed on the way out
    else:
        assert len(listing["incomplete"]) == 1
        assert len(ok(cli, "db", "prune", env=env)["incomplete_removed"]) == 1
    assert ok(cli, "db", "backups", env=env)["incomplete"] == []
