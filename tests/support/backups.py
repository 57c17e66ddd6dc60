"""A database worth backing up (migrated by btecctl, its audit log filled), and running the
backup commands for their JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import psycopg

from server.platform.pgnames import database_name, with_database
from tests.support.wait import eventually_sync

AUDIT_ROWS = """
INSERT INTO audit_log (actor, action, target, details)
SELECT 'user-' || i, 'grade.update', 'submission/' || i,
       jsonb_build_object('i', i, 'note', 'Zoë ✓ 学生')
FROM generate_series(1, %s) AS i
"""


def seeded(url: str, rows: int) -> None:
    """Migrate `url` with btecctl's own code and fill the audit log."""
    env = {"BTEC_DATABASE_URL": url, "BTEC_ENV_FILE": ""}
    done = subprocess.run(
        [sys.executable, "-m", "btecctl", "db", "migrate", "--json"],
        env={**os.environ, **env}, capture_output=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(AUDIT_ROWS, (rows,))


def ok(cli: Callable[..., Any], *args: str, env: dict[str, str]) -> dict[str, Any]:
    """A btecctl command's JSON, checked to have succeeded."""
    result = cli(*args, "--json", env=env)
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def wait_for_copy(url: str, timeout: float = 30, database: str | None = None) -> bool:
    """Until btecctl's connection to `database` (default: `url`'s) is copying rows (a dump or
    a restore under way); another test's btecctl on the same server does not count."""
    name = database or database_name(url)
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        eventually_sync(
            lambda: conn.execute(
                "SELECT 1 FROM pg_stat_activity WHERE application_name = 'btecctl' "
                "AND datname = %s AND query ILIKE 'COPY%%'", (name,)
            ).fetchone(),
            timeout=timeout, interval=0.01, message="btecctl is copying rows",
        )  # fmt: skip
    return True
