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
