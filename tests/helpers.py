"""Helpers shared by tests."""

from __future__ import annotations

import socket

from server.infra.migrations import MIGRATIONS_DIR
from server.settings import Settings

# Every migration's id, in order; tests read them here so a new migration needs no edits.
MIGRATION_IDS = sorted(
    p.name.removesuffix(".sql")
    for p in MIGRATIONS_DIR.glob("*.sql")
    if not p.name.endswith(".rollback.sql")
)


def closed_port() -> int:
    """A loopback port with nothing listening on it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    """BTEC_* variables equivalent to `settings` for a btecctl run."""
    env = {
        "BTEC_ENV": settings.env,
        "BTEC_DATA_DIR": str(settings.data_dir),
    }
    if settings.database_url is not None:
        env["BTEC_DATABASE_URL"] = settings.database_url.get_secret_value()
    if settings.redis_url is not None:
        env["BTEC_REDIS_URL"] = settings.redis_url.get_secret_value()
    env.update(extra)
    return env
