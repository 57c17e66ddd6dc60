"""Schema migrations through yoyo's Python API, always under yoyo's lock."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
from yoyo import get_backend, read_migrations

from server.config.assets import asset
from server.config.settings import Settings
from server.observability.probes import Check, Observation
from server.platform.pgnames import MIGRATION_TABLE

MIGRATIONS_DIR = asset("migrations")  # the default of BTEC_MIGRATIONS_DIR
LOCK_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class MigrationState:
    id: str
    applied: bool
    applied_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "applied": self.applied,
            "applied_at": self.applied_at.isoformat() + "Z" if self.applied_at else None,
        }


def yoyo_uri(database_url: str) -> str:
    """yoyo's URI for our PostgreSQL URL: the same target, through psycopg 3."""
    scheme, sep, rest = database_url.partition("://")
    if not sep or scheme not in ("postgres", "postgresql", "postgresql+psycopg"):
        raise ValueError("BTEC_DATABASE_URL must be a postgresql:// URL")
    return "postgresql+psycopg://" + rest


@contextlib.contextmanager
def backend(database_url: str) -> Iterator[Any]:
    """yoyo's backend for the database. yoyo prints the rows of a migration's SELECT to stdout,
    which belongs to --json output, so stdout goes to stderr while it is in use."""
    be = get_backend(yoyo_uri(database_url), migration_table=MIGRATION_TABLE)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield be
    finally:
        with contextlib.suppress(Exception):
            be.connection.close()


def migration_ids(directory: Path) -> list[str]:
    """Every migration id, in dependency order, from the files alone."""
    return [m.id for m in read_migrations(str(directory))]


def load(directory: Path) -> Any:
    """yoyo's MigrationList for `directory`."""
    return read_migrations(str(directory))


def _url(settings: Settings) -> str:
    if settings.database_url is None:
        raise RuntimeError("resolve embedded servers first")
    return settings.database_url.get_secret_value()


def status(settings: Settings) -> list[MigrationState]:
    migrations = load(settings.migrations_dir)
    with backend(_url(settings)) as be:
        applied = set(be.get_applied_migration_hashes())
        times = dict(
            be.execute(f"SELECT migration_id, applied_at_utc FROM {MIGRATION_TABLE}").fetchall()  # nosec B608 # MIGRATION_TABLE is a constant
        )
    return [MigrationState(m.id, m.hash in applied, times.get(m.id)) for m in migrations]


def migrate(settings: Settings) -> list[str]:
    """Apply every pending migration; return the ids applied."""
    migrations = load(settings.migrations_dir)
    with backend(_url(settings)) as be, be.lock(timeout=LOCK_TIMEOUT_SECONDS):
        pending = be.to_apply(migrations)
        be.apply_migrations(pending)
        return [m.id for m in pending]


def rollback(
    settings: Settings,
    steps: int | None = None,
    to: str | None = None,
    dry_run: bool = False,
) -> list[str]:
    """Roll back the newest `steps` migrations, or down to (not including) `to`."""
    migrations = load(settings.migrations_dir)
    with backend(_url(settings)) as be, be.lock(timeout=LOCK_TIMEOUT_SECONDS):
        applied = list(be.to_rollback(migrations))
        chosen = _select_rollback(applied, steps, to)
        if not dry_run:
            be.rollback_migrations(migrations.__class__(chosen, migrations.post_apply))
        return [m.id for m in chosen]


def plan_rollback(settings: Settings, steps: int | None = None, to: str | None = None) -> list[str]:
    return rollback(settings, steps, to, dry_run=True)


def _select_rollback(applied: list[Any], steps: int | None, to: str | None) -> list[Any]:
    if to is not None:
        ids = [m.id for m in applied]
        if to not in ids:
            raise ValueError(f"migration {to!r} is not applied")
        return applied[: ids.index(to)]
    return applied[: steps if steps is not None else 1]


def health_check(pool: asyncpg.Pool, expected: list[str]) -> Check:
    """Every migration in `expected` is applied: readiness fails while one is pending."""

    async def migrations() -> Observation:
        async with pool.acquire() as conn:
            try:
                rows = await conn.fetch(f"SELECT migration_id FROM {MIGRATION_TABLE}")  # nosec B608 # MIGRATION_TABLE is a constant
            except asyncpg.UndefinedTableError:
                rows = []
        applied = {r["migration_id"] for r in rows}
        pending = [m for m in expected if m not in applied]
        if pending:
            return Observation(
                len(pending), "pending", "fail", "pending migrations: " + ", ".join(pending[:5])
            )
        return Observation(0, "pending")

    return Check("postgres:migrations", "datastore", migrations)
