"""Backup, restore and verify times on a seeded database, and backup's overhead over pg_dump.

Seed first (`python perf/seed_db.py --rows 1000000`), then
`BTEC_DATABASE_URL=... python perf/backup_bench.py [--rounds 3]`. Bare pg_dump (same binary,
format and jobs) and `btecctl db backup` alternate; medians and their ratio are printed.
Target (issue "Database operations"): backup's overhead over pg_dump at most 15%.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from harness import median

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    url = os.environ["BTEC_DATABASE_URL"]
    work = Path(tempfile.mkdtemp(prefix="btec-backup-bench-"))
    env = {**os.environ, "BTEC_BACKUP_DIR": str(work / "backups"), "BTEC_ENV_FILE": ""}
    fmt, jobs = env.get("BTEC_BACKUP_FORMAT", "directory"), int(env.get("BTEC_BACKUP_JOBS", "2"))
    bare, ours, names = [], [], []
    try:
        for i in range(args.rounds):
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
