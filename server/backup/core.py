"""Backups with pg_dump: atomic, checksummed, with a manifest; restores, drills, retention."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess  # nosec B404 # runs only pg_dump/pg_restore, as argv lists without a shell
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg import sql

from server import __version__
from server.config.settings import Settings
from server.observability.metrics import BackupSnapshot
from server.platform import dbstats
from server.platform.children import die_with_parent, stop_group
from server.platform.pgnames import MIGRATION_TABLE, database_name, with_database

MANIFEST = "manifest.json"
DRILLS = "drills.json"
PARTIAL_PREFIX = ".partial-"
FORMAT_VERSION = 1
Progress = Callable[[str], None]
T = TypeVar("T")
_VERSION = re.compile(r"(\d+)(?:\.(\d+))?")
_DUMPING = re.compile(r'dumping contents of table "([^"]+)"')
_FINISHED = re.compile(r"finished item (\d+) TABLE DATA (\S+)")
_RESTORING = re.compile(r'processing data for table "([^"]+)"')


class BackupError(RuntimeError):
    """A backup, restore or drill could not be done; the message says why."""


class BackupCorrupt(BackupError):
    """The backup's files do not match its manifest; nothing was touched."""


@dataclass(frozen=True)
class PgTools:
    bin_dir: Path
    major: int
    version: str

    @property
    def pg_dump(self) -> str:
        return str(self.bin_dir / "pg_dump")

    @property
    def pg_restore(self) -> str:
        return str(self.bin_dir / "pg_restore")


def _tool_version(bin_dir: Path) -> tuple[int, str] | None:
    exe = bin_dir / "pg_dump"
    if not exe.exists():
        return None
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=False)  # nosec B603 # fixed argv: a candidate pg_dump path and --version
    found = _VERSION.search(out.stdout)
    return (int(found.group(1)), found.group(0)) if found else None


def _candidate_dirs(settings: Settings) -> list[Path]:
    dirs = [settings.pg_bin_dir] if settings.pg_bin_dir else []
    spec = importlib.util.find_spec("pgserver")
    if spec and spec.submodule_search_locations:
        dirs.append(Path(spec.submodule_search_locations[0]) / "pginstall" / "bin")
    dirs += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    on_path = shutil.which("pg_dump")
    if on_path:
        dirs.append(Path(on_path).parent)
    return dirs


Probed = list[tuple[Path, tuple[int, str] | None]]


def probe_tools(settings: Settings) -> Probed:
    """Each candidate bin dir with its pg_dump's (major, version), probed all at once."""
    candidates = _candidate_dirs(settings)
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(zip(candidates, pool.map(_tool_version, candidates), strict=True))


def find_tools(settings: Settings, server_major: int, probed: Probed | None = None) -> PgTools:
    """The newest pg_dump/pg_restore whose major version is at least the server's."""
    best: PgTools | None = None
    for bin_dir, found in probe_tools(settings) if probed is None else probed:
        if found and found[0] >= server_major and (best is None or found[0] > best.major):
            best = PgTools(bin_dir, found[0], found[1])
        if best is not None and settings.pg_bin_dir == bin_dir:
            break
    if best is None:
        raise BackupError(f"no pg_dump {server_major} or newer found; set BTEC_PG_BIN_DIR to one")
    return best


def server_version(conn: psycopg.Connection[Any]) -> tuple[int, str]:
    row = conn.execute("SELECT current_setting('server_version_num')::int, version()").fetchone()
    if row is None:
        raise RuntimeError("SELECT version() returned no row")
    return int(row[0]) // 10000, str(row[1]).split(" on ")[0]


