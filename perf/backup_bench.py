"""Backup, restore and verify times on a seeded database, and backup's overhead over pg_dump.

`python perf/backup_bench.py [--rounds 3] [--rows 1000000]` starts its own embedded
PostgreSQL in a scratch data dir, migrates it and seeds `--rows` audit rows (perf/seed_db.py),
and removes it all afterwards. With BTEC_DATABASE_URL set it measures that database as it is
(migrated, and seeded with `python perf/seed_db.py` if wanted) and only adds backups of its
own, which it deletes. Bare pg_dump (same binary, format and jobs) and `btecctl db backup`
alternate; medians and their ratio are printed.
Target (issue "Database operations"): backup's overhead over pg_dump at most 15%.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
from harness import median
from seed_db import seed

from server.config.settings import Settings
from server.platform.embedded import embedded_services

HERE = Path(__file__).resolve().parent


def btecctl(*args: str, env: dict[str, str]) -> tuple[float, dict[str, object]]:
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "btecctl", *args, "--json"],
        env=env, capture_output=True, text=True, check=True, cwd=HERE.parent,
    )  # fmt: skip
    return time.monotonic() - started, json.loads(out.stdout)


def bare_pg_dump(pg_dump: str, url: str, fmt: str, jobs: int, target: Path) -> float:
    cmd = [pg_dump, f"--format={fmt}", f"--file={target}", f"--dbname={url}"]
    if fmt == "directory":
        cmd.append(f"--jobs={jobs}")
    started = time.monotonic()
    subprocess.run(cmd, check=True)
    return time.monotonic() - started


@contextlib.contextmanager
def database(rows: int) -> Iterator[str]:
    """BTEC_DATABASE_URL as it is, or an embedded PostgreSQL of its own, migrated and seeded."""
    given = os.environ.get("BTEC_DATABASE_URL")
    if given:
        with psycopg.connect(given) as conn:
            migrated = conn.execute("SELECT to_regclass('audit_log') IS NOT NULL").fetchone()
        if not (migrated and migrated[0]):
            raise SystemExit("BTEC_DATABASE_URL is not migrated: run `btecctl db migrate` first")
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="btec-backup-bench-db-") as tmp:
        settings = Settings(_env_file=None, data_dir=Path(tmp), database_url=None, redis_url=None)
        with embedded_services(settings, redis=False) as running:
            assert running.database_url is not None
            url = running.database_url.get_secret_value()
            env = {**os.environ, "BTEC_DATABASE_URL": url, "BTEC_ENV_FILE": ""}
            btecctl("db", "migrate", env=env)
            seed(url, rows)
            yield url


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rows", type=int, default=1_000_000, help="seeded when self-started")
    args = ap.parse_args()
    with database(args.rows) as url:
        measure(url, args.rounds)


def measure(url: str, rounds: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="btec-backup-bench-"))
    env = {**os.environ, "BTEC_DATABASE_URL": url, "BTEC_BACKUP_DIR": str(work / "backups"),
           "BTEC_ENV_FILE": ""}  # fmt: skip
    fmt, jobs = env.get("BTEC_BACKUP_FORMAT", "directory"), int(env.get("BTEC_BACKUP_JOBS", "2"))
    bare, ours, names = [], [], []
    try:
        for i in range(rounds):
            bare.append(bare_pg_dump(pg_dump_path(env), url, fmt, jobs, work / f"bare{i}"))
            seconds, made = btecctl("db", "backup", env=env)
            ours.append(seconds)
            names.append(str(made["name"]))
            print(json.dumps({"round": i, "pg_dump_s": round(bare[-1], 3),
                              "btecctl_backup_s": round(seconds, 3)}), flush=True)  # fmt: skip
        restore_s, restored = btecctl("db", "restore", names[-1], "--yes", env=env)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{restored["restored_into"]}" WITH (FORCE)')
        verify_s, drill = btecctl("db", "verify", names[-1], env=env)
        _, listing = btecctl("db", "backups", env=env)
        newest = listing["backups"][0]  # type: ignore[index]
        print(json.dumps({
            "rows": newest["rows"],
            "backup_s_median": round(median(ours), 3),
            "pg_dump_s_median": round(median(bare), 3),
            "backup_overhead": round(median(ours) / median(bare) - 1, 3),
            "target_overhead": 0.15,
            "restore_s": round(restore_s, 3),
            "verify_s": round(verify_s, 3),
            "verify_drill_s": drill["seconds"],
            "backup_size_bytes": newest["size_bytes"],
            "format": fmt,
            "jobs": jobs,
        }, indent=2))  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


def pg_dump_path(env: dict[str, str]) -> str:
    """The pg_dump btecctl itself would pick, so both sides run the same binary."""
    code = (
        "import psycopg, os;"
        "from server.config.settings import load_settings;"
        "from server.backup.core import find_tools, server_version;"
        "s = load_settings();"
        "c = psycopg.connect(os.environ['BTEC_DATABASE_URL']);"
        "print(find_tools(s, server_version(c)[0]).pg_dump)"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, cwd=HERE.parent)  # fmt: skip
    return out.stdout.strip()


if __name__ == "__main__":
    main()
