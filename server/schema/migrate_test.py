"""migrate-test: apply, roll back and re-apply every migration in a scratch database.

1. apply all migrations, then roll them all back to an empty schema;
2. the stairway: for each migration, snapshot the schema, apply, roll back, compare with the
   snapshot, re-apply, and compare with the applied schema;
3. seed every table, roll back and re-apply the newest N migrations, and compare the row counts
   and checksums of the data that predates them.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from server.domain.text import describe
from server.platform import dbstats
from server.platform.pgnames import database_name, with_database
from server.schema import introspect as schema
from server.schema.migrations import backend, load
from server.schema.sample_data import Seeder

Progress = Callable[[str], None]


@dataclass
class Step:
    phase: str  # apply-all, rollback-all, stairway, data
    subject: str
    ok: bool = True
    differences: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "subject": self.subject,
            "ok": self.ok,
            "differences": self.differences,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class Report:
    database: str
    steps: list[Step] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.steps)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "database": self.database,
            "seconds": round(self.seconds, 3),
            "steps": [s.as_dict() for s in self.steps],
        }


def planned_steps(directory: Path, newest: int) -> int:
    """How many steps a run will report, for a progress bar."""
    return 2 + len(load(directory)) + (1 if newest else 0)


@contextlib.contextmanager
def scratch_database(server_url: str, prefix: str = "btec_migrate_test") -> Iterator[str]:
    """A new empty database on the same server; dropped on exit, whatever happens."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(server_url, name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class MigrateTest:
    """One run over one migrations directory in one scratch database."""

    def __init__(self, url: str, directory: Path, *, newest: int, rows: int) -> None:
        self.url = url
        self.directory = directory
        self.newest = newest
        self.rows = rows
        self.migrations = load(directory)
        self.report = Report(database=database_name(url))

    def _snapshot(self) -> schema.Snapshot:
        with psycopg.connect(self.url) as conn:
            return schema.snapshot(conn)

    def _apply(self, ms: list[Any]) -> None:
        with backend(self.url) as be, be.lock():
            be.apply_migrations(self.migrations.__class__(ms, self.migrations.post_apply))

    def _rollback(self, ms: list[Any]) -> None:
        with backend(self.url) as be, be.lock():
            be.rollback_migrations(self.migrations.__class__(ms, self.migrations.post_apply))

    def _step(self, phase: str, subject: str, work: Callable[[Step], None], tick: Progress) -> None:
        step = Step(phase, subject)
        started = time.perf_counter()
        try:
            work(step)
        except Exception as exc:  # a migration that errors is a finding, not a crash
            step.differences.append(f"error: {describe(exc, limit=500)}")
        step.ok = not step.differences
        step.seconds = time.perf_counter() - started
        self.report.steps.append(step)
        tick(f"{phase} {subject}")

    def run(self, tick: Progress) -> Report:
        started = time.perf_counter()
        empty = self._snapshot()
        ms = list(self.migrations)
        self._step("apply-all", f"{len(ms)} migrations", lambda s: self._apply(ms), tick)
        self._step("rollback-all", "to an empty schema", lambda s: self._rollback_all(s, empty),
                   tick)  # fmt: skip
        before: list[schema.Snapshot] = []
        if self.report.ok:
            for m in ms:
                before.append(self._snapshot())
                self._step("stairway", m.id, self._stair_of(m, before[-1]), tick)
        if self.newest and self.report.ok and ms:
            n = min(self.newest, len(ms))
            self._step("data", f"newest {n} with seeded rows",
                       lambda s: self._data(s, ms[-n:], before[-n]), tick)  # fmt: skip
        self.report.seconds = time.perf_counter() - started
        return self.report

    def _rollback_all(self, step: Step, empty: schema.Snapshot) -> None:
        self._rollback(list(reversed(list(self.migrations))))
        step.differences += schema.differences(empty, self._snapshot())

    def _stair_of(self, m: Any, before: schema.Snapshot) -> Callable[[Step], None]:
        return lambda step: self._stair(step, m, before)

    def _stair(self, step: Step, m: Any, before: schema.Snapshot) -> None:
        if not _rollback_file(m).exists():
            step.differences.append(f"no rollback file: {_rollback_file(m).name}")
            return
        self._apply([m])
        applied = self._snapshot()
        self._rollback([m])
        step.differences += [
            f"after rollback, {d}" for d in schema.differences(before, self._snapshot())
        ]
        self._apply([m])
        step.differences += [
            f"after re-apply, {d}" for d in schema.differences(applied, self._snapshot())
        ]

    def _data(self, step: Step, newest: list[Any], older: schema.Snapshot) -> None:
        """Rows in tables that predate `newest` must survive their rollback and re-apply."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            seeded = Seeder(conn, self.rows).seed()
            head = schema.snapshot(conn)
        empty_tables = [t for t, n in seeded.items() if n == 0]
        if empty_tables:
            step.differences.append("could not seed: " + ", ".join(empty_tables))
        watched = {
            t: [c for c in schema.columns(older, t) if c in schema.columns(head, t)]
            for t in schema.tables(older)
            if t in schema.tables(head)
        }
        original = self._measure(watched)
        self._rollback(list(reversed(newest)))
        step.differences += _compare(original, self._measure(watched), "after rollback")
        self._apply(newest)
        step.differences += _compare(original, self._measure(watched), "after re-apply")

    def _measure(self, watched: dict[str, list[str]]) -> dict[str, tuple[int, str] | None]:
        found: dict[str, tuple[int, str] | None] = {}
        with psycopg.connect(self.url) as conn:
            present = set(dbstats.app_tables(conn))
            for table, cols in watched.items():
                found[table] = dbstats.checksum(conn, table, cols) if table in present else None
        return found


def _compare(
    before: dict[str, tuple[int, str] | None], after: dict[str, tuple[int, str] | None], when: str
) -> list[str]:
    found = []
    for table, was in before.items():
        now = after.get(table)
        if now is None:
            found.append(f"{when}, table {table} is gone (had {was[0] if was else 0} rows)")
        elif was is not None and now[0] != was[0]:
            found.append(f"{when}, table {table} has {now[0]} rows instead of {was[0]}")
        elif was is not None and now[1] != was[1]:
            found.append(f"{when}, table {table} has the same {now[0]} rows but different data")
    return found


def _rollback_file(m: Any) -> Path:
    path = Path(m.path)
    return path.with_name(path.name.removesuffix(".sql") + ".rollback.sql")


def run(
    server_url: str, directory: Path, *, newest: int = 1, rows: int = 20, tick: Progress
) -> Report:
    """Run migrate-test in a scratch database on `server_url`'s server."""
    with scratch_database(server_url) as url:
        return MigrateTest(url, directory, newest=newest, rows=rows).run(tick)