def migration_head(conn: psycopg.Connection[Any]) -> str | None:
    try:
        with conn.transaction():
            row = conn.execute(
                f"SELECT migration_id FROM {MIGRATION_TABLE} ORDER BY applied_at_utc DESC LIMIT 1"  # nosec B608 # MIGRATION_TABLE is a constant
            ).fetchone()
    except psycopg.errors.UndefinedTable:
        return None
    return str(row[0]) if row else None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with path.open("rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dirs(root: Path) -> None:
    """fsync every directory under root (pg_dump itself fsyncs the files it writes)."""
    for dirpath, _, _ in os.walk(root):
        _fsync_dir(Path(dirpath))


class Hasher:
    """sha256 of files in background threads (hashlib releases the GIL), so hashing can start
    on each table's file as soon as pg_dump finishes it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._pool = ThreadPoolExecutor(max_workers=2)
        self._pending: dict[Path, Future[str]] = {}

    def submit(self, path: Path) -> None:
        if path not in self._pending:
            self._pending[path] = self._pool.submit(_sha256, path)

    def digests(self, paths: list[Path]) -> dict[str, dict[str, Any]]:
        for path in paths:
            self.submit(path)
        try:
            return {
                str(p.relative_to(self.root)): {
                    "size": p.stat().st_size,
                    "sha256": self._pending[p].result(),
                }
                for p in paths
            }
        finally:
            self._pool.shutdown()


def file_digests(root: Path, paths: list[Path]) -> dict[str, dict[str, Any]]:
    return Hasher(root).digests(paths)


def _dump_files(root: Path) -> list[Path]:
    """The dump's files: everything but the manifest and the drill log."""
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and p.name != MANIFEST and not p.name.startswith(DRILLS)
    )


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class Backup:
    """A completed backup directory and its manifest."""

    path: Path
    manifest: dict[str, Any]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def created(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.manifest["finished_at"].replace("Z", "+00:00"))

    @property
    def dump(self) -> Path:
        return self.path / str(self.manifest["dump"])

    def drills(self) -> list[dict[str, Any]]:
        try:
            data = json.loads((self.path / DRILLS).read_text())
            return data if isinstance(data, list) else []
        except (OSError, ValueError):
            return []

    def summary(self) -> dict[str, Any]:
        m = self.manifest
        drills = self.drills()
        return {
            "name": self.name,
            "path": str(self.path),
            "created": m["finished_at"],
            "database": m["database"],
            "size_bytes": m["size_bytes"],
            "rows": sum(m["tables"].values()),
            "migration_head": m["migration_head"],
            "app_release": m["app_release"],
            "last_drill": drills[-1] if drills else None,
        }


