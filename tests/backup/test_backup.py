"""Backups through the real CLI: atomic dumps with manifests, verified restores, drills, pruning."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from server.platform import dbstats
from server.platform.embedded import EmbeddedPostgres
from server.platform.pgnames import database_name, with_database
from tests.support.backups import AUDIT_ROWS, ok, seeded, wait_for_copy
from tests.support.env import MIGRATION_IDS, closed_port
from tests.support.wait import eventually_sync


def fingerprint(url: str) -> dict[str, tuple[int, str]]:
    with psycopg.connect(url) as conn:
        return dbstats.checksums(conn)


def databases(url: str, like: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (like,))
        return sorted(r[0] for r in rows)


@pytest.fixture
def env(source: str, tmp_path: Path) -> dict[str, str]:
    return {
        "BTEC_DATABASE_URL": source,
        "BTEC_BACKUP_DIR": str(tmp_path / "backups"),
        "BTEC_DATA_DIR": str(tmp_path / "var"),
        "BTEC_ENV_FILE": "",
    }


def drop(url: str, name: str) -> None:
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_backup_writes_a_complete_manifest(cli: Callable[..., Any], env: dict[str, str]) -> None:
    made = ok(cli, "db", "backup", env=env)
    path = Path(made["path"])
    manifest = json.loads((path / "manifest.json").read_text())
    tables = manifest["tables"]
    assert tables.pop("audit_log") == 2000
    assert {"units", "users"} <= set(tables)
    assert set(tables.values()) == {0}  # the other app tables, empty here
    assert manifest["migration_head"] == MIGRATION_IDS[-1]
    assert manifest["app_release"]
    assert manifest["server_version"].startswith("PostgreSQL ")
    assert manifest["tool"]["pg_dump"]
    assert manifest["started_at"] <= manifest["finished_at"]
    assert manifest["size_bytes"] == sum(f["size"] for f in manifest["files"].values()) > 0
    assert all(len(f["sha256"]) == 64 for f in manifest["files"].values())
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".partial")]
    listing = ok(cli, "db", "backups", env=env)
    assert [b["name"] for b in listing["backups"]] == [made["name"]]


def test_backup_then_restore_into_a_new_database_is_identical(
    cli: Callable[..., Any], env: dict[str, str], source: str
) -> None:
    before = fingerprint(source)
    made = ok(cli, "db", "backup", env=env)
    restored = ok(cli, "db", "restore", made["name"], "--yes", env=env)
    into = restored["restored_into"]
    try:
        assert into.startswith(database_name(source) + "_restore_")
        assert fingerprint(with_database(source, into)) == before
        assert fingerprint(source) == before  # the source was not touched
    finally:
        drop(source, into)


def test_restore_into_a_name_with_quotes_makes_exactly_that_database(
    cli: Callable[..., Any], env: dict[str, str], source: str
) -> None:
    """The name is an identifier, quoted by psycopg, never SQL pasted into a statement."""
    odd = 'restored "copy"; DROP DATABASE postgres; --'
    made = ok(cli, "db", "backup", env=env)
    try:
        restored = ok(cli, "db", "restore", made["name"], "--into", odd, "--yes", env=env)
        assert restored["restored_into"] == odd
        with psycopg.connect(with_database(source, "postgres")) as conn:
            names = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
        assert {odd, "postgres"} <= names
    finally:
        with psycopg.connect(with_database(source, "postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(odd)))  # fmt: skip


def test_restore_with_swap_keeps_the_previous_database(
    cli: Callable[..., Any], env: dict[str, str], source: str
) -> None:
    made = ok(cli, "db", "backup", env=env)
    before = fingerprint(source)
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("DELETE FROM audit_log WHERE id > 100")  # the incident
    result = ok(cli, "db", "restore", made["name"], "--swap", "--yes", env=env)
    try:
        assert fingerprint(source) == before
        previous = result["previous"]
        assert fingerprint(with_database(source, previous))["audit_log"][0] == 100
    finally:
        drop(source, result["previous"])


def test_restore_clean_in_place(cli: Callable[..., Any], env: dict[str, str], source: str) -> None:
    made = ok(cli, "db", "backup", env=env)
    before = fingerprint(source)
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("UPDATE audit_log SET actor = 'mallory'")
    ok(cli, "db", "restore", made["name"], "--clean", "--yes", env=env)
    assert fingerprint(source) == before


def test_restore_asks_first_and_shows_the_target_masked(
    cli: Callable[..., Any], env: dict[str, str], source: str
) -> None:
    made = ok(cli, "db", "backup", env=env)
    scheme, rest = source.split("://", 1)
    secret_env = {
        **env,
        "BTEC_DATABASE_URL": f"{scheme}://postgres:pw-s3cret@{rest.split('@')[-1]}",
    }
    declined = cli("db", "restore", made["name"], "--clean", env=secret_env, input="n\n")
    assert declined.exit_code == 2
    assert "pw-s3cret" not in declined.output
    assert "***" in declined.output
    assert "audit_log: 2000 rows" in declined.output
    refused = cli("db", "restore", made["name"], "--json", env=env)
    assert refused.exit_code == 2
    assert databases(source, database_name(source) + "_restore_%") == []


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete", "extra"])
def test_damaged_backup_is_refused_before_anything_is_touched(
    cli: Callable[..., Any], env: dict[str, str], source: str, damage: str
) -> None:
    made = ok(cli, "db", "backup", env=env)
    path = Path(made["path"])
    victim = max((p for p in (path / "dump").iterdir()), key=lambda p: p.stat().st_size)
    if damage == "flip":
        data = bytearray(victim.read_bytes())
        data[len(data) // 2] ^= 0x01
        victim.write_bytes(bytes(data))
    elif damage == "truncate":
        victim.write_bytes(victim.read_bytes()[:-10])
    elif damage == "delete":
        victim.unlink()
    else:
        (path / "dump" / "9999.dat.gz").write_bytes(b"junk")
    before = fingerprint(source)
    for args in (("restore", made["name"], "--yes"), ("restore", made["name"], "--clean", "--yes"),
                 ("verify", made["name"])):  # fmt: skip
        result = cli("db", *args, "--json", env=env)
        assert result.exit_code == 1, args
        assert "damaged" in json.loads(result.stdout)["error"]
    assert fingerprint(source) == before
    assert databases(source, database_name(source) + "_restore_%") == []
    assert databases(source, "btec_verify_%") == []


def test_interrupted_clean_restore_leaves_the_database_intact(
    env: dict[str, str], source: str, tmp_path: Path
) -> None:
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(AUDIT_ROWS, (300_000,))
    full = {**os.environ, **env}
    made = subprocess.run(
        [sys.executable, "-m", "btecctl", "db", "backup", "--json"],
        env=full, capture_output=True, text=True, check=True,
    )  # fmt: skip
    name = json.loads(made.stdout)["name"]
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("DELETE FROM audit_log WHERE id % 3 = 0")
    before = fingerprint(source)
    proc = subprocess.Popen(
        [sys.executable, "-m", "btecctl", "db", "restore", name, "--clean", "--yes", "--json"],
        env=full, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    assert wait_for_copy(source), "the restore never started loading rows"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    _wait_for_no_restore(source)
    assert fingerprint(source) == before


def _wait_for_no_restore(url: str, timeout: float = 30) -> None:
    """Until btecctl's connections are gone (the killed restore's backend has ended)."""
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        eventually_sync(
            lambda: conn.execute(
                "SELECT 1 FROM pg_stat_activity WHERE application_name = 'btecctl'"
            ).fetchone(),
            lambda row: row is None, timeout=timeout, message="no btecctl connection left",
        )  # fmt: skip


def test_verify_is_a_recorded_drill(
    cli: Callable[..., Any], env: dict[str, str], source: str
) -> None:
    made = ok(cli, "db", "backup", env=env)
    drill = ok(cli, "db", "verify", made["name"], env=env)
    assert drill["ok"] is True
    assert drill["rows"] == 2000
    assert drill["seconds"] > 0
    assert databases(source, "btec_verify_%") == []
    listing = ok(cli, "db", "backups", env=env)
    assert listing["backups"][0]["last_drill"]["ok"] is True


def test_unknown_backup_and_bad_arguments(cli: Callable[..., Any], env: dict[str, str]) -> None:
    missing = cli("db", "restore", "btec-nope", "--yes", "--json", env=env)
    assert missing.exit_code == 1
    assert "no backup named" in json.loads(missing.stdout)["error"]
    both = cli("db", "restore", "x", "--clean", "--swap", "--yes", env=env)
    assert both.exit_code == 2
    bad_label = cli("db", "backup", "--label", "../../etc", env=env)
    assert bad_label.exit_code == 2


def test_backup_of_an_unreachable_database(cli: Callable[..., Any], tmp_path: Path) -> None:
    env = {"BTEC_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{closed_port()}/btec",
           "BTEC_BACKUP_DIR": str(tmp_path), "BTEC_ENV_FILE": ""}  # fmt: skip
    result = cli("db", "backup", "--json", env=env)
    assert result.exit_code == 3
    assert list(tmp_path.iterdir()) == []


def test_interrupted_backup_leaves_only_an_incomplete_marker(
    env: dict[str, str], source: str, cli: Callable[..., Any]
) -> None:
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(AUDIT_ROWS, (300_000,))
    proc = subprocess.Popen(
        [sys.executable, "-m", "btecctl", "db", "backup", "--json"],
        env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    assert wait_for_copy(source), "the backup never started dumping rows"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    listing = ok(cli, "db", "backups", env=env)
    assert listing["backups"] == []
    assert len(listing["incomplete"]) == 1
    pruned = ok(cli, "db", "prune", env=env)
    assert len(pruned["incomplete_removed"]) == 1
    assert ok(cli, "db", "backups", env=env)["incomplete"] == []


def test_prune_keeps_daily_weekly_monthly(cli: Callable[..., Any], env: dict[str, str]) -> None:
    made = ok(cli, "db", "backup", env=env)
    original = Path(made["path"])
    stamps = ["2026-11-27T03:00:00Z", "2026-11-26T03:00:00Z", "2026-11-25T03:00:00Z",
              "2026-11-24T03:00:00Z", "2026-11-16T03:00:00Z", "2026-11-09T03:00:00Z",
              "2026-10-15T03:00:00Z", "2026-09-15T03:00:00Z", "2026-08-15T03:00:00Z"]  # fmt: skip
    for i, stamp in enumerate(stamps):
        copy = original.with_name(f"btec-test-{i}")
        subprocess.run(["cp", "-a", str(original), str(copy)], check=True)
        manifest = json.loads((copy / "manifest.json").read_text())
        manifest["finished_at"] = stamp
        (copy / "manifest.json").write_text(json.dumps(manifest))
    subprocess.run(["rm", "-r", str(original)], check=True)
    plan = ok(cli, "db", "prune", "--daily", "2", "--weekly", "2", "--monthly", "3",
              "--dry-run", env=env)  # fmt: skip
    # days: the 27th (0) and 26th (1); ISO weeks: 48 (0) and 47 (4);
    # months: November (0), October (6) and September (7). August (8) and the rest go.
    assert plan["dry_run"] is True
    kept = set(plan["kept"])
    assert kept == {"btec-test-0", "btec-test-1", "btec-test-4", "btec-test-6", "btec-test-7"}
    assert set(plan["pruned"]) == {"btec-test-2", "btec-test-3", "btec-test-5", "btec-test-8"}
    assert len(list(Path(env["BTEC_BACKUP_DIR"]).iterdir())) == len(stamps)
    done = ok(cli, "db", "prune", "--daily", "2", "--weekly", "2", "--monthly", "3", env=env)
    assert set(done["kept"]) == kept
    left = {b["name"] for b in ok(cli, "db", "backups", env=env)["backups"]}
    assert left == kept


def test_backup_and_verify_on_embedded_postgres_16(
    cli: Callable[..., Any], own_postgres: EmbeddedPostgres, tmp_path: Path
) -> None:
    url = own_postgres.url()
    seeded(url, 500)
    env = {"BTEC_DATABASE_URL": url, "BTEC_BACKUP_DIR": str(tmp_path / "b"), "BTEC_ENV_FILE": ""}
    made = ok(cli, "db", "backup", env=env)
    manifest = json.loads((Path(made["path"]) / "manifest.json").read_text())
    assert manifest["server_version"].startswith("PostgreSQL 16")
    assert ok(cli, "db", "verify", made["name"], env=env)["rows"] == 500


def test_backup_and_verify_on_the_suite_server(
    cli: Callable[..., Any], env: dict[str, str], pg_server_url: str
) -> None:
    """The suite's own server: the machine's PostgreSQL 15 when BTEC_TEST_DATABASE_URL is set."""
    made = ok(cli, "db", "backup", env=env)
    manifest = json.loads((Path(made["path"]) / "manifest.json").read_text())
    with psycopg.connect(pg_server_url) as conn:
        major = conn.execute("SHOW server_version_num").fetchone()
    assert major is not None
    assert manifest["server_version"].startswith(f"PostgreSQL {int(major[0]) // 10000}")
    assert ok(cli, "db", "verify", made["name"], env=env)["rows"] == 2000
