"""Migrations through the real CLI: apply, roll back (with confirmation), re-apply, status."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from pydantic import SecretStr

from server.config.settings import Settings
from server.schema import migrations
from server.schema.migrate_test import scratch_database
from tests.support.env import MIGRATION_IDS, closed_port

FIRST, LAST = MIGRATION_IDS[0], MIGRATION_IDS[-1]


# Also run against the embedded servers in CI's second pass (pyproject.toml's markers).
pytestmark = pytest.mark.embedded


@pytest.fixture
def scratch_url(pg_server_url: str) -> Iterator[str]:
    """A database of this test's own, with nothing applied."""
    with scratch_database(pg_server_url, prefix="btec_mig") as url:
        yield url


def with_password(url: str, password: str) -> str:
    """The same URL with credentials; the servers here trust local callers, so it still works."""
    scheme, _, rest = url.partition("://")
    user_host = rest.split("@", 1)
    if len(user_host) == 2:
        return f"{scheme}://{user_host[0]}:{password}@{user_host[1]}"
    return f"{scheme}://postgres:{password}@{rest}"


def env_for(url: str, tmp_path: Any) -> dict[str, str]:
    return {"BTEC_DATABASE_URL": url, "BTEC_DATA_DIR": str(tmp_path), "BTEC_ENV_FILE": ""}


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {r[0] for r in rows}


def columns(url: str) -> set[str]:
    """Every `table.column` of the schema: what a migration adds or its rollback removes."""
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT table_name || '.' || column_name FROM "
                            "information_schema.columns WHERE table_schema = 'public'")  # fmt: skip
        return {r[0] for r in rows}


def run_json(cli: Callable[..., Any], *args: str, env: dict[str, str]) -> Any:
    result = cli(*args, "--json", env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_apply_roll_back_and_reapply(
    cli: Callable[..., Any], scratch_url: str, tmp_path: Any
) -> None:
    env = env_for(scratch_url, tmp_path)
    status = run_json(cli, "db", "status", env=env)
    assert status["pending"] == MIGRATION_IDS

    applied = run_json(cli, "db", "migrate", env=env)
    assert applied["applied"] == MIGRATION_IDS
    everything_applied = columns(scratch_url)
    assert "audit_log" in tables(scratch_url)
    assert run_json(cli, "db", "status", env=env)["pending"] == []
    assert run_json(cli, "db", "migrate", env=env)["applied"] == []  # idempotent

    rolled = run_json(cli, "db", "rollback", "--yes", env=env)
    assert rolled["rolled_back"] == [LAST]
    assert columns(scratch_url) < everything_applied  # the newest migration's work is undone
    assert run_json(cli, "db", "status", env=env)["pending"] == [LAST]

    steps = str(len(MIGRATION_IDS) - 1)
    everything = run_json(cli, "db", "rollback", "--steps", steps, "--yes", env=env)
    assert everything["rolled_back"] == MIGRATION_IDS[-2::-1]
    assert "audit_log" not in tables(scratch_url)

    assert run_json(cli, "db", "migrate", env=env)["applied"] == MIGRATION_IDS
    assert columns(scratch_url) == everything_applied


def test_rollback_needs_confirmation(
    cli: Callable[..., Any], scratch_url: str, tmp_path: Any
) -> None:
    env = env_for(scratch_url, tmp_path)
    run_json(cli, "db", "migrate", env=env)
    everything_applied = columns(scratch_url)

    refused = cli("db", "rollback", "--json", env=env)
    assert refused.exit_code == 2
    assert json.loads(refused.stdout)["ok"] is False

    declined = cli("db", "rollback", env=env, input="n\n")
    assert declined.exit_code == 2  # a "no" is a confirmation not given, as documented
    assert "not confirmed" in declined.output
    assert columns(scratch_url) == everything_applied

    dry = run_json(cli, "db", "rollback", "--dry-run", env=env)
    assert dry == {"ok": True, "database": dry["database"], "dry_run": True, "rolled_back": [LAST]}
    assert columns(scratch_url) == everything_applied

    accepted = cli("db", "rollback", env=env, input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert columns(scratch_url) < everything_applied


def test_rollback_argument_errors(cli: Callable[..., Any], scratch_url: str, tmp_path: Any) -> None:
    env = env_for(scratch_url, tmp_path)
    run_json(cli, "db", "migrate", env=env)
    both = cli("db", "rollback", "--steps", "1", "--to", FIRST, "--yes", env=env)
    assert both.exit_code == 2
    unknown = cli("db", "rollback", "--to", "9999.nope", "--yes", "--json", env=env)
    assert unknown.exit_code == 2
    assert "not applied" in json.loads(unknown.stdout)["error"]
    zero = cli("db", "rollback", "--steps", "0", "--yes", env=env)
    assert zero.exit_code == 2
    word = cli("db", "rollback", "--steps", "many", "--yes", env=env)
    assert word.exit_code == 2
    assert "audit_log" in tables(scratch_url)


def test_rollback_to_keeps_the_named_migration(
    cli: Callable[..., Any], scratch_url: str, tmp_path: Any
) -> None:
    env = env_for(scratch_url, tmp_path)
    run_json(cli, "db", "migrate", env=env)
    kept = run_json(cli, "db", "rollback", "--to", FIRST, "--yes", env=env)
    assert kept["rolled_back"] == MIGRATION_IDS[:0:-1]  # everything after FIRST, newest first
    assert {t for t in tables(scratch_url) if "yoyo" not in t} == {"audit_log"}


def test_passwords_are_masked(cli: Callable[..., Any], scratch_url: str, tmp_path: Any) -> None:
    env = env_for(with_password(scratch_url, "s3cr3t-pw"), tmp_path)
    for args in (("db", "status"), ("db", "status", "--json"), ("db", "rollback", "--dry-run")):
        result = cli(*args, env=env)
        assert result.exit_code == 0, result.output
        assert "s3cr3t-pw" not in result.output
    assert "***" in cli("db", "status", "--json", env=env).stdout


def test_concurrent_migrations_apply_once(scratch_url: str, tmp_path: Any) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, database_url=SecretStr(scratch_url), data_dir=tmp_path
    )
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: migrations.migrate(settings), range(4)))
    assert sorted(len(r) for r in results) == [0, 0, 0, len(MIGRATION_IDS)]
    assert [s.applied for s in migrations.status(settings)] == [True] * len(MIGRATION_IDS)


def test_unreachable_database_is_a_clean_error(cli: Callable[..., Any], tmp_path: Any) -> None:
    env = env_for(f"postgresql://postgres@127.0.0.1:{closed_port()}/btec", tmp_path)
    result = cli("db", "status", "--json", env=env)
    assert result.exit_code == 3
    assert json.loads(result.stdout)["ok"] is False
    assert "Traceback" not in result.output


def test_bad_database_url_names_the_variable(cli: Callable[..., Any], tmp_path: Any) -> None:
    result = cli("db", "status", env=env_for("mysql://x@y/z", tmp_path))
    assert result.exit_code != 0
    assert "BTEC_DATABASE_URL" in result.output