def load(path: Path) -> Backup:
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        raise BackupError(f"{path} is not a backup: no {MANIFEST}") from None
    except ValueError:
        raise BackupCorrupt(f"{path / MANIFEST} is not valid JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        raise BackupCorrupt(f"{path / MANIFEST} is not a btec backup manifest")
    return Backup(path, manifest)


def resolve(settings: Settings, name_or_path: str) -> Backup:
    """A backup by path, or by name inside the backup directory."""
    path = Path(name_or_path)
    if not path.exists():
        path = settings.backups_path / name_or_path
    if not path.is_dir():
        raise BackupError(f"no backup named {name_or_path} in {settings.backups_path}")
    return load(path)


def verify_files(backup: Backup) -> None:
    """Every file the manifest lists, with its size and sha256, and no other; else BackupCorrupt."""
    expected: dict[str, dict[str, Any]] = backup.manifest["files"]
    present = {str(p.relative_to(backup.path)) for p in _dump_files(backup.path)}
    missing = sorted(set(expected) - present)
    extra = sorted(present - set(expected))
    if missing or extra:
        raise BackupCorrupt(f"files missing: {missing or 'none'}; unexpected: {extra or 'none'}")
    actual = file_digests(backup.path, [backup.path / n for n in sorted(expected)])
    bad = sorted(n for n in expected if actual[n]["sha256"] != expected[n]["sha256"])
    if bad:
        raise BackupCorrupt("checksum mismatch in " + ", ".join(bad))


APP_NAME = "btecctl"  # pg_dump's and pg_restore's application_name
# The comment on a database a restore is filling until it is complete: one that keeps it after
# its btecctl is gone was left by an interrupted restore (`db backups` lists it, `db prune`
# drops it).
IN_PROGRESS = "btec: restore in progress"


@contextlib.contextmanager
def _snapshot(url: str) -> Iterator[tuple[psycopg.Connection[Any], str]]:
    """A read-only repeatable-read transaction and its exported snapshot id for pg_dump."""
    with psycopg.connect(url) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        row = conn.execute("SELECT pg_export_snapshot()").fetchone()
        if row is None:
            raise RuntimeError("pg_export_snapshot() returned no row")
        yield conn, str(row[0])
        conn.rollback()


def _run_tool(
    cmd: list[str], on_line: Callable[[str], None], meanwhile: Callable[[], T] | None = None
) -> T | None:
    """Run pg_dump/pg_restore --verbose, handing each line of its log to `on_line`;
    `meanwhile` runs while it works, and its result is returned.

    The tool never outlives btecctl: it runs in a process group of its own, gets SIGTERM if
    btecctl dies (even by SIGKILL), and is stopped with its workers (`--jobs`) when btecctl
    stops early (an error, Ctrl-C, SIGTERM)."""
    env = {**os.environ, "PGAPPNAME": APP_NAME}
    proc = subprocess.Popen(  # nosec B603 # argv list built by backup()/restore(): our pg_dump/pg_restore path and options, no shell
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True, env=env, start_new_session=True, preexec_fn=die_with_parent,
    )  # fmt: skip
    errors: list[str] = []

    def read_stderr() -> None:
        if proc.stderr is None:
            raise RuntimeError("Popen(stderr=PIPE) gave no stderr")
        for line in proc.stderr:
            on_line(line)
            if "error" in line.lower() or "fatal" in line.lower():
                errors.append(line.strip())

    with ThreadPoolExecutor(max_workers=1) as pool:
        reader = pool.submit(read_stderr)
        try:
            result = meanwhile() if meanwhile is not None else None
            code = proc.wait()
        finally:
            if proc.poll() is None:
                stop_group(proc)
            reader.result()
    if code != 0:
        raise BackupError(f"{Path(cmd[0]).name} failed: " + ("; ".join(errors[:3]) or "see logs"))
    return result


def _dump_watcher(
    dump: Path, progress: Progress, hasher: Hasher, *, parallel: bool
) -> Callable[[str], None]:
    """pg_dump's log: count tables, and hash each table's file once a worker finishes it."""

    def on_line(line: str) -> None:
        if parallel:
            done = _FINISHED.search(line)
            if done:
                progress(done.group(2))
                for path in dump.glob(f"{done.group(1)}.dat*"):
                    hasher.submit(path)
        elif found := _DUMPING.search(line):
            progress(found.group(1))

    return on_line


def _restore_watcher(progress: Progress) -> Callable[[str], None]:
    def on_line(line: str) -> None:
        if found := _RESTORING.search(line):
            progress(found.group(1))

    return on_line


def backup(settings: Settings, progress: Progress, *, label: str = "") -> Backup:
    """Dump the database into a new backup directory; atomic: it exists complete or not at all."""
    if settings.database_url is None:
        raise RuntimeError("resolve embedded servers first")
    url = settings.database_url.get_secret_value()
    root = settings.backups_path
    root.mkdir(parents=True, exist_ok=True)
    started = _now()
    t0 = time.monotonic()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"btec-{stamp}-{uuid.uuid4().hex[:6]}" + (f"-{label}" if label else "")
    tmp = root / f"{PARTIAL_PREFIX}{name}"
    tmp.mkdir()
    probing = ThreadPoolExecutor(max_workers=1)
    try:
        probed = probing.submit(probe_tools, settings)  # while the connection opens
        with _snapshot(url) as (conn, snapshot_id):
            major, version = server_version(conn)
            tools = find_tools(settings, major, probed.result())
            head = migration_head(conn)
            dump = "dump" if settings.backup_format == "directory" else "dump.pgc"
            cmd = [tools.pg_dump, "--verbose", f"--snapshot={snapshot_id}",
                   f"--format={settings.backup_format}", f"--file={tmp / dump}"]  # fmt: skip
            if settings.backup_format == "directory":
                cmd.append(f"--jobs={settings.backup_jobs}")
            hasher = Hasher(tmp)
            parallel = settings.backup_format == "directory" and settings.backup_jobs > 1
            on_line = _dump_watcher(tmp / dump, progress, hasher, parallel=parallel)
            # Counting rows in the same snapshot while pg_dump works costs no extra time.
            counted = _run_tool(
                [*cmd, f"--dbname={url}"], on_line, lambda: dbstats.row_counts(conn)
            )
            counts = counted or {}
        files = hasher.digests(_dump_files(tmp))
        manifest = {
            "format_version": FORMAT_VERSION,
            "name": name,
            "database": database_name(url),
            "server_version": version,
            "tool": {"pg_dump": tools.version, "path": tools.pg_dump},
            "format": settings.backup_format,
            "jobs": settings.backup_jobs if settings.backup_format == "directory" else 1,
            "dump": dump,
            "started_at": started,
            "finished_at": _now(),
            "duration_s": round(time.monotonic() - t0, 3),
            "size_bytes": sum(f["size"] for f in files.values()),
            "files": files,
            "tables": counts,
            "migration_head": head,
            "app_release": settings.release,
            "app_version": __version__,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        _fsync_file(tmp / MANIFEST)
        _fsync_dirs(tmp)
        final = root / name
        tmp.rename(final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        probing.shutdown(wait=False)
    return Backup(final, manifest)


def list_backups(settings: Settings) -> tuple[list[Backup], list[Path]]:
    """Complete backups, newest first, and leftovers of interrupted ones."""
    root = settings.backups_path
    if not root.is_dir():
        return [], []
    found, partial = [], []
    for path in sorted(root.iterdir()):
        if path.name.startswith(PARTIAL_PREFIX):
            partial.append(path)
        elif (path / MANIFEST).exists():
            with contextlib.suppress(BackupError):
                found.append(load(path))
    return sorted(found, key=lambda b: b.created, reverse=True), partial


def _unix(stamp: str) -> float:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def metrics_snapshot(settings: Settings) -> BackupSnapshot | None:
    """The backup gauges for /metrics; None when this process has no backup directory."""
    if not settings.backups_path.is_dir():
        return None
    backups, _ = list_backups(settings)
    if not backups:
        return BackupSnapshot(kept=0)
    newest = backups[0]
    passed = [_unix(d["at"]) for b in backups for d in b.drills() if d.get("ok") and "at" in d]
    return BackupSnapshot(
        kept=len(backups),
        last_success=newest.created.timestamp(),
        last_size_bytes=int(newest.manifest.get("size_bytes", 0)),
        last_drill_success=max(passed) if passed else None,
    )


@dataclass
class RestorePlan:
    """What a restore will do, for the confirmation prompt."""

    backup: Backup
    server_url: str
    target: str
    into: str
    clean: bool
    swap: bool
    target_tables: dict[str, int] = field(default_factory=dict)
    target_exists: bool = False


def plan_restore(
    settings: Settings, backup: Backup, *, into: str | None, clean: bool, swap: bool
) -> RestorePlan:
    if settings.database_url is None:
        raise RuntimeError("resolve embedded servers first")
    url = settings.database_url.get_secret_value()
    target = database_name(url)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")
    chosen = target if clean else (into or f"{target}_restore_{stamp}")
    plan = RestorePlan(backup, url, target, chosen, clean, swap)
    try:
        with psycopg.connect(with_database(url, chosen if clean else target)) as conn:
            plan.target_tables = dbstats.row_counts(conn)
            plan.target_exists = True
    except psycopg.OperationalError:
        plan.target_exists = False
    if not clean and _database_exists(url, chosen):
        raise BackupError(f"database {chosen} already exists; choose another with --into")
    return plan


def _admin(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(with_database(url, "postgres"), autocommit=True)


def _database_exists(url: str, name: str) -> bool:
    with _admin(url) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        return row is not None


def restore(settings: Settings, plan: RestorePlan, progress: Progress) -> dict[str, Any]:
    """Restore `plan.backup`: verify, load, compare row counts, and optionally swap."""
    verify_files(plan.backup)
    url = plan.server_url
    with _admin(url) as conn:
        major, _ = server_version(conn)
        if not plan.clean:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(plan.into)))
    with contextlib.ExitStack() as claim:
        held = None if plan.clean else claim.enter_context(_claimed(url, plan))
        result = _fill(settings, plan, major, progress, claim)
        if held is not None:
            _comment(held, plan.into, f"btec: restored from {plan.backup.name} at {_now()}")
    if plan.swap and not plan.clean:
        result["previous"] = swap_databases(url, plan.target, plan.into)
        result["restored_into"] = plan.target
    return result


@contextlib.contextmanager
def _claimed(url: str, plan: RestorePlan) -> Iterator[psycopg.Connection[Any]]:
    """A connection of btecctl's to the new database for as long as the restore runs, which
    marks it in progress: `leftover_databases` leaves alone a marked database that btecctl is
    connected to, and takes one it is not (its btecctl was killed)."""
    conn = psycopg.connect(with_database(url, plan.into), autocommit=True,
                           application_name=APP_NAME)  # fmt: skip
    try:
        _comment(conn, plan.into, f"{IN_PROGRESS} of {plan.backup.name}, started {_now()}")
        yield conn
    finally:
        with contextlib.suppress(psycopg.Error):
            conn.close()


def _fill(settings: Settings, plan: RestorePlan, major: int, progress: Progress,
          claim: contextlib.ExitStack) -> dict[str, Any]:  # fmt: skip
    """pg_restore into the plan's database, then the row counts; a failure drops a new
    database (after letting go of its claim) and raises."""
    url = plan.server_url
    fmt = plan.backup.manifest["format"]
    tools = find_tools(settings, major)
    cmd = [tools.pg_restore, "--verbose", "--exit-on-error", "--no-owner", "--no-privileges",
           f"--dbname={with_database(url, plan.into)}"]  # fmt: skip
    if plan.clean:
        cmd += ["--clean", "--if-exists", "--single-transaction"]
    elif fmt == "directory":
        cmd.append(f"--jobs={settings.backup_jobs}")
    try:
        _run_tool([*cmd, str(plan.backup.dump)], _restore_watcher(progress))
        mismatches = compare_counts(with_database(url, plan.into), plan.backup.manifest["tables"])
        if mismatches:
            raise BackupError("row counts differ from the manifest: " + "; ".join(mismatches))
    except BaseException:
        if not plan.clean:
            claim.close()
            _drop(url, plan.into)
        raise
    return {"restored_into": plan.into, "tables": plan.backup.manifest["tables"]}


def _comment(conn: psycopg.Connection[Any], database: str, text: str) -> None:
    conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(
        sql.Identifier(database), sql.Literal(text)))  # fmt: skip


def leftover_databases(url: str) -> list[dict[str, Any]]:
    """Databases a restore (or a drill) made and never finished: marked in progress, with no
    btecctl connected to them (a pg_restore still at work is). Each with its mark."""
    with _admin(url) as conn:
        rows = conn.execute(
            "SELECT d.datname, shobj_description(d.oid, 'pg_database'), "
            "EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname "
            "AND a.application_name = %s) FROM pg_database d "
            "WHERE shobj_description(d.oid, 'pg_database') LIKE %s ORDER BY d.datname",
            (APP_NAME, IN_PROGRESS + "%"),
        ).fetchall()
    return [{"database": name, "mark": mark} for name, mark, busy in rows if not busy]


def drop_database(settings: Settings, name: str) -> None:
    """Drop a database a restore left (`leftover_databases` named it)."""
    if settings.database_url is None:
        raise RuntimeError("resolve embedded servers first")
    _drop(settings.database_url.get_secret_value(), name)


def compare_counts(url: str, expected: dict[str, int]) -> list[str]:
    with psycopg.connect(url) as conn:
        actual = dbstats.row_counts(conn, [t for t in expected if t in dbstats.app_tables(conn)])
    return [
        f"{t}: {actual.get(t, 'missing')} rows, manifest says {n}"
        for t, n in expected.items()
        if actual.get(t) != n
    ]


def swap_databases(url: str, target: str, restored: str) -> str | None:
    """Rename target -> target_before_<stamp> and restored -> target; returns the old name."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")
    previous = f"{target}_before_{stamp}"
    with _admin(url) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (target,)).fetchone()
        if exists:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (target,),
            )
        with conn.transaction():  # both names change, or neither
            if exists:
                conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                    sql.Identifier(target), sql.Identifier(previous)))  # fmt: skip
            conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                sql.Identifier(restored), sql.Identifier(target)))  # fmt: skip
    return previous if exists else None


def _drop(url: str, name: str) -> None:
    with contextlib.suppress(psycopg.Error), _admin(url) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def verify(settings: Settings, backup: Backup, progress: Progress) -> dict[str, Any]:
    """A restore drill into a scratch database, dropped afterwards; recorded in drills.json."""
    if settings.database_url is None:
        raise RuntimeError("resolve embedded servers first")
    url = settings.database_url.get_secret_value()
    scratch = f"btec_verify_{uuid.uuid4().hex[:10]}"
    started = time.monotonic()
    plan = RestorePlan(backup, url, database_name(url), scratch, clean=False, swap=False)
    drill: dict[str, Any] = {"at": _now(), "ok": False}
    try:
        restore(settings, plan, progress)
        drill["ok"] = True
    except BackupError as exc:
        drill["error"] = str(exc)
        raise
    finally:
        _drop(url, scratch)
        drill["seconds"] = round(time.monotonic() - started, 3)
        _record_drill(backup, drill)
    drill["tables"] = len(backup.manifest["tables"])
    drill["rows"] = sum(backup.manifest["tables"].values())
    return drill


def _record_drill(backup: Backup, drill: dict[str, Any]) -> None:
    drills = [*backup.drills(), {k: v for k, v in drill.items() if k != "tables"}]
    tmp = backup.path / (DRILLS + ".tmp")
    tmp.write_text(json.dumps(drills[-50:], indent=2) + "\n")
    tmp.replace(backup.path / DRILLS)


def retention(
    backups: list[Backup], *, daily: int, weekly: int, monthly: int
) -> tuple[list[Backup], list[Backup]]:
    """Grandfather-father-son: keep the newest backup of each of the newest N days, ISO weeks
    and months. Returns (kept, pruned); the newest backup is always kept."""
    newest_first = sorted(backups, key=lambda b: b.created, reverse=True)
    keep: set[str] = set()
    periods: list[tuple[int, Callable[[dt.datetime], object]]] = [
        (daily, lambda d: d.date()),
        (weekly, lambda d: d.isocalendar()[:2]),
        (monthly, lambda d: (d.year, d.month)),
    ]
    for count, period in periods:
        seen: list[object] = []
        for b in newest_first:
            key = period(b.created)
            if key not in seen and len(seen) < count:
                seen.append(key)
                keep.add(b.name)
    if newest_first:
        keep.add(newest_first[0].name)
    kept = [b for b in newest_first if b.name in keep]
    pruned = [b for b in newest_first if b.name not in keep]
    return kept, pruned


def delete(backup: Backup) -> None:
    """Remove a backup: rename first so a half-deleted backup never looks complete."""
    doomed = backup.path.with_name(f"{PARTIAL_PREFIX}deleting-{backup.name}")
    backup.path.rename(doomed)
    shutil.rmtree(doomed)


def remove_partial(path: Path) -> None:
    """Remove what an interrupted backup left; only ever a `.partial-` directory."""
    if not path.name.startswith(PARTIAL_PREFIX):
        raise BackupError(f"{path} is not an incomplete backup")
    shutil.rmtree(path)
